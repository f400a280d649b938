//! Misuse of `IoMem` that must not compile: dereferencing or indexing a handle, getting a pointer
//! or a slice of device memory out of it for `copy_nonoverlapping`/`copy_from_slice`, passing it
//! as `&[u8]`/`&mut [u8]`, keeping it past its mapping, writing a read-only or reading a
//! write-only `volatile-register` cell, and a constant register offset past the end of its block.
//!
//! `tests/ui/pass/` holds the well-formed counterparts, which must build and run.
//!
//! Each case lives in `tests/ui/NAME.rs`; `tests/ui/NAME.stderr` holds the compiler's errors,
//! which say why it does not compile. Regenerate them after a deliberate change with
//! `TRYBUILD=overwrite cargo test --test compile_fail`, and read the diff.
//!
//! The error text depends on the compiler version, so this test only runs on x86_64 (where the
//! `.stderr` files were made with the current stable compiler). Set `IOMEM_SKIP_UI=1` to skip it
//! anywhere else it should not run, e.g. with an older or newer toolchain.

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
    // case needs: its error is raised when the accessor is instantiated.
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/*.rs");
}
