//! Plot the round benchmark: p50 and p99 latency against the number of clients, from the
//! CSV `scripts/bench.sh` writes. Usage: `plot_bench CSV PNG FONT.ttf`.

use anyhow::{bail, Context};
use plotters::prelude::*;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, csv, png, font] = args.as_slice() else {
        bail!("usage: plot_bench RESULTS.csv OUT.png FONT.ttf");
    };
    let font_bytes: &'static [u8] = Box::leak(
        std::fs::read(font)
            .with_context(|| format!("reading font {font}"))?
            .into_boxed_slice(),
    );
    plotters::style::register_font("sans-serif", FontStyle::Normal, font_bytes)
        .map_err(|_| anyhow::anyhow!("{font} is not a usable TTF font"))?;
    let text = std::fs::read_to_string(csv).with_context(|| format!("reading {csv}"))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().context("empty CSV")?.split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("CSV lacks column {name}"))
    };
    let (c_clients, c_p50, c_p99) = (col("clients")?, col("p50_ms")?, col("p99_ms")?);
    let mut rows: Vec<(f64, f64, f64)> = Vec::new();
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
        if let (Some(c), Some(p50), Some(p99)) = (get(c_clients), get(c_p50), get(c_p99)) {
            rows.push((c, p50, p99));
        }
    }
    if rows.is_empty() {
        bail!("no rows with numbers in {csv}");
    }
    let max_c = rows.iter().map(|r| r.0).fold(1.0, f64::max);
    let max_ms = rows.iter().map(|r| r.2).fold(1.0, f64::max) * 1.15;
    let root = BitMapBackend::new(png, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Chorus end-to-end latency vs clients (3 servers, 500 ms rounds, 5% sending)",
            ("sans-serif", 20),
        )
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_c * 1.05, 0.0..max_ms)?;
    chart
        .configure_mesh()
        .x_desc("clients")
        .y_desc("latency (ms)")
        .label_style(("sans-serif", 15))
        .draw()?;
    for (name, color, pick) in [("p50", BLUE, 1usize), ("p99", RED, 2usize)] {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| (r.0, if pick == 1 { r.1 } else { r.2 }))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    root.present()?;
    Ok(())
}
