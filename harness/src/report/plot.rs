//! The latency-over-time plot (Jepsen's `latency-raw.png`): one point per client operation at
//! its invocation time, latency on a log scale; blue `ok`, orange `info`, red `fail`; final reads
//! in grey; nemesis activity (from a fault to its recovery) shaded. Drawn with plotters' bitmap
//! backend and no fonts: tick labels use a built-in 3×5 pixel digit font, so nothing depends on
//! system fonts. The x axis is seconds since the start, the y axis milliseconds (decades).

use std::collections::HashMap;
use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::history::{History, OpType};

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 500;
const LEFT: i32 = 60;
const RIGHT: i32 = 20;
const TOP: i32 = 20;
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
    const RECOVERIES: &[&str] = &["start", "resume", "start-standin", "start-postgres"];
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

/// Draws the plot of `history` into the PNG file `path`.
pub fn latency_plot(history: &History, path: &Path) -> Result<()> {
    let points = latencies(history);
    let end = history
        .ops
        .last()
        .map(|op| op.time as f64 / 1e9)
        .unwrap_or(1.0)
        .max(1.0);
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
    // Nemesis activity.
    for (s, e) in nemesis_intervals(history, end) {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(s, y_bottom), (e, y_top)],
                RGBColor(225, 225, 225).filled(),
            )))
            .map_err(plot_error)?;
    }
    // Grid: decades of ms, and x ticks.
    let grey = RGBColor(190, 190, 190);
    let mut decade = y_bottom;
    let mut y_ticks = Vec::new();
    while decade <= y_top * 1.0001 {
        chart
            .draw_series(LineSeries::new([(0.0, decade), (end, decade)], grey))
            .map_err(plot_error)?;
        y_ticks.push(decade);
        decade *= 10.0;
    }
    let x_step = nice_step(end);
    let mut x = 0.0;
    let mut x_ticks = Vec::new();
    while x <= end {
        chart
            .draw_series(LineSeries::new([(x, y_bottom), (x, y_top)], grey))
            .map_err(plot_error)?;
        x_ticks.push(x);
        x += x_step;
    }
    // Points: final reads first (grey), then ok, info, fail on top.
    let layers: [(bool, OpType, RGBColor); 4] = [
        (true, OpType::Ok, RGBColor(150, 150, 150)),
        (false, OpType::Ok, RGBColor(40, 90, 200)),
        (false, OpType::Info, RGBColor(240, 150, 20)),
        (false, OpType::Fail, RGBColor(220, 30, 30)),
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
    // Frame and tick labels (pixel font).
    let plot_w = WIDTH as i32 - LEFT - RIGHT;
    let plot_h = HEIGHT as i32 - TOP - BOTTOM;
    root.draw(&Rectangle::new(
        [(LEFT, TOP), (LEFT + plot_w, TOP + plot_h)],
        BLACK.stroke_width(1),
    ))
    .map_err(plot_error)?;
    let (ly0, ly1) = (y_bottom.log10(), y_top.log10());
    for y in y_ticks {
        let py = TOP + plot_h - ((y.log10() - ly0) / (ly1 - ly0) * plot_h as f64).round() as i32;
        let label = format_number(y);
        let w = text_width(&label);
        draw_text(&root, &label, LEFT - 6 - w, py - 5)?;
    }
    for x in x_ticks {
        let px = LEFT + (x / end * plot_w as f64).round() as i32;
        let label = format_number(x);
        draw_text(&root, &label, px - text_width(&label) / 2, TOP + plot_h + 8)?;
    }
    // Axis names: "ms" above the y labels, "s" right of the x labels.
    draw_text(&root, "ms", 8, TOP - 14)?;
    draw_text(&root, "s", LEFT + plot_w - 4, TOP + plot_h + 24)?;
    root.present().map_err(plot_error)?;
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

/// 3×5 glyphs, one row per `u8` (bits 2..0, left to right).
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
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
        '.' => [0b000, 0b000, 0b000, 0b000, 0b010],
        'm' => [0b000, 0b110, 0b111, 0b101, 0b101],
        's' => [0b000, 0b011, 0b110, 0b011, 0b110],
        _ => return None,
    })
}

const SCALE: i32 = 2;

fn text_width(text: &str) -> i32 {
    text.chars().count() as i32 * 4 * SCALE
}

fn draw_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    text: &str,
    x: i32,
    y: i32,
) -> Result<()> {
    for (i, c) in text.chars().enumerate() {
        let Some(rows) = glyph(c) else { continue };
        let gx = x + i as i32 * 4 * SCALE;
        for (r, bits) in rows.iter().enumerate() {
            for col in 0..3 {
                if bits & (0b100 >> col) != 0 {
                    let px = gx + col * SCALE;
                    let py = y + r as i32 * SCALE;
                    area.draw(&Rectangle::new(
                        [(px, py), (px + SCALE - 1, py + SCALE - 1)],
                        BLACK.filled(),
                    ))
                    .map_err(plot_error)?;
                }
            }
        }
    }
    Ok(())
}
