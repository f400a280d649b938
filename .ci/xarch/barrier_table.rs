//! Prints the barrier instruction table (`iomem::order::instructions`) for the cross-architecture
//! instruction check, one line per architecture and barrier kind:
//!
//! ```text
//! cargo run --quiet --example xarch_barrier_table
//! powerpc64,IoAfterRead,twi 0,r,0;isync
//! x86_64,IoBeforeWrite,
//! ```
//!
//! The barrier kinds are those in `Barrier::ALL`; `.ci/xarch/insn-check.sh` compares that list
//! with the variants declared in `src/order/mod.rs`, so a kind missing from either fails the check.

use iomem::order::{instructions, Arch, Barrier};

fn main() {
    for arch in Arch::ALL {
        for barrier in Barrier::ALL {
            println!(
                "{},{:?},{}",
                arch.name(),
                barrier,
                instructions(arch, barrier).join(";")
            );
        }
    }
}
