//! Property tests of the access plans and the copies that execute them.
//!
//! - `plan(offset, len, policy)` covers every byte of `[offset, offset + len)` exactly once, in
//!   ascending order, with naturally aligned power-of-two accesses no wider than the policy, and
//!   each access as wide as alignment, policy and the remaining length allow;
//! - `memcpy_toio` then `memcpy_fromio` round-trips, through the mock and through the real
//!   [`Mmio`] backend over RAM, for any device offset, length, policy and RAM-side misalignment,
//!   and leaves device memory equal to a plain slice copy with every byte outside the range intact;
//! - `memset_io` equals a plain fill of the range and nothing else;
//! - the mock's trace of each copy is exactly the plan's accesses, with the right values.

use iomem::backend::mock::{Access as Traced, Dir, MockIo};
use iomem::copy::{plan, Step};
use iomem::order::{Op, Placement};
use iomem::{
    memcpy_fromio, memcpy_toio, memset_io, Arch, Caching, Error, IoMem, Mmio, Strategy, WidthPolicy,
};
use proptest::prelude::*;
use zerocopy::IntoBytes;

/// One cache line of RAM, 64-aligned: a region of them lets memory-like copies make their
/// widest (64-byte, where the CPU has them) accesses.
#[derive(Clone, Copy, zerocopy::IntoBytes, zerocopy::FromBytes, zerocopy::Immutable)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Every policy a handle can have.
const POLICIES: [WidthPolicy; 5] = [
    WidthPolicy::U8,
    WidthPolicy::U16,
    WidthPolicy::U32,
    WidthPolicy::U64,
    WidthPolicy::MEMORY_LIKE,
];

/// Size of the device region the copy properties use: room for the largest offset + length.
const REGION: usize = 20 * 1024;

/// The number of barriers `placement` puts around an operation of `accesses` accesses.
fn barrier_count(p: Placement, accesses: usize) -> usize {
    usize::from(p.before.is_some())
        + usize::from(p.after.is_some())
        + if p.each.is_some() { accesses } else { 0 }
}

/// Every simulated architecture (the placement of barriers differs, and with it the executor's
/// loop: a per-access barrier takes a path of its own).
fn arch() -> impl proptest::strategy::Strategy<Value = Arch> {
    proptest::sample::select(vec![
        Arch::PowerPc64,
        Arch::Aarch64,
        Arch::Riscv64,
        Arch::X86_64,
        Arch::Other,
    ])
}

fn strategy() -> impl proptest::strategy::Strategy<Value = Strategy> {
    proptest::sample::select(vec![
        Strategy::Conservative,
        Strategy::Relaxed,
        Strategy::Batched,
    ])
}

fn policy() -> impl proptest::strategy::Strategy<Value = WidthPolicy> {
    proptest::sample::select(&POLICIES[..])
}

/// Lengths: mostly 0..2 KiB, some up to 16 KiB.
fn length() -> impl proptest::strategy::Strategy<Value = usize> {
    prop_oneof![4 => 0usize..2048, 1 => 2048usize..16 * 1024]
}

/// Device offsets: every alignment class, up to a few KiB in.
fn io_offset() -> impl proptest::strategy::Strategy<Value = usize> {
    0usize..4096
}

/// Offset of the memory-side buffer from a 64-byte boundary.
fn misalign() -> impl proptest::strategy::Strategy<Value = usize> {
    0usize..64
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

/// The widest access the plan should make at `off` with `left` bytes remaining: the largest power
/// of two that divides `off`, fits in `left`, and is within the policy.
fn natural_width(off: usize, left: usize, max: usize) -> usize {
    let align = if off == 0 {
        usize::MAX
    } else {
        1 << off.trailing_zeros()
    };
    let fits = 1 << (usize::BITS - 1 - left.leading_zeros());
    align.min(fits).min(max)
}

/// Checks every plan property for `[off, off + len)`.
fn check_plan(off: usize, len: usize, policy: WidthPolicy) -> Result<(), TestCaseError> {
    let p = plan(off, len, policy).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let accesses: Vec<Step> = p.accesses().collect();
    prop_assert_eq!(p.len(), accesses.len());
    prop_assert_eq!(p.is_empty(), len == 0);
    // The policy's width for this length (the inline width for a short copy).
    let max = policy.width_for(len);
    prop_assert!(max <= policy.max_width());
    let end = off + len;
    // `next` is the first byte not yet covered: each access must start exactly there (ascending,
    // no gap, no overlap), so every byte is covered exactly once.
    let mut next = off;
    for a in &accesses {
        prop_assert!(
            a.width.is_power_of_two(),
            "width {} not a power of two",
            a.width
        );
        prop_assert!(a.width <= max, "width {} above policy max {}", a.width, max);
        prop_assert_eq!(a.offset % a.width, 0, "access {:?} misaligned", a);
        prop_assert_eq!(
            a.offset,
            next,
            "access {:?} does not start at {:#x}",
            a,
            next
        );
        prop_assert!(
            a.offset + a.width <= end,
            "access {:?} past the end {:#x}",
            a,
            end
        );
        prop_assert_eq!(
            a.width,
            natural_width(a.offset, end - a.offset, max),
            "access {:?} narrower than alignment and length allow",
            a
        );
        next += a.width;
    }
    prop_assert_eq!(next, end, "range not fully covered");
    Ok(())
}

/// A bit pattern for "untouched" device bytes, distinct from the copied data.
fn background(i: usize) -> u8 {
    (i as u8).wrapping_mul(37) ^ 0xc3
}

/// Data to copy: never equal to the background byte at the same position.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed) | 1)
        .collect()
}

/// `len` bytes of `bytes` at `mis` bytes past a 64-byte boundary (the buffer keeps it alive).
fn misaligned(bytes: &[u8], mis: usize) -> (Vec<u64>, usize) {
    let mut buf = vec![0u64; (bytes.len() + mis).div_ceil(8) + 8];
    let base = buf.as_ptr() as usize;
    let start = (64 - base % 64) % 64 + mis;
    buf.as_mut_bytes()[start..start + bytes.len()].copy_from_slice(bytes);
    (buf, start)
}

fn mock_with_background(policy: WidthPolicy) -> MockIo {
    let mock = MockIo::new(REGION).with_max_width(policy.max_width());
    let bg: Vec<u8> = (0..REGION).map(background).collect();
    mock.poke(0, &bg);
    mock
}

/// The writes of a copy of `src` into `[off, off + len)`, as the plan says they must be made.
fn expected_writes(off: usize, src: &[u8], policy: WidthPolicy) -> Vec<(usize, usize, u128)> {
    plan(off, src.len(), policy)
        .unwrap()
        .accesses()
        .map(|a| {
            // `value` holds the low 16 bytes (of a 32-byte access too).
            let n = a.width.min(16);
            let mut v = [0u8; 16];
            v[..n].copy_from_slice(&src[a.offset - off..a.offset - off + n]);
            (a.offset, a.width, u128::from_le_bytes(v))
        })
        .collect()
}

fn shape(t: &[Traced]) -> Vec<(usize, usize, u128)> {
    t.iter().map(|a| (a.offset, a.width, a.value)).collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn plan_covers_the_range_exactly_once(off in io_offset(), len in length(), policy in policy()) {
        check_plan(off, len, policy)?;
    }

    #[test]
    fn plan_near_the_top_of_the_address_space(
        back in 0usize..4096,
        len in 0usize..4096,
        policy in policy(),
    ) {
        let off = usize::MAX - back;
        if off.checked_add(len).is_some() {
            check_plan(off, len, policy)?;
        } else {
            prop_assert_eq!(plan(off, len, policy), Err(Error::Overflow { offset: off, len }));
        }
    }

    #[test]
    fn mock_round_trip_equals_plain_copy(
        off in io_offset(),
        len in length(),
        policy in policy(),
        src_mis in misalign(),
        dst_mis in misalign(),
        seed in any::<u8>(),
        arch in arch(),
        strategy in strategy(),
    ) {
        let mock = mock_with_background(policy).with_arch(arch);
        let io = IoMem::new(&mock).with_policy(policy).with_strategy(strategy);
        prop_assert_eq!(io.policy(), policy);
        let n = plan(off, len, policy).unwrap().len();
        let window = io.subslice(off..off + len).unwrap();
        let src = data(len, seed);
        let (src_buf, s) = misaligned(&src, src_mis);

        mock.clear_events();
        memcpy_toio(&window, &src_buf.as_bytes()[s..s + len]).unwrap();
        // The trace is the plan, write for write, with the source bytes as values.
        let writes = mock.writes();
        prop_assert_eq!(writes.len(), mock.accesses().len(), "a copy to the device read it");
        prop_assert_eq!(shape(&writes), expected_writes(off, &src, policy));
        prop_assert_eq!(
            mock.barriers().len(),
            barrier_count(strategy.placement(arch, Op::CopyTo), n)
        );

        // Device memory equals a plain slice copy over the background.
        let mut model: Vec<u8> = (0..REGION).map(background).collect();
        model[off..off + len].copy_from_slice(&src);
        prop_assert!(mock.peek(0, REGION) == model, "device memory differs from a plain copy");

        mock.clear_events();
        let (mut dst_buf, d) = misaligned(&vec![0; len], dst_mis);
        memcpy_fromio(&mut dst_buf.as_mut_bytes()[d..d + len], &window).unwrap();
        prop_assert_eq!(&dst_buf.as_bytes()[d..d + len], &src[..]);
        let reads = mock.reads();
        prop_assert_eq!(reads.len(), mock.accesses().len(), "a copy from the device wrote it");
        prop_assert_eq!(shape(&reads), expected_writes(off, &src, policy));
        prop_assert_eq!(
            mock.barriers().len(),
            barrier_count(strategy.placement(arch, Op::CopyFrom), n)
        );
        mock.assert_no_violations();
    }

    #[test]
    fn mock_memset_equals_plain_fill(
        off in io_offset(),
        len in length(),
        policy in policy(),
        byte in any::<u8>(),
    ) {
        let mock = mock_with_background(policy);
        let window = IoMem::new(&mock).with_policy(policy).subslice(off..off + len).unwrap();
        mock.clear_events();
        memset_io(&window, byte).unwrap();
        let mut model: Vec<u8> = (0..REGION).map(background).collect();
        model[off..off + len].fill(byte);
        prop_assert!(mock.peek(0, REGION) == model, "memset differs from a plain fill");
        let writes = mock.writes();
        prop_assert_eq!(writes.len(), mock.accesses().len());
        prop_assert_eq!(shape(&writes), expected_writes(off, &vec![byte; len], policy));
        mock.assert_no_violations();
    }

    #[test]
    fn mmio_over_ram_round_trip_and_memset(
        off in io_offset(),
        len in length(),
        policy in policy(),
        src_mis in misalign(),
        dst_mis in misalign(),
        seed in any::<u8>(),
        fill_len in 0usize..256,
    ) {
        let mut ram: Vec<Line> = vec![Line([0; 64]); REGION / 64];
        ram.as_mut_bytes().iter_mut().enumerate().for_each(|(i, b)| *b = background(i));
        let src = data(len, seed);
        let (src_buf, s) = misaligned(&src, src_mis);
        let (mut dst_buf, d) = misaligned(&vec![0; len], dst_mis);
        let fill_len = fill_len.min(len);
        let base = ram.as_mut_ptr().cast::<u8>();
        {
            // SAFETY: `base` points to `REGION` bytes of RAM owned by `ram` (a `Vec<Line>`, so
            // 64-aligned, as `Mmio::BASE_ALIGN` requires and more), valid for volatile access of
            // any width up to 64 at aligned addresses. `ram` is neither read, written nor borrowed until
            // this block ends, and `mmio` and every handle to it die at its end, so no reference
            // to those bytes exists while the backend lives. The caching claim is irrelevant for
            // RAM.
            let mmio = unsafe { Mmio::new(base, REGION, Caching::Uncached) }.unwrap();
            let io = IoMem::new(&mmio).with_policy(policy);
            prop_assert_eq!(io.policy(), policy);
            let window = io.subslice(off..off + len).unwrap();
            memcpy_toio(&window, &src_buf.as_bytes()[s..s + len]).unwrap();
            memcpy_fromio(&mut dst_buf.as_mut_bytes()[d..d + len], &window).unwrap();
            // Overwrite a prefix of the window: the memset must leave the rest as copied.
            memset_io(&window.subslice(..fill_len).unwrap(), !seed).unwrap();
        }
        prop_assert_eq!(&dst_buf.as_bytes()[d..d + len], &src[..]);
        let mut model: Vec<u8> = (0..REGION).map(background).collect();
        model[off..off + len].copy_from_slice(&src);
        model[off..off + fill_len].fill(!seed);
        prop_assert!(ram.as_bytes() == &model[..], "RAM differs from a plain copy and fill");
    }
}

#[test]
fn plan_checker_rejects_a_bad_plan() {
    // The natural-width model must disagree with an access that is narrower than allowed, so the
    // property above can fail.
    assert_eq!(natural_width(8, 8, 8), 8);
    assert_ne!(natural_width(8, 8, 8), 4);
    assert_eq!(natural_width(6, 100, 16), 2);
    assert_eq!(natural_width(0, 3, 16), 2);
}

#[test]
fn mock_trace_direction_is_recorded() {
    // Guard for `shape`: it drops the direction, so check the mock records it separately.
    let mock = MockIo::new(64);
    let io = IoMem::new(&mock);
    io.try_write32(0, 1).unwrap();
    io.try_read32(0).unwrap();
    let dirs: Vec<Dir> = mock.accesses().iter().map(|a| a.dir).collect();
    assert_eq!(dirs, [Dir::Write, Dir::Read]);
}

/// Long memory-like and fixed-width copies take the one-pass walk, with no plan built; copies
/// whose device range and memory side are aligned to the policy's width (which random offsets
/// almost never give) are its body alone. Their traces must be the plan's, write for write
/// and read for read, with the strategy's barriers, on every architecture; a misaligned memory
/// side beside them.
#[test]
fn long_aligned_copies_make_the_planned_accesses() {
    let arches = [
        Arch::PowerPc64,
        Arch::Aarch64,
        Arch::Riscv64,
        Arch::X86_64,
        Arch::Other,
    ];
    let strategies = [Strategy::Conservative, Strategy::Relaxed, Strategy::Batched];
    let mut walked = 0;
    for policy in POLICIES {
        let w = policy.max_width();
        for len in [256 + w, 1024, 4096 + 64] {
            for off in [0, 64, 4096] {
                for mis in [0, 8] {
                    for (arch, strategy) in arches.iter().flat_map(|a| strategies.map(|s| (*a, s)))
                    {
                        let mock = mock_with_background(policy).with_arch(arch);
                        let io = IoMem::new(&mock)
                            .with_policy(policy)
                            .with_strategy(strategy);
                        let window = io.subslice(off..off + len).unwrap();
                        let n = plan(off, len, policy).unwrap().len();
                        let src = data(len, len as u8 ^ off as u8);
                        let (src_buf, s) = misaligned(&src, mis);
                        walked += usize::from(mis % w == 0 && len % w == 0);

                        mock.clear_events();
                        memcpy_toio(&window, &src_buf.as_bytes()[s..s + len]).unwrap();
                        let what = format!(
                            "{policy:?} len {len} off {off} mis {mis} {arch:?} {strategy:?}"
                        );
                        assert_eq!(
                            shape(&mock.writes()),
                            expected_writes(off, &src, policy),
                            "{what}"
                        );
                        assert_eq!(mock.writes().len(), mock.accesses().len(), "{what}");
                        assert_eq!(
                            mock.barriers().len(),
                            barrier_count(strategy.placement(arch, Op::CopyTo), n),
                            "{what}"
                        );

                        mock.clear_events();
                        let (mut dst_buf, d) = misaligned(&vec![0; len], mis);
                        memcpy_fromio(&mut dst_buf.as_mut_bytes()[d..d + len], &window).unwrap();
                        assert_eq!(&dst_buf.as_bytes()[d..d + len], &src[..], "{what}");
                        assert_eq!(
                            shape(&mock.reads()),
                            expected_writes(off, &src, policy),
                            "{what}"
                        );
                        assert_eq!(
                            mock.barriers().len(),
                            barrier_count(strategy.placement(arch, Op::CopyFrom), n),
                            "{what}"
                        );

                        mock.clear_events();
                        memset_io(&window, 0xa5).unwrap();
                        assert_eq!(
                            shape(&mock.writes()),
                            expected_writes(off, &vec![0xa5; len], policy),
                            "{what}"
                        );
                        mock.assert_no_violations();
                    }
                }
            }
        }
    }
    assert!(walked > 0, "no case had the walk's alignment");
}

/// Whether every byte of `bytes` outside `copy` is still `guard`.
fn untouched(bytes: &[u8], copy: std::ops::Range<usize>, guard: u8) -> bool {
    bytes[..copy.start]
        .iter()
        .chain(&bytes[copy.end..])
        .all(|&b| b == guard)
}

/// The real backend over RAM (64-byte lines of `guard`): `memcpy_toio` of `src` to
/// `[io_off, io_off + src.len())` under `policy`, then `memcpy_fromio` of that range into
/// `back` at `at` (the rest of `back` is `guard` bytes); both sides hold exactly the copy, and
/// no byte around it changed.
fn round_trip_over_ram(
    policy: WidthPolicy,
    io_off: usize,
    src: &[u8],
    back: &mut [u8],
    at: usize,
    guard: u8,
    what: &str,
) {
    let len = src.len();
    let mut ram: Vec<Line> = vec![Line([guard; 64]); (io_off + len) / 64 + 2];
    let region = ram.len() * 64;
    let base = ram.as_mut_ptr().cast::<u8>();
    {
        // SAFETY: `base` points to `region` bytes of RAM owned by `ram` (64-aligned lines),
        // neither read, written nor borrowed until this block ends, where `mmio` and every
        // handle to it die; the caching claim is irrelevant for RAM.
        let mmio = unsafe { Mmio::new(base, region, Caching::Uncached) }.unwrap();
        let window = IoMem::new(&mmio)
            .with_policy(policy)
            .subslice(io_off..io_off + len)
            .unwrap();
        memcpy_toio(&window, src).unwrap();
        memcpy_fromio(&mut back[at..at + len], &window).unwrap();
    }
    let dev = ram.as_bytes();
    assert_eq!(&dev[io_off..io_off + len], src, "{what}: device side");
    assert!(
        untouched(dev, io_off..io_off + len, guard),
        "{what}: device bytes outside the copy"
    );
    assert_eq!(&back[at..at + len], src, "{what}: read back");
    assert!(
        untouched(back, at..at + len, guard),
        "{what}: memory bytes outside the copy"
    );
}

/// Wide bodies with a memory side off their width — the merged bodies that move aligned memory
/// words: 64-byte bodies of 16 lines or more on a CPU with AVX-512 VBMI, 32-byte ones of 96 words
/// or more read from the device on one with AVX2. For bodies of 2 to 51 lines (either side of
/// each shortest merged one, the unrolled step and its remainders), every memory misalignment
/// class of a 32-byte word (each shift of the 32-byte merge) in both halves of a line, and a
/// device range with and without a head and tail, the trace is the plan's, the copy is exact,
/// and no byte of RAM outside the copy changes — through the mock and through the real backend
/// over RAM.
#[test]
fn wide_bodies_with_a_misaligned_memory_side() {
    let policy = WidthPolicy::MEMORY_LIKE;
    let misalignments = (1usize..32).chain([32, 40, 48, 63]);
    for lines in [
        2usize, 3, 7, 8, 9, 10, 15, 16, 17, 19, 24, 25, 33, 47, 48, 49, 50, 51,
    ] {
        for io_off in [0usize, 64, 1, 8, 63] {
            for mis in misalignments.clone() {
                let len = lines * 64 + if io_off % 64 == 0 { 0 } else { 64 };
                let src = data(len, (lines * 3 + mis) as u8);
                let what = format!("{lines} lines, io +{io_off}, memory +{mis}");

                // Mock: the trace is the plan.
                let mock = mock_with_background(policy);
                let window = IoMem::new(&mock)
                    .with_policy(policy)
                    .subslice(io_off..io_off + len)
                    .unwrap();
                let (src_buf, s) = misaligned(&src, mis);
                mock.clear_events();
                memcpy_toio(&window, &src_buf.as_bytes()[s..s + len]).unwrap();
                assert_eq!(
                    shape(&mock.writes()),
                    expected_writes(io_off, &src, policy),
                    "{what}"
                );
                mock.clear_events();
                let guard = 0x6b;
                let mut dst_buf: Vec<Line> = vec![Line([guard; 64]); (len + mis) / 64 + 3];
                let d = 64 + mis;
                memcpy_fromio(&mut dst_buf.as_mut_bytes()[d..d + len], &window).unwrap();
                assert_eq!(
                    shape(&mock.reads()),
                    expected_writes(io_off, &src, policy),
                    "{what}"
                );
                let bytes = dst_buf.as_bytes();
                assert_eq!(&bytes[d..d + len], &src[..], "{what}");
                assert!(
                    untouched(bytes, d..d + len, guard),
                    "{what}: wrote outside the copy"
                );

                // Real backend over RAM: the same, with guards around the device range too.
                let mut back: Vec<Line> = vec![Line([guard; 64]); (len + mis) / 64 + 3];
                let src = &src_buf.as_bytes()[s..s + len];
                round_trip_over_ram(policy, io_off, src, back.as_mut_bytes(), d, guard, &what);
            }
        }
    }
}

/// Short copies — the per-command cost: every policy, lengths around each access width and the
/// 64-byte command (whole words, a word short, a byte over), device offsets with and without a
/// head, memory sides on and off a line: `memcpy_toio`, `memcpy_fromio`, `memset_io` and a typed
/// write make the plan's accesses (mock) and move exactly the range (the real backend over RAM,
/// guard bytes on both sides).
#[test]
fn short_copies_make_the_planned_accesses() {
    const LENS: [usize; 22] = [
        1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 96, 128, 192, 255, 256, 257,
    ];
    let guard = 0x5a;
    let mut commands = 0;
    for policy in POLICIES {
        let w = policy.max_width();
        for len in LENS {
            for io_off in [0usize, 1, 8, 16, 32, 63, 64, 128] {
                for mis in [0usize, 1, 8, 32] {
                    let src = data(len, (len + io_off + mis) as u8);
                    let what = format!("{policy:?} len {len} io +{io_off} memory +{mis}");
                    commands += usize::from(len == 64 && io_off % w == 0);
                    let (src_buf, s) = misaligned(&src, mis);
                    let src = &src_buf.as_bytes()[s..s + len];

                    // Mock: the traces are the plan.
                    let mock = mock_with_background(policy);
                    let io = IoMem::new(&mock).with_policy(policy);
                    let window = io.subslice(io_off..io_off + len).unwrap();
                    let expected = expected_writes(io_off, src, policy);
                    mock.clear_events();
                    memcpy_toio(&window, src).unwrap();
                    assert_eq!(shape(&mock.writes()), expected, "{what}: to io");
                    assert_eq!(mock.peek(io_off, len), src, "{what}: to io");
                    mock.clear_events();
                    let (mut dst_buf, d) = misaligned(&vec![guard; len + 2], mis);
                    let dst = &mut dst_buf.as_mut_bytes()[d..d + len + 2];
                    memcpy_fromio(&mut dst[1..=len], &window).unwrap();
                    assert_eq!(shape(&mock.reads()), expected, "{what}: from io");
                    assert_eq!(&dst[1..=len], src, "{what}: from io");
                    assert!(untouched(dst, 1..len + 1, guard), "{what}: from io outside");
                    mock.clear_events();
                    memset_io(&window, 0xa5).unwrap();
                    assert_eq!(
                        shape(&mock.writes()),
                        expected_writes(io_off, &vec![0xa5; len], policy),
                        "{what}: memset"
                    );
                    mock.clear_events();
                    if write_typed(&io, io_off, src) {
                        assert_eq!(shape(&mock.writes()), expected, "{what}: typed write");
                        assert_eq!(mock.peek(io_off, len), src, "{what}: typed write");
                    }
                    mock.assert_no_violations();

                    // Real backend over RAM.
                    let (mut back_buf, b) = misaligned(&vec![guard; len + 2], mis);
                    let back = &mut back_buf.as_mut_bytes()[b..b + len + 2];
                    round_trip_over_ram(policy, io_off, src, back, 1, guard, &what);
                }
            }
        }
    }
    assert!(commands > 0, "no case was a whole-word command");
}

/// Writes `src` at `off` as one typed value (`[u8; N]`) where `N` is a length with a type here;
/// whether it did.
fn write_typed(io: &IoMem<'_, [u8], MockIo>, off: usize, src: &[u8]) -> bool {
    fn as_array<const N: usize>(io: &IoMem<'_, [u8], MockIo>, off: usize, src: &[u8]) -> bool {
        let value: [u8; N] = src.try_into().unwrap();
        io.try_write(off, &value).unwrap();
        true
    }
    match src.len() {
        16 => as_array::<16>(io, off, src),
        32 => as_array::<32>(io, off, src),
        48 => as_array::<48>(io, off, src),
        64 => as_array::<64>(io, off, src),
        65 => as_array::<65>(io, off, src),
        128 => as_array::<128>(io, off, src),
        256 => as_array::<256>(io, off, src),
        _ => false,
    }
}

/// A typed write is its value's greedy plan under every policy, Linux's (accesses of up to 8
/// bytes) included, with the barriers of a write for one access and of a copy for more, on
/// every architecture and strategy.
#[test]
fn typed_writes_make_the_greedy_plan_under_every_policy() {
    let arches = [Arch::PowerPc64, Arch::Aarch64, Arch::X86_64, Arch::Other];
    let strategies = [Strategy::Conservative, Strategy::Relaxed, Strategy::Batched];
    let policies = POLICIES.iter().copied().chain([WidthPolicy::LINUX]);
    for policy in policies {
        for len in [16usize, 32, 48, 64, 65, 128, 256] {
            for off in [0usize, 8, 16, 32, 64, 1, 63] {
                for (arch, strategy) in arches.iter().flat_map(|a| strategies.map(|s| (*a, s))) {
                    let what = format!("{policy:?} len {len} off {off} {arch:?} {strategy:?}");
                    let mock = mock_with_background(policy).with_arch(arch);
                    let io = IoMem::new(&mock)
                        .with_policy(policy)
                        .with_strategy(strategy);
                    let src = data(len, (len ^ off) as u8);
                    let n = plan(off, len, policy).unwrap().len();
                    mock.clear_events();
                    assert!(
                        write_typed(&io, off, &src),
                        "{what}: no type for the length"
                    );
                    assert_eq!(
                        shape(&mock.writes()),
                        expected_writes(off, &src, policy),
                        "{what}"
                    );
                    assert_eq!(mock.peek(off, len), src, "{what}");
                    let op = if n == 1 { Op::Write } else { Op::CopyTo };
                    assert_eq!(
                        mock.barriers().len(),
                        barrier_count(strategy.placement(arch, op), n),
                        "{what}"
                    );
                    mock.assert_no_violations();
                }
            }
        }
    }
}
