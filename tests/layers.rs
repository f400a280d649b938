//! The dependency direction of the crate's modules, checked from the source: each top-level
//! module of `src/` may name only modules of lower layers (the layer diagram of the design:
//! vocabulary → backends → `IoMem`/copies → register cells → doorbells and locks → p2p → nvme;
//! `map` provides backends and knows no NVMe). A module cycle breaks the rule, so none can
//! appear.

use std::fs;
use std::path::Path;

/// Layer of each top-level module: a module may use only modules of a strictly lower layer
/// (and itself).
const LAYERS: &[(&str, u32)] = &[
    ("error", 0),
    ("order", 0),
    ("spin", 0),
    ("sync", 0),
    ("backend", 1),
    ("copy", 2),
    ("iomem", 3),
    ("reg", 4),
    ("dma", 4),
    ("migrate", 5),
    ("publish", 5),
    ("map", 6),
    ("p2p", 7),
    ("nvme", 8),
];

/// Names re-exported at the crate root, and the module each comes from.
const ROOT: &[(&str, &str)] = &[
    ("Backend", "backend"),
    ("Caching", "backend"),
    ("Mmio", "backend"),
    ("WidthPolicy", "copy"),
    ("Error", "error"),
    ("Result", "error"),
    ("IoMem", "iomem"),
    ("memcpy_fromio", "iomem"),
    ("memcpy_toio", "iomem"),
    ("memset_io", "iomem"),
    ("IoLock", "publish"),
    ("Doorbell", "publish"),
    ("IoSpinLock", "publish"),
    ("Arch", "order"),
    ("Barrier", "order"),
    ("Strategy", "order"),
    ("project", "iomem"),
];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|&(_, l)| l)
}

/// The code of a line: comments (`//`, `///`, `//!`) removed.
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// Every crate-level name a piece of code refers to: `crate::x`, `crate::{x, y::z}`.
fn crate_refs(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
        rest = after;
    }
    out
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, files);
        } else if p.extension().is_some_and(|x| x == "rs") {
            files.push(p);
        }
    }
}

/// `(file, line, from, to)` for each reference that runs against the layers.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut bad = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let from = top.trim_end_matches(".rs").to_string();
        if from == "lib" {
            continue;
        }
        let Some(from_layer) = layer(&from) else {
            bad.push(format!(
                "{}: module `{from}` has no layer in tests/layers.rs",
                rel.display()
            ));
            continue;
        };
        // Unit tests may drive a module through the layers above it: they are checked up to
        // the test module (a file of its own, or the `#[cfg(test)]` module at a file's end).
        if rel.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.starts_with("#[cfg(test)]") || line.starts_with("#[cfg(all(test") {
                break;
            }
            let code = code(line);
            if from == "map" && code.contains("nvme::") {
                bad.push(format!(
                    "{}:{}: map names NVMe: {}",
                    rel.display(),
                    n + 1,
                    line.trim()
                ));
            }
            for name in crate_refs(code) {
                let to = ROOT
                    .iter()
                    .find(|(r, _)| *r == name)
                    .map(|&(_, m)| m.to_string())
                    .unwrap_or(name);
                if to == from || to == "alloc" || to == "std" || to == "core" {
                    continue;
                }
                match layer(&to) {
                    Some(l) if l < from_layer => {}
                    Some(l) => bad.push(format!(
                        "{}:{}: `{from}` (layer {from_layer}) uses `{to}` (layer {l})",
                        rel.display(),
                        n + 1
                    )),
                    None => bad.push(format!(
                        "{}:{}: `{from}` uses `{to}`, which has no layer",
                        rel.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    bad
}

#[test]
fn modules_depend_only_on_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(
        bad.is_empty(),
        "dependencies against the layers:\n{}",
        bad.join("\n")
    );
}

/// The checker itself catches each kind of wrong arrow.
#[test]
fn the_checker_catches_wrong_arrows() {
    let dir = std::env::temp_dir().join(format!("iomem-layers-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("order")).unwrap();
    fs::create_dir_all(dir.join("map")).unwrap();
    // A barrier module that uses the handle above it (a cycle with iomem), and a map module
    // that knows an NVMe type.
    fs::write(
        dir.join("order/doorbell.rs"),
        "use crate::IoMem;\n// crate::nvme in a comment\n",
    )
    .unwrap();
    fs::write(
        dir.join("map/linux.rs"),
        "fn t() -> crate::nvme::cmb::BarTable { todo!() }\n",
    )
    .unwrap();
    fs::write(
        dir.join("copy.rs"),
        "use crate::{backend::Word, publish::Doorbell};\n",
    )
    .unwrap();
    let mut bad = violations(&dir);
    bad.sort();
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(bad.len(), 4, "{bad:#?}");
    assert!(bad
        .iter()
        .any(|b| b.contains("`copy` (layer 2) uses `publish`")));
    assert!(bad.iter().any(|b| b.contains("map names NVMe")));
    assert!(bad
        .iter()
        .any(|b| b.contains("`map` (layer 6) uses `nvme`")));
    assert!(bad
        .iter()
        .any(|b| b.contains("`order` (layer 0) uses `iomem`")));
}
