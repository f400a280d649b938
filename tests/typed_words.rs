//! Typed values of 16, 32 and 64 bytes (a 16-byte register block, a 64-byte submission queue
//! entry) written through a memory-like handle: at every offset and under every width the
//! policy can be capped at, the write makes exactly the accesses of the greedy plan for that
//! range and lands the bytes; a whole aligned word the width for its size covers
//! (`WidthPolicy::width_for`: at most the inline width up to `SHORT_COPY` bytes) is one access
//! of its width (the word path, which skips the walk). The fixed-width policies, greedy too,
//! likewise.

use iomem::backend::MockIo;
use iomem::copy::plan;
use iomem::{IoMem, WidthPolicy};
use zerocopy::{Immutable, IntoBytes};

/// Writes `value` at every offset of `0..80` through a handle with `policy` and checks each
/// write's accesses against the plan and its bytes against `value`.
fn check<const N: usize>(policy: WidthPolicy)
where
    [u8; N]: IntoBytes + Immutable,
{
    let mock = MockIo::new(256);
    let io = IoMem::new(&mock).with_policy(policy);
    let max = io.policy().max_width();
    let value: [u8; N] = core::array::from_fn(|i| (i * 13 + N) as u8);
    for off in 0..80 {
        mock.clear_events();
        io.try_write(off, &value).expect("in range");
        let got: Vec<(usize, usize)> = mock.writes().iter().map(|a| (a.offset, a.width)).collect();
        let want: Vec<(usize, usize)> = plan(off, N, io.policy())
            .expect("a plan")
            .accesses()
            .map(|s| (s.offset, s.width))
            .collect();
        assert_eq!(got, want, "{N} bytes at {off}, width {max}");
        assert_eq!(mock.peek(off, N), value, "{N} bytes at {off}, width {max}");
        if off % N == 0 && N <= io.policy().width_for(N) {
            assert_eq!(got, [(off, N)], "one access for an aligned word");
        }
    }
    mock.assert_no_violations();
}

#[test]
fn typed_words_make_the_planned_accesses_at_every_offset_and_width() {
    for cap in [8, 16, 32, 64] {
        let policy = WidthPolicy::MEMORY_LIKE.clamped(cap);
        check::<16>(policy);
        check::<32>(policy);
        check::<64>(policy);
    }
}

/// The fixed widths take the same unplanned path (their plans are greedy too).
#[test]
fn fixed_width_typed_values_make_the_planned_accesses() {
    for policy in [
        WidthPolicy::U8,
        WidthPolicy::U16,
        WidthPolicy::U32,
        WidthPolicy::U64,
    ] {
        check::<16>(policy);
        check::<64>(policy);
    }
    // 16-byte accesses where the CPU has them (x86_64, aarch64).
    if let Ok(sixteen) = WidthPolicy::new(16) {
        check::<16>(sixteen);
        check::<64>(sixteen);
    }
}

/// A value the word path does not take (not a power of two wide) still follows the plan.
#[test]
fn other_sizes_keep_the_planned_accesses() {
    let mock = MockIo::new(256);
    let io = IoMem::new(&mock).with_policy(WidthPolicy::MEMORY_LIKE);
    let value = [7u8; 48];
    for off in [0, 16, 64, 65] {
        mock.clear_events();
        io.try_write(off, &value).expect("in range");
        let got: Vec<(usize, usize)> = mock.writes().iter().map(|a| (a.offset, a.width)).collect();
        let want: Vec<(usize, usize)> = plan(off, 48, io.policy())
            .expect("a plan")
            .accesses()
            .map(|s| (s.offset, s.width))
            .collect();
        assert_eq!(got, want, "48 bytes at {off}");
        assert_eq!(mock.peek(off, 48), value);
    }
}
