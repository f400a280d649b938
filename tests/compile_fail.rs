//! Misuse of `IoMem` that must not compile: dereferencing or indexing a handle, getting a pointer
//! or a slice of device memory out of it for `copy_nonoverlapping`/`copy_from_slice`, passing it
//! as `&[u8]`/`&mut [u8]`, keeping it past its mapping, writing a read-only or reading a
//! write-only `volatile-register` cell, a constant register offset past the end of its block,
//! projecting to a field more aligned than its (packed) block, wrapping a raw pointer as
//! device memory without `unsafe`, handing a queue a command through a type of one's own or a
//! request whose memory nothing holds without `unsafe`, lending a queue's ring to its Create
//! I/O Queue command (whose ring outlives its completion) without `unsafe`, making device
//! addresses from numbers — a `DmaAddr`, a BAR, a pool's bus address, a CMB description —
//! without `unsafe`, and a p2p distance that no topology check made.
//!
//! `tests/ui/pass/` holds the well-formed counterparts, which must build and run.
//!
//! Each case lives in `tests/ui/NAME.rs`; `tests/ui/NAME.stderr` holds the compiler's errors,
//! which say why it does not compile. Regenerate them after a deliberate change with
//! `TRYBUILD=overwrite cargo test --test compile_fail`, and read the diff.
//!
//! The error text depends on the compiler version, so this test only runs on x86_64 (where the
//! `.stderr` files were made with rustc 1.95 stable). Set `IOMEM_SKIP_UI=1` to skip it with any
//! other compiler (the MSRV toolchain, nightly for sanitizers): the cases still fail to compile
//! there, but with differently worded errors.

#[test]
#[cfg_attr(
    not(target_arch = "x86_64"),
    ignore = "compiler messages are recorded on x86_64 with the current stable rustc"
)]
fn misuse_does_not_compile() {
    if std::env::var_os("IOMEM_SKIP_UI").is_some() {
        eprintln!("IOMEM_SKIP_UI is set: compile-fail cases skipped");
        return;
    }
    let t = trybuild::TestCases::new();
    // A passing case makes trybuild build (not just check) every case, which the constant-offset
    // and packed-projection cases need: their errors are raised when the accessor is
    // instantiated, which `cargo check` never does.
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/*.rs");
}
