//! What this machine can do for a sandbox, asked of the kernel without changing
//! anything: for `doctor`, and for the launcher to ask Landlock for exactly what the
//! kernel has (so "fully enforced" means what it says).

use landlock::{ABI, Access, AccessNet, Scope};

/// Debug builds only: the variable that makes the launcher act as if this machine
/// lacked some layers (`landlock`, `netns`, comma-separated), so tests can prove the
/// fallbacks and `required = true` on a machine that has everything. Release builds
/// ignore it.
pub const SIMULATE_MISSING: &str = "MCP_WARDEN_SIMULATE_MISSING";

/// Whether `what` is to be treated as missing (see [`SIMULATE_MISSING`]).
#[must_use]
pub fn simulated_missing(what: &str) -> bool {
    cfg!(debug_assertions)
        && std::env::var(SIMULATE_MISSING).is_ok_and(|v| v.split(',').any(|w| w.trim() == what))
}

/// Every ABI this build knows, newest first.
const ABIS: [ABI; 10] = [
    ABI::V10,
    ABI::V9,
    ABI::V8,
    ABI::V7,
    ABI::V6,
    ABI::V5,
    ABI::V4,
    ABI::V3,
    ABI::V2,
    ABI::V1,
];

/// The Landlock ABI of the running kernel, `None` without Landlock.
#[must_use]
pub fn landlock_abi() -> Option<ABI> {
    let version = kernel_landlock_version()?;
    // The crate knows every ABI up to its own newest; a newer kernel is read as that.
    Some(ABI::from(version)).filter(|&abi| abi != ABI::Unsupported)
}

/// Asks the kernel for its Landlock ABI version (`landlock_create_ruleset` with the
/// VERSION flag), which creates nothing.
#[allow(unsafe_code)]
fn kernel_landlock_version() -> Option<i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: with the VERSION flag the kernel reads neither the (null) attribute
    // pointer nor the size; the call only returns a number.
    let version = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    i32::try_from(version).ok().filter(|&v| v > 0)
}

/// The ABI as a number, for reports.
#[must_use]
pub fn abi_number(abi: ABI) -> u8 {
    ABIS.iter()
        .position(|&a| a == abi)
        .and_then(|i| u8::try_from(ABIS.len() - i).ok())
        .unwrap_or(0)
}

/// Whether the kernel has Landlock's TCP rules (ABI 4).
#[must_use]
pub fn has_tcp_rules(abi: ABI) -> bool {
    !AccessNet::from_all(abi).is_empty()
}

/// Whether the kernel has Landlock's scoping (ABI 6).
#[must_use]
pub fn has_scope(abi: ABI) -> bool {
    !Scope::from_all(abi).is_empty()
}

/// Whether unprivileged user namespaces are allowed (the sysctls that say no).
#[must_use]
pub fn user_namespaces_allowed() -> bool {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_owned());
    let off = |p: &str, v: &str| read(p).is_ok_and(|s| s == v);
    !off("/proc/sys/kernel/unprivileged_userns_clone", "0")
        && !off("/proc/sys/user/max_user_namespaces", "0")
        && !off(
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
            "1",
        )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn abi_numbers_read_as_the_kernel_writes_them() {
        assert_eq!(abi_number(ABI::V1), 1);
        assert_eq!(abi_number(ABI::V7), 7);
        assert!(has_tcp_rules(ABI::V4) && !has_tcp_rules(ABI::V3));
        assert!(has_scope(ABI::V6) && !has_scope(ABI::V5));
    }
}
