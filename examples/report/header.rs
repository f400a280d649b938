//! The report's header: the CPU model, the wide-access features detected at run time, and the
//! width each [`WidthPolicy`] uses on this machine (from the crate's public
//! [`WidthPolicy::max_width`]).

use iomem::WidthPolicy;

/// The CPU model from `/proc/cpuinfo` ("model name"), or "unknown".
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The wide-access features this CPU has, as detected at run time (empty off x86_64;
/// MOVDIR64B by the crate's own detection, [`iomem::backend::has_movdir64b`]).
pub fn features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut f = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            f.push("AVX2");
        }
        if std::is_x86_feature_detected!("avx512f") {
            f.push("AVX-512F");
        }
        if iomem::backend::has_movdir64b() {
            f.push("MOVDIR64B");
        }
    }
    f
}

/// The header's lines: CPU, features, and the width of each policy.
pub fn lines() -> Vec<String> {
    let feats = features();
    let policies = [
        ("U8", WidthPolicy::U8),
        ("U16", WidthPolicy::U16),
        ("U32", WidthPolicy::U32),
        ("U64", WidthPolicy::U64),
        ("LINUX", WidthPolicy::LINUX),
        ("MEMORY_LIKE", WidthPolicy::MEMORY_LIKE),
    ];
    let widths: Vec<String> = policies
        .iter()
        .map(|(n, p)| format!("{n}={} B", p.max_width()))
        .collect();
    vec![
        format!("cpu: {}", cpu_model()),
        format!(
            "features: {}",
            if feats.is_empty() {
                "none detected".to_string()
            } else {
                feats.join(", ")
            }
        ),
        format!("widest access per policy: {}", widths.join(", ")),
    ]
}
