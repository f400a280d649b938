//! Build script: one probe of the compiler, no code generation.
//!
//! Sets `cfg(iomem_avx512)` when rustc is 1.89 or newer, the release that made the AVX-512
//! target features and intrinsics stable. With it, x86_64 builds get the 64-byte (`zmm`)
//! accesses of memory-like copies (still used only where the CPU has AVX-512F, detected at run
//! time); older compilers (down to the MSRV, 1.85) build the crate with 32-byte accesses at most.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC");
    if rustc_minor().is_some_and(|minor| minor >= 89) {
        println!("cargo:rustc-cfg=iomem_avx512");
    }
}

/// The minor version of the rustc that builds the crate (`rustc 1.N.P ...`), if it can be read.
fn rustc_minor() -> Option<u32> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    if parts.next()? != "1" {
        return None;
    }
    parts.next()?.parse().ok()
}
