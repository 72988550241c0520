//! xorshift64*: a small deterministic generator for the choices tests make (the fuzz
//! targets' mutations, the canonical JSON laws' variants). Not for anything secret.
//!
//! One copy, included by `#[path]` where it is used: by `tests/fuzz.rs` and by the
//! tests of `src/canonical.rs` (an integration test cannot see the library's
//! `#[cfg(test)]` items, and a generator for tests does not belong in the library).

/// The generator's state; the seed is forced odd so it is never stuck at zero.
pub struct Xorshift(u64);

impl Xorshift {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`0` when `n` is zero).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}
