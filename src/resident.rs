//! Giving back resident pages that a long-lived process no longer needs: mapped files'
//! in the launcher and namespace init of every server (`sandbox/launcher.rs`) and in
//! `serve` once it is configured and again once its session has settled; the heap's
//! free pages after a burst (the audit writer); and keeping `serve`'s heap in one
//! malloc arena. Memory accounting only: behaviour is unchanged.
#![allow(unsafe_code)]

/// Makes every thread of this process allocate from glibc's main arena.
///
/// glibc gives each new thread that allocates its own arena (up to 8 per CPU), each
/// keeping its own free memory resident: in `serve`, the audit writer's and the log
/// writer's threads held ~0.6 MiB that the session thread could not reuse (measured
/// with `MALLOC_ARENA_MAX=1`, docs/benchmark.md). Each thread's small-allocation cache
/// (tcache) stays per thread, so sharing the arena's lock costs little with one busy
/// thread. Call before any other thread starts; elsewhere than glibc, nothing to do.
pub fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets a tunable of the allocator; M_ARENA_MAX takes any
    // positive count. Its result (0 when refused) needs no handling: it is a hint.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
    }
}

/// Gives back this process's resident pages of mcp-warden's own binary.
///
/// Starting up faults in a few MiB of the binary's code and read-only data (the kernel
/// maps 64 KiB around each fault, and the whole file is in the page cache), most of it
/// never run again. Only mappings of the binary that are not writable and hold no
/// private (anonymous) page are dropped: their contents are the file's, so the pages
/// still in use fault back in unchanged, from the page cache. Relocated read-only data
/// (RELRO) holds private pages and is kept. Best effort: without `/proc`, nothing is
/// dropped.
pub fn release_own_pages() {
    release(Scope::OwnBinary);
}

/// [`release_own_pages`] for a process that from now on only waits (the launcher and
/// the namespace init of every server): the pages of every mapped file go, the shared
/// libraries' too (libc's and libm's start-up faults, ~0.4 MiB of text, are counted
/// against each such process as long as it holds them), and so does the heap's free
/// memory.
///
/// Measured with one upstream: the pair held ~1.1 MiB of PSS, ~0.5 MiB of it pages of
/// libc, libm and our code that the wait never runs (docs/benchmark.md).
pub fn release_pages_for_waiting() {
    release(Scope::EveryFile);
    release_free_heap();
}

/// Gives the heap's free pages back to the system: glibc keeps what was freed below
/// the top of the heap resident for reuse, so a burst's peak would otherwise stay
/// counted for good. Costs a walk of the free lists under the allocator's lock:
/// for the end of a burst, not for every message.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free heap memory to the kernel, under the
    // allocator's own locks; live allocations are untouched.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Which read-only file mappings [`release`] drops.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// mcp-warden's own binary, in a process that goes on running most of its code.
    OwnBinary,
    /// Every file, in a process that runs almost nothing from now on.
    EveryFile,
}

fn release(scope: Scope) {
    // An address inside the binary's code, to tell its mappings from the libraries'.
    let marker = release_own_pages as *const () as usize;
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut ours: Option<&str> = None;
    let mut mappings: Vec<Mapping<'_>> = Vec::new();
    for line in smaps.lines() {
        if let Some(mapping) = Mapping::header(line) {
            if (mapping.start..mapping.end).contains(&marker) {
                ours = Some(mapping.path);
            }
            mappings.push(mapping);
        } else if let (Some(last), Some(kib)) =
            (mappings.last_mut(), line.strip_prefix("Anonymous:"))
        {
            last.anonymous = kib.trim().trim_end_matches("kB").trim() != "0";
        }
    }
    let Some(ours) = ours else { return };
    for mapping in mappings {
        let wanted = match scope {
            Scope::OwnBinary => mapping.path == ours,
            // Paths of files start with `/`; `[vdso]`, `[stack]` and the like do not.
            Scope::EveryFile => mapping.path.starts_with('/'),
        };
        if !wanted || mapping.writable || mapping.anonymous {
            continue;
        }
        let Some(start) = std::ptr::NonNull::new(mapping.start as *mut std::ffi::c_void) else {
            continue;
        };
        let length = mapping.end - mapping.start;
        // SAFETY: the range is one whole private, read-only mapping of a file with no
        // private page: discarding its pages loses nothing, since they read back from
        // the file identical, whichever thread runs or reads them next; a mapping that
        // is not writable cannot gain a private page between the read above and here.
        unsafe {
            let _ =
                nix::sys::mman::madvise(start, length, nix::sys::mman::MmapAdvise::MADV_DONTNEED);
        }
    }
}

/// One mapping of `/proc/self/smaps`, as far as [`release_own_pages`] needs it.
struct Mapping<'a> {
    start: usize,
    end: usize,
    writable: bool,
    path: &'a str,
    /// Whether it holds private pages (copies written to, such as relocations).
    anonymous: bool,
}

impl<'a> Mapping<'a> {
    /// A mapping's header line (`start-end perms offset dev inode path`), or `None`
    /// for the lines of fields below it.
    fn header(line: &'a str) -> Option<Self> {
        let mut fields = line.split_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        let perms = fields.next()?;
        // Anonymous mappings have no path: they are kept as entries of their own.
        let path = fields.nth(3).unwrap_or("");
        Some(Self {
            start: usize::from_str_radix(start, 16).ok()?,
            end: usize::from_str_radix(end, 16).ok()?,
            writable: perms.as_bytes().get(1) == Some(&b'w'),
            path,
            // Set from the mapping's `Anonymous:` line, which follows.
            anonymous: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_field_lines_are_told_apart() {
        let text = Mapping::header(
            "55d0c0a00000-55d0c1000000 r-xp 00200000 fd:01 1234   /usr/bin/mcp-warden",
        )
        .expect("a header");
        assert_eq!(
            (text.start, text.end, text.writable, text.path),
            (
                0x55d0_c0a0_0000,
                0x55d0_c100_0000,
                false,
                "/usr/bin/mcp-warden"
            )
        );
        let anon = Mapping::header("7f00c0000000-7f00c0021000 rw-p 00000000 00:00 0 ")
            .expect("an anonymous mapping is a header too");
        assert!(anon.writable && anon.path.is_empty());
        assert!(Mapping::header("Anonymous:             0 kB").is_none());
        assert!(Mapping::header("VmFlags: rd ex mr mw me dw").is_none());
    }

    #[test]
    fn code_and_constants_still_work_after_their_pages_are_given_back() {
        static TABLE: [u64; 4] = [3, 1, 4, 1];
        release_own_pages();
        release_own_pages();
        assert_eq!(TABLE.iter().sum::<u64>(), 9);
        assert_eq!(format!("{:?}", std::hint::black_box(&TABLE[..2])), "[3, 1]");
    }

    #[test]
    fn the_libraries_still_work_after_every_files_pages_are_given_back() {
        release_pages_for_waiting();
        release_pages_for_waiting();
        // libc (allocation, formatting, file I/O) and the loader's lazy work still run.
        let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        assert_eq!(format!("{}", text.contains("Pid:")), "true");
        assert_eq!(
            std::hint::black_box(vec![2_u8; 4096])
                .iter()
                .map(|&b| usize::from(b))
                .sum::<usize>(),
            8192
        );
    }
}
