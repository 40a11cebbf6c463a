//! The plots of a run, drawn as Jepsen's read:
//!
//! - [`latency_plot`] (`latency-raw.png`): one point per client operation at its invocation
//!   time, latency in ms on a log axis, time in s; blue `ok`, orange `info`, red `fail`, final
//!   reads grey; nemesis activity (from a fault to its recovery) shaded; a legend, and the
//!   workload and nodes in the title;
//! - [`rate_plot`] (`rate.png`): completions per second over time, one line per outcome.
//!
//! Drawn with plotters' bitmap backend and no fonts: text uses a built-in 3×5 pixel font
//! (capitals, digits, a little punctuation), so nothing depends on system fonts.

use std::collections::HashMap;
use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::history::{History, OpType};

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 500;
const LEFT: i32 = 60;
const RIGHT: i32 = 20;
const TOP: i32 = 56;
const BOTTOM: i32 = 40;

/// One completed client operation.
#[derive(Debug, Clone)]
pub struct Latency {
    /// Invocation time, s since the start.
    pub time_s: f64,
    /// Completion minus invocation, ms.
    pub latency_ms: f64,
    /// The completion's type.
    pub op_type: OpType,
    /// Whether it was a final read.
    pub final_read: bool,
}

/// Pairs each client invocation with its completion.
pub fn latencies(history: &History) -> Vec<Latency> {
    let mut pending: HashMap<u64, i64> = HashMap::new();
    let mut out = Vec::new();
    for op in &history.ops {
        let Some(p) = op.client() else { continue };
        if op.op_type == OpType::Invoke {
            pending.insert(p, op.time);
        } else if let Some(t0) = pending.remove(&p) {
            out.push(Latency {
                time_s: t0 as f64 / 1e9,
                latency_ms: (op.time - t0) as f64 / 1e6,
                op_type: op.op_type,
                final_read: op.final_read,
            });
        }
    }
    out
}

/// Nemesis intervals: (start s, end s), from a fault to the next recovery.
fn nemesis_intervals(history: &History, end: f64) -> Vec<(f64, f64)> {
    const RECOVERIES: &[&str] = &[
        "start",
        "resume",
        "start-nodes",
        "reset-clock",
        "start-standin",
        "start-postgres",
    ];
    let mut out = Vec::new();
    let mut open: Option<f64> = None;
    for op in history.ops.iter().filter(|op| op.client().is_none()) {
        let t = op.time as f64 / 1e9;
        if RECOVERIES.contains(&op.f.as_str()) {
            if let Some(s) = open.take() {
                out.push((s, t));
            }
        } else if open.is_none() {
            open = Some(t);
        }
    }
    if let Some(s) = open {
        out.push((s, end));
    }
    out
}

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::Plot(e.to_string())
}

const OK: RGBColor = RGBColor(40, 90, 200);
const INFO: RGBColor = RGBColor(240, 150, 20);
const FAIL: RGBColor = RGBColor(220, 30, 30);
const FINAL: RGBColor = RGBColor(150, 150, 150);
const NEMESIS: RGBColor = RGBColor(225, 225, 225);
const GRID: RGBColor = RGBColor(190, 190, 190);

type Root<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// The end of the history, s (at least 1).
fn end_of(history: &History) -> f64 {
    history
        .ops
        .last()
        .map(|op| op.time as f64 / 1e9)
        .unwrap_or(1.0)
        .max(1.0)
}

/// Draws the latency plot of `history` into the PNG file `path`, titled `title` (the workload
/// and nodes).
pub fn latency_plot(history: &History, title: &str, path: &Path) -> Result<()> {
    let points = latencies(history);
    let end = end_of(history);
    let max_ms = points.iter().map(|p| p.latency_ms).fold(1.0_f64, f64::max);
    let y_top = 10f64.powf((max_ms * 1.5).log10().ceil().max(1.0));
    let min_ms = points
        .iter()
        .map(|p| p.latency_ms)
        .fold(f64::INFINITY, f64::min);
    let y_bottom = if min_ms.is_finite() {
        10f64.powf(min_ms.max(0.01).log10().floor())
    } else {
        0.1
    };
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let area = root.margin(TOP, BOTTOM, LEFT, RIGHT);
    let mut chart = ChartBuilder::on(&area)
        .build_cartesian_2d(0.0..end, (y_bottom..y_top).log_scale())
        .map_err(plot_error)?;
    for (s, e) in nemesis_intervals(history, end) {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(s, y_bottom), (e, y_top)],
                NEMESIS.filled(),
            )))
            .map_err(plot_error)?;
    }
    // Grid: decades of ms, and x ticks.
    let mut y_ticks = Vec::new();
    let mut decade = y_bottom;
    while decade <= y_top * 1.0001 {
        y_ticks.push(decade);
        decade *= 10.0;
    }
    let x_ticks = ticks(end);
    for &y in &y_ticks {
        chart
            .draw_series(LineSeries::new([(0.0, y), (end, y)], GRID))
            .map_err(plot_error)?;
    }
    for &x in &x_ticks {
        chart
            .draw_series(LineSeries::new([(x, y_bottom), (x, y_top)], GRID))
            .map_err(plot_error)?;
    }
    // Points: final reads first, then ok, info, fail on top.
    let layers: [(bool, OpType, RGBColor); 4] = [
        (true, OpType::Ok, FINAL),
        (false, OpType::Ok, OK),
        (false, OpType::Info, INFO),
        (false, OpType::Fail, FAIL),
    ];
    for (final_read, op_type, color) in layers {
        chart
            .draw_series(
                points
                    .iter()
                    .filter(|p| p.final_read == final_read && (final_read || p.op_type == op_type))
                    .map(|p| {
                        Circle::new((p.time_s, p.latency_ms.max(y_bottom)), 2, color.filled())
                    }),
            )
            .map_err(plot_error)?;
    }
    let (ly0, ly1) = (y_bottom.log10(), y_top.log10());
    let y_labels: Vec<(f64, f64)> = y_ticks
        .iter()
        .map(|y| (y.log10() - ly0) / (ly1 - ly0))
        .zip(y_ticks.iter().copied())
        .collect();
    let entries = [
        ("ok", OK),
        ("info", INFO),
        ("fail", FAIL),
        ("final read", FINAL),
        ("nemesis", NEMESIS),
    ];
    let texts = [&format!("{title} latency"), "latency (ms, log)"];
    frame(&root, texts, &y_labels, &x_ticks, end, &entries)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Draws Jepsen's `rate.png` for `history` into `path`: client completions per second (main
/// phase and final reads) in one-second buckets by outcome, nemesis activity shaded.
pub fn rate_plot(history: &History, title: &str, path: &Path) -> Result<()> {
    let end = end_of(history);
    let buckets = end.ceil() as usize;
    let mut rates = [
        vec![0u64; buckets],
        vec![0u64; buckets],
        vec![0u64; buckets],
    ];
    for op in history.completions() {
        let i = ((op.time as f64 / 1e9) as usize).min(buckets - 1);
        let series = match op.op_type {
            OpType::Ok => 0,
            OpType::Info => 1,
            _ => 2,
        };
        rates[series][i] += 1;
    }
    let max = rates.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let y_step = nice_step(max * 1.1);
    let y_top = (max * 1.1 / y_step).ceil() * y_step;
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let area = root.margin(TOP, BOTTOM, LEFT, RIGHT);
    let mut chart = ChartBuilder::on(&area)
        .build_cartesian_2d(0.0..end, 0.0..y_top)
        .map_err(plot_error)?;
    for (s, e) in nemesis_intervals(history, end) {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(s, 0.0), (e, y_top)],
                NEMESIS.filled(),
            )))
            .map_err(plot_error)?;
    }
    let x_ticks = ticks(end);
    let mut y_labels = Vec::new();
    let mut y = 0.0;
    while y <= y_top * 1.0001 {
        chart
            .draw_series(LineSeries::new([(0.0, y), (end, y)], GRID))
            .map_err(plot_error)?;
        y_labels.push((y / y_top, y));
        y += y_step;
    }
    for &x in &x_ticks {
        chart
            .draw_series(LineSeries::new([(x, 0.0), (x, y_top)], GRID))
            .map_err(plot_error)?;
    }
    for (series, color) in rates.iter().zip([OK, INFO, FAIL]) {
        chart
            .draw_series(LineSeries::new(
                series
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (i as f64 + 0.5, *n as f64)),
                color.stroke_width(2),
            ))
            .map_err(plot_error)?;
    }
    let entries = [
        ("ok", OK),
        ("info", INFO),
        ("fail", FAIL),
        ("nemesis", NEMESIS),
    ];
    let texts = [&format!("{title} rate"), "throughput (ops/s)"];
    frame(&root, texts, &y_labels, &x_ticks, end, &entries)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Ticks every nice step of `0..=end`.
fn ticks(end: f64) -> Vec<f64> {
    let step = nice_step(end);
    let mut out = Vec::new();
    let mut x = 0.0;
    while x <= end {
        out.push(x);
        x += step;
    }
    out
}

/// The frame, the title and y axis title (`texts`), the x axis title, the tick labels
/// (`y_labels`: (fraction of the height, value)) and the legend.
fn frame(
    root: &Root<'_>,
    [title, y_title]: [&str; 2],
    y_labels: &[(f64, f64)],
    x_ticks: &[f64],
    end: f64,
    entries: &[(&str, RGBColor)],
) -> Result<()> {
    legend(root, entries)?;
    let plot_w = WIDTH as i32 - LEFT - RIGHT;
    let plot_h = HEIGHT as i32 - TOP - BOTTOM;
    root.draw(&Rectangle::new(
        [(LEFT, TOP), (LEFT + plot_w, TOP + plot_h)],
        BLACK.stroke_width(1),
    ))
    .map_err(plot_error)?;
    for &(frac, y) in y_labels {
        let py = TOP + plot_h - (frac * plot_h as f64).round() as i32;
        let label = format_number(y);
        draw_text(root, &label, LEFT - 6 - text_width(&label, 2), py - 5, 2)?;
    }
    for &x in x_ticks {
        let px = LEFT + (x / end * plot_w as f64).round() as i32;
        let label = format_number(x);
        draw_text(
            root,
            &label,
            px - text_width(&label, 2) / 2,
            TOP + plot_h + 8,
            2,
        )?;
    }
    draw_text(root, title, LEFT, 8, 3)?;
    draw_text(root, y_title, LEFT, TOP - 14, 2)?;
    let x_title = "time (s)";
    draw_text(
        root,
        x_title,
        LEFT + plot_w / 2 - text_width(x_title, 2) / 2,
        TOP + plot_h + 24,
        2,
    )
}

/// A legend in the top right corner: a swatch and a name per entry.
fn legend(root: &Root<'_>, entries: &[(&str, RGBColor)]) -> Result<()> {
    let width: i32 = entries
        .iter()
        .map(|(name, _)| 14 + text_width(name, 2) + 12)
        .sum();
    let mut x = WIDTH as i32 - RIGHT - width;
    let y = 28;
    for (name, color) in entries {
        root.draw(&Rectangle::new([(x, y), (x + 9, y + 9)], color.filled()))
            .map_err(plot_error)?;
        root.draw(&Rectangle::new(
            [(x, y), (x + 9, y + 9)],
            BLACK.stroke_width(1),
        ))
        .map_err(plot_error)?;
        draw_text(root, name, x + 14, y, 2)?;
        x += 14 + text_width(name, 2) + 12;
    }
    Ok(())
}

fn nice_step(end: f64) -> f64 {
    let raw = end / 10.0;
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if raw <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

fn format_number(v: f64) -> String {
    if v >= 1.0 || v == 0.0 {
        format!("{}", v.round() as i64)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_owned()
    }
}

/// 3×5 glyphs, one row per `u8` (bits 2..0, left to right); lower-case letters are drawn as
/// capitals.
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c.to_ascii_uppercase() {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        'A' => [0b010, 0b101, 0b111, 0b101, 0b101],
        'B' => [0b110, 0b101, 0b110, 0b101, 0b110],
        'C' => [0b011, 0b100, 0b100, 0b100, 0b011],
        'D' => [0b110, 0b101, 0b101, 0b101, 0b110],
        'E' => [0b111, 0b100, 0b110, 0b100, 0b111],
        'F' => [0b111, 0b100, 0b110, 0b100, 0b100],
        'G' => [0b011, 0b100, 0b101, 0b101, 0b011],
        'H' => [0b101, 0b101, 0b111, 0b101, 0b101],
        'I' => [0b111, 0b010, 0b010, 0b010, 0b111],
        'J' => [0b001, 0b001, 0b001, 0b101, 0b010],
        'K' => [0b101, 0b110, 0b100, 0b110, 0b101],
        'L' => [0b100, 0b100, 0b100, 0b100, 0b111],
        'M' => [0b101, 0b111, 0b111, 0b101, 0b101],
        'N' => [0b110, 0b101, 0b101, 0b101, 0b101],
        'O' => [0b010, 0b101, 0b101, 0b101, 0b010],
        'P' => [0b110, 0b101, 0b110, 0b100, 0b100],
        'Q' => [0b010, 0b101, 0b101, 0b110, 0b011],
        'R' => [0b110, 0b101, 0b110, 0b101, 0b101],
        'S' => [0b011, 0b100, 0b010, 0b001, 0b110],
        'T' => [0b111, 0b010, 0b010, 0b010, 0b010],
        'U' => [0b101, 0b101, 0b101, 0b101, 0b111],
        'V' => [0b101, 0b101, 0b101, 0b101, 0b010],
        'W' => [0b101, 0b101, 0b111, 0b111, 0b101],
        'X' => [0b101, 0b101, 0b010, 0b101, 0b101],
        'Y' => [0b101, 0b101, 0b010, 0b010, 0b010],
        'Z' => [0b111, 0b001, 0b010, 0b100, 0b111],
        '.' => [0b000, 0b000, 0b000, 0b000, 0b010],
        ',' => [0b000, 0b000, 0b000, 0b010, 0b100],
        '-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        '/' => [0b001, 0b001, 0b010, 0b100, 0b100],
        '(' => [0b001, 0b010, 0b010, 0b010, 0b001],
        ')' => [0b100, 0b010, 0b010, 0b010, 0b100],
        ':' => [0b000, 0b010, 0b000, 0b010, 0b000],
        _ => return None,
    })
}

fn text_width(text: &str, scale: i32) -> i32 {
    text.chars().count() as i32 * 4 * scale
}

fn draw_text(root: &Root<'_>, text: &str, x: i32, y: i32, scale: i32) -> Result<()> {
    for (i, c) in text.chars().enumerate() {
        let Some(rows) = glyph(c) else { continue };
        let gx = x + i as i32 * 4 * scale;
        for (r, bits) in rows.iter().enumerate() {
            for col in 0..3 {
                if bits & (0b100 >> col) != 0 {
                    let px = gx + col * scale;
                    let py = y + r as i32 * scale;
                    root.draw(&Rectangle::new(
                        [(px, py), (px + scale - 1, py + scale - 1)],
                        BLACK.filled(),
                    ))
                    .map_err(plot_error)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::edn;

    #[test]
    fn every_label_character_has_a_glyph() {
        for text in [
            "ps-wo-pg-ro n1,n2 latency",
            "latency (ms, log)",
            "throughput (ops/s)",
            "time (s)",
            "ok info fail final read nemesis",
            "0.25 100",
        ] {
            for c in text.chars().filter(|c| *c != ' ') {
                assert!(glyph(c).is_some(), "{c:?} in {text:?}");
            }
        }
    }

    #[test]
    fn both_plots_are_written() {
        let h = edn::read_history(
            "{:index 0 :time 0 :type :invoke :process 0 :f :txn :value [[:r 0 nil]]}\n\
             {:index 1 :time 5000000 :type :ok :process 0 :f :txn :value [[:r 0 nil]]}\n\
             {:index 2 :time 1000000000 :type :info :process :nemesis :f :kill :value nil}\n\
             {:index 3 :time 1500000000 :type :invoke :process 1 :f :txn :value [[:r 0 nil]]}\n\
             {:index 4 :time 1600000000 :type :info :process 1 :f :txn :value [[:r 0 nil]]}\n\
             {:index 5 :time 2000000000 :type :info :process :nemesis :f :start :value nil}",
        )
        .unwrap();
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, draw) in [
            (
                "latency-raw.png",
                latency_plot as fn(&History, &str, &Path) -> Result<()>,
            ),
            ("rate.png", rate_plot),
        ] {
            let path = dir.path().join(name);
            draw(&h, "sqlite3-local n1", &path).expect("drawn");
            let bytes = std::fs::read(&path).expect("written");
            assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}");
        }
    }
}
