//! Tests of planning and execution.

use super::*;

/// The planned (offset, width) pairs. Planning is pure arithmetic, so every width (16 too)
/// is tested on every architecture, whatever accesses its CPU has.
fn widths(off: usize, len: usize, max: usize) -> alloc::vec::Vec<(usize, usize)> {
    plan(off, len, WidthPolicy::fixed(max as u8))
        .unwrap()
        .accesses()
        .map(|a| (a.offset, a.width))
        .collect()
}

#[test]
fn head_body_tail() {
    assert_eq!(
        widths(1, 14, 8),
        [(1, 1), (2, 2), (4, 4), (8, 4), (12, 2), (14, 1)]
    );
    assert_eq!(widths(0, 16, 8), [(0, 8), (8, 8)]);
    assert_eq!(widths(3, 2, 8), [(3, 1), (4, 1)]);
    assert_eq!(widths(4, 3, 8), [(4, 2), (6, 1)]);
    assert_eq!(widths(6, 0, 4), []);
}

#[test]
fn u32_policy_never_emits_u64() {
    assert!(widths(0, 64, 4).iter().all(|&(_, w)| w == 4));
}

#[test]
fn overflow_is_an_error() {
    assert_eq!(
        plan(usize::MAX, 2, WidthPolicy::U64),
        Err(Error::Overflow {
            offset: usize::MAX,
            len: 2
        })
    );
}

/// The greedy plan, one access at a time: the widest access aligned at the offset, fitting
/// in what is left, within the policy.
fn greedy(off: usize, len: usize, max: usize) -> alloc::vec::Vec<(usize, usize)> {
    let (mut off, end) = (off, off + len);
    let mut v = alloc::vec::Vec::new();
    while off < end {
        let mut w = max;
        while off % w != 0 || w > end - off {
            w /= 2;
        }
        v.push((off, w));
        off += w;
    }
    v
}

#[test]
fn matches_greedy_model() {
    for max in [1, 2, 4, 8, 16] {
        for off in 0..80 {
            for len in 0..80 {
                assert_eq!(
                    widths(off, len, max),
                    greedy(off, len, max),
                    "{off} {len} {max}"
                );
            }
        }
    }
}

#[test]
fn short_unaligned_range_in_one_block() {
    // Grows to the 8-aligned point, then shrinks: six accesses, no body.
    assert_eq!(
        widths(1, 14, 16),
        [(1, 1), (2, 2), (4, 4), (8, 4), (12, 2), (14, 1)]
    );
    assert_eq!(widths(5, 2, 16), [(5, 1), (6, 1)]);
    assert_eq!(widths(9, 0, 16), []);
}

#[test]
fn near_the_end_of_the_address_space() {
    let off = usize::MAX - 20;
    assert_eq!(widths(off, 20, 16), greedy(off, 20, 16));
    assert_eq!(plan(off, 20, WidthPolicy::fixed(16)).unwrap().len(), 6);
}

#[test]
fn memory_like_matches_greedy_model_at_the_widest_width() {
    let p = WidthPolicy::MEMORY_LIKE;
    let max = p.max_width();
    assert_eq!(max, widest());
    for off in 0..80 {
        for len in 0..300 {
            let got: alloc::vec::Vec<_> = plan(off, len, p)
                .unwrap()
                .accesses()
                .map(|a| (a.offset, a.width))
                .collect();
            // Up to `SHORT_COPY` bytes, the inline width.
            let w = if len <= super::SHORT_COPY {
                max.min(crate::backend::INLINE_WIDTH)
            } else {
                max
            };
            assert_eq!(got, greedy(off, len, w), "{off} {len}");
        }
    }
}

#[test]
fn clamping_keeps_memory_like_and_lowers_its_width() {
    let m = WidthPolicy::MEMORY_LIKE.clamped(16);
    assert_eq!(m, WidthPolicy::MEMORY_LIKE);
    assert!(m.is_memory_like());
    assert_eq!(m.max_width(), widest().min(16));
    assert_eq!(WidthPolicy::MEMORY_LIKE.clamped(4096).max_width(), widest());
    assert_eq!(WidthPolicy::U64.clamped(4), WidthPolicy::U32);
    assert_eq!(WidthPolicy::U64.clamped(64), WidthPolicy::U64);
    assert_ne!(WidthPolicy::MEMORY_LIKE, WidthPolicy::fixed(16));
}

/// Copies through the mock with the memory-like policy: every write is recorded with its
/// full value (32-byte ones too) and the data round-trips.
#[test]
fn memory_like_copies_are_recorded_whole() {
    use crate::backend::MockIo;
    use crate::{memcpy_fromio, memcpy_toio, IoMem};
    let mock = MockIo::new(512);
    let io = IoMem::new(&mock).with_policy(WidthPolicy::MEMORY_LIKE);
    let src: alloc::vec::Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
    let win = io.subslice(5..205).unwrap();
    memcpy_toio(&win, &src).unwrap();
    let writes = mock.writes();
    assert_eq!(
        writes.iter().map(|a| a.width).max(),
        Some(widest()),
        "{writes:?}"
    );
    for a in &writes {
        assert_eq!(
            a.bytes(),
            src[a.offset - 5..a.offset - 5 + a.width],
            "{a:?}"
        );
    }
    assert_eq!(mock.peek(5, 200), src);
    let mut back = alloc::vec![0u8; 200];
    memcpy_fromio(&mut back, &win).unwrap();
    assert_eq!(back, src);
    mock.assert_no_violations();
}

/// The real backend's widest accesses (32-byte AVX ones where the CPU has them) over a
/// page-aligned RAM buffer: copies and fills land exactly where planned.
#[test]
fn mmio_memory_like_round_trips() {
    use crate::{memcpy_fromio, memcpy_toio, memset_io, Caching, IoMem, Mmio};
    #[repr(C, align(4096))]
    struct Page([u8; 4096]);
    let mut page = alloc::boxed::Box::new(Page([0x11; 4096]));
    let base = page.0.as_mut_ptr();
    let src: alloc::vec::Vec<u8> = (0..1000u32).map(|i| (i * 13 + 1) as u8).collect();
    for (off, len) in [(0, 1000), (1, 999), (31, 700), (64, 96), (100, 3)] {
        let mut back = alloc::vec![0u8; len];
        {
            // SAFETY: `base` is this test's own page (4096-aligned), valid for volatile
            // access of any width; it is not used otherwise until `mmio` is dropped at the
            // end of this block. It is RAM: cacheable.
            let mmio = unsafe { Mmio::new(base, 4096, Caching::Cacheable) }.unwrap();
            let io = IoMem::new(&mmio).with_policy(WidthPolicy::MEMORY_LIKE);
            assert_eq!(io.policy().max_width(), widest());
            let win = io.subslice(off..off + len).unwrap();
            memcpy_toio(&win, &src[..len]).unwrap();
            memcpy_fromio(&mut back, &win).unwrap();
            memset_io(&io.subslice(2000..2000 + len).unwrap(), 0xee).unwrap();
        }
        assert_eq!(back, src[..len]);
        assert_eq!(page.0[off..off + len], src[..len]);
        assert!(page.0[2000..2000 + len].iter().all(|&b| b == 0xee));
        assert!(page.0[2000 + len..].iter().all(|&b| b == 0x11));
        page.0.fill(0x11);
    }
}

#[test]
fn bad_policy_is_an_error() {
    assert!(WidthPolicy::new(3).is_err());
    assert!(WidthPolicy::new(32).is_err());
}
