//! `--svg DIR`: charts of the report's rows (plotters, SVG backend): copy GB/s against size, one
//! chart per direction and misalignment, one line per variant.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use crate::Row;

/// One chart's lines: variant → (log2 bytes, GB/s) points.
type Lines = BTreeMap<String, Vec<(f64, f64)>>;

type Res = Result<(), Box<dyn std::error::Error>>;

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
    Ok(files)
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
