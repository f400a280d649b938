//! The main job: copy, barrier, allocator, DMA-memory and NVMe queue figures on the built-in RAM
//! backend.
//!
//! ```text
//! cargo run --release --example report [-- --csv] [-- --quick] [-- --only SECTION]
//! ```
//!
//! Prints one table per section; with `--csv`, the same rows as CSV with the header
//! `section,case,bytes,misalign,variant,value,unit,ratio`. `--quick` runs a short version.
//! First comes a header: the CPU model, the features detected (AVX2, AVX-512F, MOVDIR64B) and
//! the widest access of each width policy (on stderr with `--csv`).

mod alloc;
mod barrier;
mod copy;
mod dma;
mod header;
mod nvme;
mod ram;
mod sqe;
mod svg;

/// One result row. `ratio` is relative to the section's reference variant in the same run.
#[derive(Debug, Clone)]
pub struct Row {
    pub section: &'static str,
    pub case: String,
    pub bytes: u64,
    pub misalign: String,
    pub variant: String,
    pub value: f64,
    pub unit: &'static str,
    pub ratio: Option<f64>,
}

/// A report section: runs its measurements and returns its rows.
pub type Section = fn(Opts) -> Vec<Row>;

/// Options shared by every section.
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    pub quick: bool,
}

/// Median of a non-empty sample (sorts it).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut csv = false;
    let mut quick = false;
    let mut only: Option<String> = None;
    let mut svg_dir: Option<std::path::PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--csv" => csv = true,
            "--quick" => quick = true,
            "--only" => match it.next() {
                Some(name) => only = Some(name.clone()),
                None => {
                    eprintln!(
                        "report: --only takes a section name (copy, barrier, alloc, dma, nvme, sqe)"
                    );
                    std::process::exit(2);
                }
            },
            "--svg" => match it.next() {
                Some(d) => svg_dir = Some(d.into()),
                None => {
                    eprintln!("report: --svg takes a directory");
                    std::process::exit(2);
                }
            },
            "-h" | "--help" => {
                println!(
                    "usage: report [--csv] [--quick] [--only copy|barrier|alloc|dma|nvme|sqe]"
                );
                return;
            }
            other => {
                eprintln!(
                    "report: unknown argument {other:?} (expected --csv, --quick, --only NAME)"
                );
                std::process::exit(2);
            }
        }
    }
    let opts = Opts { quick };
    let sections: [(&str, Section); 6] = [
        ("copy", copy::run),
        ("barrier", barrier::run),
        ("alloc", alloc::run),
        ("dma", dma::run),
        ("nvme", nvme::run),
        ("sqe", sqe::run),
    ];
    // The header goes to stderr with CSV (keeps the CSV clean).
    for l in header::lines() {
        if csv {
            eprintln!("{l}");
        } else {
            println!("{l}");
        }
    }
    if csv {
        println!("section,case,bytes,misalign,variant,value,unit,ratio");
    }
    let mut all = Vec::new();
    if let Some(o) = &only {
        if !sections.iter().any(|(n, _)| n == o) {
            eprintln!("report: no section {o:?} (copy, barrier, alloc, dma, nvme, sqe)");
            std::process::exit(2);
        }
    }
    for (name, run) in sections {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let rows = run(opts);
        if csv {
            for r in &rows {
                // The CSV is unquoted: a comma in a name would shift the fields after it.
                let names = [r.section, &r.case, &r.misalign, &r.variant, r.unit];
                assert!(
                    names.iter().all(|f| !f.contains(',')),
                    "report: a comma in a CSV field of {names:?}"
                );
                println!(
                    "{},{},{},{},{},{:.4},{},{}",
                    r.section,
                    r.case,
                    r.bytes,
                    r.misalign,
                    r.variant,
                    r.value,
                    r.unit,
                    r.ratio.map(|x| format!("{x:.4}")).unwrap_or_default()
                );
            }
        } else if !rows.is_empty() {
            println!("\n== {name} ==");
            println!(
                "{:<14} {:>10} {:>9} {:<28} {:>12} {:<10} {:>7}",
                "case", "bytes", "misalign", "variant", "value", "unit", "ratio"
            );
            for r in &rows {
                println!(
                    "{:<14} {:>10} {:>9} {:<28} {:>12.3} {:<10} {:>7}",
                    r.case,
                    r.bytes,
                    r.misalign,
                    r.variant,
                    r.value,
                    r.unit,
                    r.ratio.map(|x| format!("{x:.3}")).unwrap_or_default()
                );
            }
        }
        all.extend(rows);
    }
    // Target checks go to stdout with the tables, to stderr with CSV (keeps the CSV clean).
    let checks = copy::targets(&all);
    if !checks.is_empty() {
        if csv {
            eprintln!("copy targets:");
            for c in &checks {
                eprintln!("  {c}");
            }
        } else {
            println!("\n== copy targets ==");
            for c in &checks {
                println!("{c}");
            }
        }
    }
    if let Some(dir) = &svg_dir {
        match svg::write(dir, &all) {
            Ok(files) => eprintln!("svg: {} charts in {}", files.len(), dir.display()),
            Err(e) => {
                eprintln!("report: writing charts to {}: {e}", dir.display());
                std::process::exit(1);
            }
        }
    }
}
