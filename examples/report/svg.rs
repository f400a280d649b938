//! `--svg DIR`: charts of the report's rows (plotters, SVG backend): copy GB/s against size, one
//! chart per direction and misalignment, one line per variant; and one bar per variant for the
//! barrier section's ns per submit (per strategy), the allocator's throughput and largest free
//! block at 50% fill, and the NVMe driver's ns per command (per mode).

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use crate::Row;

/// One chart's lines: variant → (log2 bytes, GB/s) points.
type Lines = BTreeMap<String, Vec<(f64, f64)>>;

type Res = Result<(), Box<dyn std::error::Error>>;

/// Bar charts: (section, case, unit) → (variant, value) bars, in the report's order.
type Bars<'a> = BTreeMap<(&'a str, &'a str, &'a str), Vec<(&'a str, f64)>>;

fn file_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes the copy charts into `dir` and returns the files written.
pub fn write(dir: &Path, rows: &[Row]) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let mut charts: BTreeMap<(String, String), Lines> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.section == "copy" && r.unit == "GB/s")
    {
        charts
            .entry((r.case.clone(), r.misalign.clone()))
            .or_default()
            .entry(r.variant.clone())
            .or_default()
            .push(((r.bytes as f64).log2(), r.value));
    }
    let mut files = Vec::new();
    for ((case, mis), lines) in &charts {
        let name = format!("copy-{}-{}.svg", file_name(case), file_name(mis));
        copy_chart(&dir.join(&name), &format!("copy {case}, {mis}"), lines)?;
        files.push(name);
    }
    let mut bars = Bars::new();
    for r in rows.iter().filter(|r| {
        matches!(
            (r.section, r.unit),
            ("barrier", "ns/submit") | ("alloc", "pairs/s" | "bytes") | ("nvme", "ns")
        )
    }) {
        bars.entry((r.section, r.case.as_str(), r.unit))
            .or_default()
            .push((r.variant.as_str(), r.value));
    }
    for ((section, case, unit), v) in &bars {
        let name = format!("{section}-{}.svg", file_name(case));
        bar_chart(&dir.join(&name), &format!("{section}: {case}"), unit, v)?;
        files.push(name);
    }
    Ok(files)
}

/// One horizontal bar per variant.
fn bar_chart(path: &Path, title: &str, unit: &str, bars: &[(&str, f64)]) -> Res {
    let xmax = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9) * 1.15;
    let n = bars.len() as u32;
    let height = 120 + 34 * n;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let label = bars.iter().map(|b| b.0.len()).max().unwrap_or(8) as u32;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size((label * 7 + 10).min(420))
        .build_cartesian_2d(0.0..xmax, (0..n).into_segmented())?;
    let names: Vec<&str> = bars.iter().map(|b| b.0).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(unit)
        .y_labels(n as usize)
        .y_label_formatter(&|y| match y {
            SegmentValue::CenterOf(i) => names.get(*i as usize).unwrap_or(&"").to_string(),
            _ => String::new(),
        })
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
        let i = i as u32;
        let color = Palette99::pick(i as usize).to_rgba();
        Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (*v, SegmentValue::Exact(i + 1)),
            ],
            color.filled(),
        )
    }))?;
    root.present()?;
    Ok(())
}

fn copy_chart(path: &Path, title: &str, lines: &Lines) -> Res {
    let pts = lines.values().flatten();
    let xmax = pts.clone().map(|p| p.0).fold(1.0, f64::max);
    let xmin = pts.clone().map(|p| p.0).fold(xmax, f64::min);
    let ymax = pts.map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(xmin..xmax, 0.0..ymax)?;
    chart
        .configure_mesh()
        .x_desc("bytes (log2)")
        .y_desc("GB/s")
        .x_label_formatter(&|x| format!("{}", 2f64.powf(*x).round()))
        .draw()?;
    for (i, (variant, v)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let mut v = v.clone();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(v, color.stroke_width(2)))?
            .label(variant.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
