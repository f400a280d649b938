//! Memory-like copies at each width: the forced-narrow path (`IOMEM_MAX_WIDTH`) makes only
//! accesses of the forced width in its body, on any CPU.

use iomem::backend::{memory_like_width, MockIo, INLINE_WIDTH};
use iomem::copy::SHORT_COPY;
use iomem::{memcpy_fromio, memcpy_toio, memset_io, IoMem, WidthPolicy};

/// Copies and fills through the mock with the memory-like policy and checks every access is at
/// most `max` wide, the body is made of `max`-wide accesses, and the data round-trips.
fn check_widths(max: usize) {
    assert_eq!(WidthPolicy::MEMORY_LIKE.max_width(), max);
    let mock = MockIo::new(4096);
    let io = IoMem::new(&mock).with_policy(WidthPolicy::MEMORY_LIKE);
    let src: Vec<u8> = (0..1500u32).map(|i| (i * 31 + 7) as u8).collect();
    for (off, len) in [(0, 1024), (3, 1500), (64, 200), (100, 7)] {
        mock.clear_events();
        let win = io.subslice(off..off + len).unwrap();
        memcpy_toio(&win, &src[..len]).unwrap();
        let mut back = vec![0u8; len];
        memcpy_fromio(&mut back, &win).unwrap();
        memset_io(&win, 0x5a).unwrap();
        assert_eq!(back, src[..len]);
        assert_eq!(mock.peek(off, len), vec![0x5a; len]);
        let trace = mock.accesses();
        assert!(trace.iter().all(|a| a.width <= max), "{max}: {trace:?}");
        if len >= 2 * max {
            // Every access the greedy plan puts between the first and last `max`-aligned
            // points is `max` wide.
            let first = off.next_multiple_of(max);
            let last = (off + len) / max * max;
            let body: Vec<_> = trace
                .iter()
                .filter(|a| a.offset >= first && a.offset + a.width <= last)
                .collect();
            assert!(!body.is_empty());
            assert!(body.iter().all(|a| a.width == max), "{max}: {body:?}");
        }
    }
    mock.assert_no_violations();
}

/// Run by [`forced_narrow_width_makes_only_accesses_of_that_width`] in a child process with
/// `IOMEM_MAX_WIDTH` set (the width is read once per process).
#[test]
#[ignore = "run in a child process by forced_narrow_width_makes_only_accesses_of_that_width"]
fn child_forced_width() {
    let forced: usize = std::env::var("IOMEM_MAX_WIDTH")
        .expect("set by the parent test")
        .parse()
        .unwrap();
    assert_eq!(memory_like_width(), forced);
    check_widths(forced);
}

// x86_64 only: the cross-architecture suite runs test binaries under a user-mode emulator, where
// a binary cannot exec itself; and only x86_64 has more than one width to force.
#[cfg(target_arch = "x86_64")]
#[test]
fn forced_narrow_width_makes_only_accesses_of_that_width() {
    let exe = std::env::current_exe().unwrap();
    let cpu = memory_like_width();
    for forced in [8usize, 16, 32, 64].into_iter().filter(|&w| w <= cpu) {
        let out = std::process::Command::new(&exe)
            .args(["--exact", "child_forced_width", "--ignored", "--nocapture"])
            .env("IOMEM_MAX_WIDTH", forced.to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "IOMEM_MAX_WIDTH={forced}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn unforced_width_is_the_cpus_widest() {
    if std::env::var_os("IOMEM_MAX_WIDTH").is_none() {
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(memory_like_width() >= 32, iomem::backend::has_w256());
            assert_eq!(memory_like_width() == 64, iomem::backend::has_w512());
        }
    }
    check_widths(memory_like_width());
}

#[test]
fn clamped_policy_is_a_per_handle_limit() {
    let mock = MockIo::new(1024);
    let p = WidthPolicy::MEMORY_LIKE.clamped(16);
    assert!(p.is_memory_like());
    assert_eq!(p.max_width(), memory_like_width().min(16));
    let io = IoMem::new(&mock).with_policy(p);
    memcpy_toio(&io.subslice(0..512).unwrap(), &[1u8; 512]).unwrap();
    let w = mock.writes();
    assert!(w.iter().all(|a| a.width == p.max_width()), "{w:?}");
}

/// A copy of at most `SHORT_COPY` bytes makes accesses no wider than the build's inline width
/// (no call into code compiled for a wider vector feature); a longer one's body is the CPU's
/// widest. Both directions and the fill, at the length limit and just past it.
#[test]
fn short_copies_use_the_inline_width() {
    let max = memory_like_width();
    let short = max.min(INLINE_WIDTH);
    let mock = MockIo::new(4096);
    let io = IoMem::new(&mock).with_policy(WidthPolicy::MEMORY_LIKE);
    let src: Vec<u8> = (0..512u32).map(|i| (i * 7 + 3) as u8).collect();
    for (len, want) in [
        (16, short),
        (64, short),
        (SHORT_COPY, short),
        (SHORT_COPY + 64, max),
    ] {
        let win = io.subslice(1024..1024 + len).unwrap();
        mock.clear_events();
        memcpy_toio(&win, &src[..len]).unwrap();
        let mut back = vec![0u8; len];
        memcpy_fromio(&mut back, &win).unwrap();
        memset_io(&win, 0xa5).unwrap();
        assert_eq!(back, src[..len]);
        assert_eq!(mock.peek(1024, len), vec![0xa5; len]);
        let trace = mock.accesses();
        // Whole aligned words of `want`: three passes of `len / want` accesses each.
        assert_eq!(trace.len(), 3 * len / want, "{len} bytes: {trace:?}");
        assert!(
            trace.iter().all(|a| a.width == want),
            "{len} bytes: {trace:?}"
        );
        assert_eq!(WidthPolicy::MEMORY_LIKE.width_for(len), want);
    }
    mock.assert_no_violations();
}
