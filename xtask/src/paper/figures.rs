//! SVG figures with `plotters`: one grouped bar chart per benchmark table
//! (log scale, one bar per system) and the protection-boundary diagram.

use super::Results;
use anyhow::{Result, anyhow};
use benchmarks::Table;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

const SYSTEMS: [(&str, RGBColor); 3] =
    [("exo", RGBColor(31, 119, 180)), ("spin", RGBColor(255, 127, 14)), ("linux", RGBColor(127, 127, 127))];

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a figure: {e:?}")
}

/// A grouped bar chart of one table: operations on the x axis, one bar per
/// system, the per-operation median on a log scale.
pub fn table_chart(results: &Results, table: Table, path: &Path) -> Result<()> {
    let ops: Vec<&str> = benchmarks::OPS.iter().filter(|o| o.table == table).map(|o| o.name).collect();
    let values: Vec<f64> = ops
        .iter()
        .flat_map(|op| SYSTEMS.iter().filter_map(move |(k, _)| results.median(k, op)))
        .filter(|v| *v > 0.0)
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = if values.is_empty() { (1.0, 10.0) } else { (lo / 2.0, hi * 2.0) };
    let width = 150 + 130 * ops.len() as u32;
    let root = SVGBackend::new(path, (width, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let caption = if values.is_empty() {
        format!("{} (no measurements)", table.title())
    } else {
        table.title().to_string()
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..ops.len() as f64, (lo..hi).log_scale())
        .map_err(err)?;
    let labels = ops.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(ops.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (*x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).map(|s| s.to_string()).unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| if *v >= 10.0 { format!("{v:.0}") } else { format!("{v:.1}") })
        .y_desc(format!("{} per operation (log scale)", results.file.unit))
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    let bar = 0.8 / SYSTEMS.len() as f64;
    for (j, (kernel, color)) in SYSTEMS.iter().enumerate() {
        let bars: Vec<_> = ops
            .iter()
            .enumerate()
            .filter_map(|(i, op)| {
                let v = results.median(kernel, op)?;
                let x0 = i as f64 + 0.1 + j as f64 * bar;
                Some(Rectangle::new([(x0, lo), (x0 + bar * 0.9, v)], color.filled()))
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(err)?
            .label(*kernel)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Where each kernel draws its protection boundary.
pub fn boundary_diagram(path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (900, 430)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let title = ("sans-serif", 18).into_font();
    let body = ("sans-serif", 13).into_font();
    let centered = |font: &FontDesc<'static>| {
        font.clone().into_text_style(&root).pos(Pos::new(HPos::Center, VPos::Center))
    };
    let boxed = |x: i32, y: i32, w: i32, h: i32, fill: RGBColor, label: &str| -> Result<()> {
        root.draw(&Rectangle::new([(x, y), (x + w, y + h)], fill.filled())).map_err(err)?;
        root.draw(&Rectangle::new([(x, y), (x + w, y + h)], BLACK.stroke_width(1))).map_err(err)?;
        for (i, line) in label.lines().enumerate() {
            let n = label.lines().count() as i32;
            let ly = y + h / 2 + (i as i32 * 2 - (n - 1)) * 8;
            root.draw(&Text::new(line.to_string(), (x + w / 2, ly), centered(&body))).map_err(err)?;
        }
        Ok(())
    };
    let user = RGBColor(222, 235, 247);
    let kernel = RGBColor(253, 208, 162);
    let hal = RGBColor(217, 217, 217);
    let ext = RGBColor(199, 233, 192);
    // kernel-exo
    root.draw(&Text::new("kernel-exo: protection by the MMU", (225, 20), centered(&title))).map_err(err)?;
    boxed(30, 45, 180, 110, user, "application\n+ ExOS library OS\n(VM, fork/COW, IPC,\nthreads, policies)")?;
    boxed(240, 45, 180, 110, user, "another environment\n+ its own libOS")?;
    boxed(
        30,
        215,
        390,
        100,
        kernel,
        "exokernel: secure bindings, page capabilities,\nexception upcalls, protected control transfer,\nslice vector, revocation (no management)",
    )?;
    // kernel-spin
    root.draw(&Text::new("kernel-spin: protection by the language", (675, 20), centered(&title)))
        .map_err(err)?;
    boxed(480, 45, 180, 110, user, "user process")?;
    boxed(690, 45, 180, 110, user, "user process")?;
    boxed(480, 215, 120, 100, ext, "extension\n(safe Rust)")?;
    boxed(610, 215, 120, 100, ext, "extension\n(safe Rust)")?;
    boxed(740, 215, 130, 100, kernel, "core: dispatcher,\ncapabilities,\ndomains, strands")?;
    boxed(
        30,
        345,
        840,
        50,
        hal,
        "shared-hal: the same GDT/IDT, paging, frames, APIC timer, TSC, serial for both kernels",
    )?;
    // The boundaries.
    let red = RGBColor(200, 30, 30);
    for x0 in [20, 470] {
        root.draw(&PathElement::new(vec![(x0, 185), (x0 + 410, 185)], red.stroke_width(3))).map_err(err)?;
    }
    root.draw(&Text::new(
        "ring 3 / ring 0: hardware boundary (syscall, exceptions)",
        (450, 176),
        centered(&body),
    ))
    .map_err(err)?;
    let green = RGBColor(30, 130, 30);
    for x in [605, 735] {
        root.draw(&PathElement::new(vec![(x, 210), (x, 320)], green.stroke_width(3))).map_err(err)?;
    }
    root.draw(&Text::new(
        "type-safe interfaces: language boundary (a call, no trap)",
        (675, 332),
        centered(&body),
    ))
    .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
