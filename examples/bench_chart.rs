//! Draws the scaling chart of the README from the bench output: per-acquire
//! cost against the number of contending tasks, packlock beside the naive
//! design, as a self-contained SVG. No dependencies.
//!
//! ```sh
//! cargo bench --bench acquire          # writes target/criterion/packlock-scaling.csv
//! cargo run --example bench_chart -- target/criterion/packlock-scaling.csv docs/scaling.svg
//! ```
//!
//! The CSV has the header `tasks,packlock_ns,naive_ns` and one line per
//! number of tasks. The x axis is logarithmic (one tick per task count in
//! the file), the y axis linear in microseconds from zero.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

const DEFAULT_INPUT: &str = "target/criterion/packlock-scaling.csv";
const DEFAULT_OUTPUT: &str = "docs/scaling.svg";

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 88.0;
const BOTTOM: f64 = 62.0;

/// The two series: name in the legend, CSV column, colour.
const SERIES: [(&str, usize, &str); 2] = [
    ("packlock acquire_async", 1, "#1f6fb4"),
    ("naive: tokio Mutex + spawn_blocking flock", 2, "#d2542b"),
];

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let input = args.next().unwrap_or_else(|| DEFAULT_INPUT.to_string());
    let output = args.next().unwrap_or_else(|| DEFAULT_OUTPUT.to_string());
    if args.next().is_some() || input == "--help" || input == "-h" {
        eprintln!("usage: bench_chart [INPUT.csv [OUTPUT.svg]]");
        eprintln!("  defaults: {DEFAULT_INPUT} {DEFAULT_OUTPUT}");
        return ExitCode::from(2);
    }
    match run(Path::new(&input), Path::new(&output)) {
        Ok(()) => {
            println!("wrote {output}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("bench_chart: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(input: &Path, output: &Path) -> Result<(), String> {
    let csv = std::fs::read_to_string(input).map_err(|e| {
        format!("cannot read {}: {e} (run `cargo bench --bench acquire` first)", input.display())
    })?;
    let points = parse(&csv).map_err(|e| format!("{}: {e}", input.display()))?;
    let svg = chart(&points);
    if let Some(dir) = output.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(output, svg).map_err(|e| format!("cannot write {}: {e}", output.display()))
}

/// One line of the CSV: task count, then ns per acquire for each column.
struct Point {
    tasks: f64,
    ns: [f64; 2],
}

fn parse(csv: &str) -> Result<Vec<Point>, String> {
    let mut lines = csv.lines().filter(|line| !line.trim().is_empty());
    let header = lines.next().ok_or("empty file")?;
    if header.trim() != "tasks,packlock_ns,naive_ns" {
        return Err(format!("unexpected header {header:?}, want \"tasks,packlock_ns,naive_ns\""));
    }
    let mut points = Vec::new();
    for (number, line) in lines.enumerate() {
        let fields: Vec<f64> = line
            .split(',')
            .map(|field| field.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("line {}: {e}", number + 2))?;
        let [tasks, packlock, naive] = fields[..] else {
            return Err(format!("line {}: want 3 fields, found {}", number + 2, fields.len()));
        };
        if tasks < 1.0 || !packlock.is_finite() || !naive.is_finite() {
            return Err(format!("line {}: out of range", number + 2));
        }
        points.push(Point { tasks, ns: [packlock, naive] });
    }
    if points.is_empty() {
        return Err("no data lines".to_string());
    }
    points.sort_by(|a, b| a.tasks.total_cmp(&b.tasks));
    Ok(points)
}

/// A "nice" tick step (1, 2 or 5 times a power of ten) giving about
/// `ticks` intervals up to `max`.
fn nice_step(max: f64, ticks: f64) -> f64 {
    let raw = max / ticks;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().find(|m| m * magnitude >= raw).unwrap_or(10.0);
    step * magnitude
}

fn format_us(us: f64) -> String {
    if us >= 100.0 {
        format!("{us:.0}")
    } else if us >= 10.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.2}")
    }
}

fn chart(points: &[Point]) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;

    // x: log2 of the task count, padded half a step on each side.
    let (lo, hi) = (points[0].tasks.log2(), points[points.len() - 1].tasks.log2());
    let pad = if hi > lo { (hi - lo) * 0.06 } else { 1.0 };
    let (x_min, x_max) = (lo - pad, hi + pad);
    let x = |tasks: f64| LEFT + (tasks.log2() - x_min) / (x_max - x_min) * plot_w;

    // y: microseconds from zero to a nice bound above the largest value.
    let max_us = points.iter().flat_map(|p| p.ns).fold(0.0, f64::max) / 1e3;
    let step = nice_step(max_us.max(1e-3) * 1.1, 5.0);
    let y_max = (max_us * 1.1 / step).ceil() * step;
    let y = |us: f64| TOP + plot_h - us / y_max * plot_h;

    let mut svg = String::new();
    let w = &mut svg;
    let _ = writeln!(
        w,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="13">"##
    );
    let _ = writeln!(w, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        w,
        r##"<text x="{}" y="26" text-anchor="middle" font-size="17" font-weight="bold">Per-acquire cost vs contending tasks (one lock, tokio, 2 workers)</text>"##,
        WIDTH / 2.0
    );
    let _ = writeln!(
        w,
        r##"<text x="{}" y="45" text-anchor="middle" fill="#555555">median per acquire, criterion, same run; lower is better</text>"##,
        WIDTH / 2.0
    );

    // Horizontal grid and y ticks.
    let mut tick = 0.0;
    while tick <= y_max + step * 1e-9 {
        let ty = y(tick);
        let _ = writeln!(
            w,
            r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#e3e3e3"/>"##,
            LEFT + plot_w
        );
        let _ = writeln!(
            w,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 8.0,
            ty + 4.0,
            trim_zeros(tick)
        );
        tick += step;
    }
    // x ticks: one per task count.
    for point in points {
        let tx = x(point.tasks);
        let bottom = TOP + plot_h;
        let _ = writeln!(
            w,
            r##"<line x1="{tx:.1}" y1="{TOP}" x2="{tx:.1}" y2="{bottom:.1}" stroke="#f0f0f0"/>"##
        );
        let _ = writeln!(
            w,
            r##"<line x1="{tx:.1}" y1="{bottom:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#333333"/>"##,
            bottom + 5.0
        );
        let _ = writeln!(
            w,
            r##"<text x="{tx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            bottom + 20.0,
            trim_zeros(point.tasks)
        );
    }
    // Axes and their labels.
    let _ = writeln!(
        w,
        r##"<path d="M{LEFT},{TOP} V{:.1} H{:.1}" fill="none" stroke="#333333"/>"##,
        TOP + plot_h,
        LEFT + plot_w
    );
    let _ = writeln!(
        w,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">contending tasks (log scale)</text>"##,
        LEFT + plot_w / 2.0,
        HEIGHT - 16.0
    );
    let _ = writeln!(
        w,
        r##"<text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle">per-acquire cost (µs)</text>"##,
        TOP + plot_h / 2.0
    );

    // The two series: a line, a dot per point, its value above the dot.
    for (name, column, colour) in SERIES {
        let column = column - 1;
        let path: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.tasks), y(p.ns[column] / 1e3)))
            .collect();
        let _ = writeln!(
            w,
            r##"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2.5"/>"##,
            path.join(" ")
        );
        for p in points {
            let (px, py) = (x(p.tasks), y(p.ns[column] / 1e3));
            let _ = writeln!(
                w,
                r##"<circle cx="{px:.1}" cy="{py:.1}" r="4" fill="{colour}"><title>{name}, {} tasks: {} µs</title></circle>"##,
                trim_zeros(p.tasks),
                format_us(p.ns[column] / 1e3)
            );
            let _ = writeln!(
                w,
                r##"<text x="{px:.1}" y="{:.1}" text-anchor="middle" fill="{colour}" font-size="12">{}</text>"##,
                py - 9.0,
                format_us(p.ns[column] / 1e3)
            );
        }
    }

    // Legend: one row between the subtitle and the plot, centred (text
    // width estimated at 7 px per character).
    let entries: Vec<f64> =
        SERIES.iter().map(|(name, ..)| 40.0 + 7.0 * name.len() as f64).collect();
    let gap = 24.0;
    let total = entries.iter().sum::<f64>() + gap * (entries.len() - 1) as f64;
    let (mut lx, ly) = ((WIDTH - total) / 2.0, 66.0);
    for ((name, _, colour), width) in SERIES.iter().zip(&entries) {
        let _ = writeln!(
            w,
            r##"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="2.5"/>"##,
            lx + 28.0
        );
        let _ =
            writeln!(w, r##"<circle cx="{:.1}" cy="{ly:.1}" r="4" fill="{colour}"/>"##, lx + 14.0);
        let _ = writeln!(
            w,
            r##"<text x="{:.1}" y="{:.1}">{}</text>"##,
            lx + 36.0,
            ly + 4.5,
            escape(name)
        );
        lx += width + gap;
    }
    let _ = writeln!(w, "</svg>");
    svg
}

/// `8` rather than `8.0`; `2.5` stays.
fn trim_zeros(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
