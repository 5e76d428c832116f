//! What `up` gives back to the system so that, idle, it holds only what it still uses:
//! the heap pages a walk freed, and the pages of its own code that starting and a round
//! mapped.
//!
//! What grew in an idle `up` as tether grew was its code, not its heap: over 100,000
//! input files, 18 of its 44 MiB were pages of the binary's 22 MB of code (12 of 38 MiB
//! for the 14 MB of 4be24d6), mapped while it started and ran the first round (the kube
//! client, TLS, YAML, the build, the deploy) and never run again while it waits. The
//! kernel maps a file 64 KB around each page a fault asks for, so that share grows with
//! the binary, whichever code runs.

#[cfg(any(target_os = "linux", test))]
use std::ops::Range;

/// Gives the walk's freed memory back to the system. A walk of a large tree allocates
/// a path per file on a blocking thread, and glibc keeps what that thread's arena freed:
/// without this an idle `up` over 100,000 files holds megabytes it no longer uses.
pub(super) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Unmaps the pages of tether's code that are mapped now, so that the wait that follows
/// maps again only the code it runs: idle over 100,000 files, RSS 43.8 → 28.1 MiB. The
/// pages stay in the page cache: running other code again (the next round) costs a
/// minor fault per 64 KB, not a read from disk. Reads `/proc/self/smaps`, which the
/// kernel writes from memory.
pub(super) fn release_code_pages() {
    #[cfg(target_os = "linux")]
    {
        let here = release_code_pages as fn() as *const () as usize;
        let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
            return;
        };
        let Some(code) = unmodified_code(&smaps, here) else {
            return;
        };
        // SAFETY: `code` is the whole of a private, read-only, executable mapping of the
        // binary, none of whose pages were copied on write: MADV_DONTNEED drops only its
        // page table entries, and each later access maps the same page of the file again.
        // A failure (a locked mapping) leaves the pages mapped, which is harmless.
        unsafe {
            libc::madvise(
                code.start as *mut libc::c_void,
                code.len(),
                libc::MADV_DONTNEED,
            );
        }
    }
}

/// The mapping in `smaps` (the format of `/proc/PID/smaps`) that holds the code at
/// `address`, when it is private, read-only and executable, and has no anonymous pages.
/// A page of code copied on write (a debugger's breakpoint, a uprobe) would be lost by
/// dropping it, so such a mapping is left alone.
#[cfg(any(target_os = "linux", test))]
fn unmodified_code(smaps: &str, address: usize) -> Option<Range<usize>> {
    let mut found: Option<Range<usize>> = None;
    for line in smaps.lines() {
        if let Some((range, perms)) = mapping_header(line) {
            if found.is_some() {
                // The next mapping began before an `Anonymous:` line: unknown, keep it.
                return None;
            }
            if range.contains(&address) {
                if perms != "r-xp" {
                    return None;
                }
                found = Some(range);
            }
        } else if found.is_some()
            && let Some(kb) = line.strip_prefix("Anonymous:")
        {
            let kb = kb.trim().trim_end_matches("kB").trim();
            return match kb.parse::<u64>() {
                Ok(0) => found,
                _ => None,
            };
        }
    }
    None
}

/// The address range and permissions of a mapping's first line in `smaps`
/// (`55cf82f80000-55cf844f4000 r-xp 00708000 fe:00 10070400  /path`); `None` for the
/// lines of its figures (`Rss:   2308 kB`).
#[cfg(any(target_os = "linux", test))]
fn mapping_header(line: &str) -> Option<(Range<usize>, &str)> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    Some((start..end, perms))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55557271d000-555572e26000 r--p 00000000 fe:00 10070400      /usr/bin/tether
Size:               7204 kB
Rss:                2308 kB
Anonymous:             0 kB
VmFlags: rd mr mw me sd
555572e26000-55557439a000 r-xp 00708000 fe:00 10070400      /usr/bin/tether
Size:              21968 kB
Rss:               18048 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me sd
55557439a000-555574461000 r--p 01c7b000 fe:00 10070400      /usr/bin/tether
Size:                796 kB
Rss:                 796 kB
Anonymous:           796 kB
VmFlags: rd mr mw me ac sd
7f0000000000-7f0000021000 rw-p 00000000 00:00 0
Size:                132 kB
Anonymous:            12 kB
";

    #[test]
    fn the_code_mapping_holding_the_address_is_found() {
        assert_eq!(
            unmodified_code(SMAPS, 0x5555_7300_0000),
            Some(0x5555_72e2_6000..0x5555_7439_a000)
        );
    }

    #[test]
    fn other_mappings_are_never_chosen() {
        // Read-only data (relocated pages copied on write among them), the heap.
        assert_eq!(unmodified_code(SMAPS, 0x5555_7280_0000), None);
        assert_eq!(unmodified_code(SMAPS, 0x5555_743a_0000), None);
        assert_eq!(unmodified_code(SMAPS, 0x7f00_0000_1000), None);
        assert_eq!(unmodified_code(SMAPS, 0x1000), None);
    }

    #[test]
    fn code_with_a_page_copied_on_write_is_left_alone() {
        let breakpoint = SMAPS.replacen(
            "Rss:               18048 kB\nAnonymous:             0 kB",
            "Rss:               18048 kB\nAnonymous:             4 kB",
            1,
        );
        assert_ne!(breakpoint, SMAPS);
        assert_eq!(unmodified_code(&breakpoint, 0x5555_7300_0000), None);
    }

    #[test]
    fn a_mapping_without_its_anonymous_figure_is_left_alone() {
        let unknown = SMAPS.replacen(
            "Rss:               18048 kB\nAnonymous:             0 kB\n",
            "Rss:               18048 kB\n",
            1,
        );
        assert_ne!(unknown, SMAPS);
        assert_eq!(unmodified_code(&unknown, 0x5555_7300_0000), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn code_runs_on_after_its_pages_are_released() {
        release_code_pages();
        // This test's code, and what it calls, maps its pages again as it runs.
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let here = release_code_pages as fn() as *const () as usize;
        let code = unmodified_code(&smaps, here);
        assert!(code.as_ref().is_some_and(|c| c.contains(&here)), "{code:?}");
        release_code_pages();
    }
}
