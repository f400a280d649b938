//! Bodies whose memory side is off the width's alignment: the memory side moves whole aligned
//! words, with the bytes shifted between registers.
//!
//! A body's device accesses are aligned by the plan; when the memory side is off by `s` bytes, a
//! plain body makes every memory-side access straddle two words, and every other 32-byte (every
//! 64-byte) one two cache lines, which for a store costs about twice an aligned one. As a C
//! library `memcpy` aligns its destination, these bodies align the memory side: each aligned
//! memory word is two neighbouring device values merged by byte shuffles. The device accesses
//! are exactly the plan's, in its order: only the memory side changes shape, and it never
//! touches a byte outside the copy (the first and last words are unaligned, overlapping the
//! aligned ones with the same bytes). Short bodies keep the split accesses, which cost less than
//! the merge's setup there.
//!
//! - [`w256`]: 32-byte bodies read from the device (AVX2); written ones keep their unaligned
//!   loads, which cost little more than aligned ones.
//! - [`w512`]: 64-byte bodies both ways (AVX-512 VBMI).

pub(super) mod w256;
// Compiled only by rustc 1.89 or newer (`cfg(iomem_avx512)`, from the build script), the
// release that made its AVX-512 intrinsics stable.
#[cfg(iomem_avx512)]
#[clippy::msrv = "1.89"]
pub(super) mod w512;
