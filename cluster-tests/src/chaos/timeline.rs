//! [`Timeline`]: one picture per chaos run, so a reader sees at a glance what each fault did.
//! Two panels over the run's seconds: on top, operations completed per second by outcome (ok,
//! failed, unknown); below, the latency of the operations completed in each second (median and
//! 99th percentile). Each fault is a coloured band from injection to healing, continued in a
//! paler shade until the first write acknowledged after it (its recovery).
//!
//! The PNG is drawn with `plotters`' bitmap backend and no text at all, so it needs no system
//! font; what a colour means, and the scales, are in [`TimelineLegend`], written into the JSON
//! report beside it.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use super::history::{Operation, Outcome};
use super::report::InjectedFault;
use crate::error::{Error, Result};

/// Picture width in pixels.
const WIDTH: u32 = 1600;
/// Picture height in pixels.
const HEIGHT: u32 = 700;
/// Margin around and between the panels.
const MARGIN: i32 = 20;
/// A vertical grid line every this many seconds.
const GRID_EVERY_S: u64 = 10;

/// Series colours (RGB) by name, as the legend lists them.
const SERIES: [(&str, RGBColor); 5] = [
    ("ok_per_s", RGBColor(46, 125, 50)),
    ("failed_per_s", RGBColor(198, 40, 40)),
    ("unknown_per_s", RGBColor(239, 108, 0)),
    ("latency_p50_ms", RGBColor(21, 101, 192)),
    ("latency_p99_ms", RGBColor(106, 27, 154)),
];

/// Band colours by fault kind (the kind's command-line name); kinds beyond these share grey.
const BANDS: [(&str, RGBColor); 12] = [
    ("kill", RGBColor(244, 67, 54)),
    ("pause", RGBColor(255, 193, 7)),
    ("partition", RGBColor(33, 150, 243)),
    ("link", RGBColor(0, 188, 212)),
    ("restart-all", RGBColor(156, 39, 176)),
    ("combined", RGBColor(121, 85, 72)),
    ("crash-point", RGBColor(233, 30, 99)),
    ("disk-full", RGBColor(96, 125, 139)),
    ("power-cut", RGBColor(255, 87, 34)),
    ("power-cut-all", RGBColor(183, 28, 28)),
    ("deadline-burst", RGBColor(76, 175, 80)),
    ("consumer-crash", RGBColor(63, 81, 181)),
];

/// The colour of fault kinds not in [`BANDS`] (`receiver-kill`, any later kind).
const OTHER_BAND: RGBColor = RGBColor(158, 158, 158);

/// What the picture shows, for the JSON report: the picture has no text.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineLegend {
    /// The PNG's file name, beside the report.
    pub png: String,
    /// Seconds along the x axis (the whole width), from the start of the workload.
    pub seconds: u64,
    /// Vertical grid lines every this many seconds.
    pub grid_every_s: u64,
    /// Top panel: the operations-per-second value at its top edge (its bottom is 0).
    pub throughput_max_per_s: u64,
    /// Bottom panel: the latency at its top edge, ms (its bottom is 0); horizontal grid lines
    /// at quarters of it in both panels.
    pub latency_max_ms: u64,
    /// Line colours by series, `#rrggbb`.
    pub series: BTreeMap<&'static str, String>,
    /// Band colours by fault kind, `#rrggbb`; the paler continuation is the recovery.
    pub fault_bands: BTreeMap<String, String>,
}

/// Reads one figure of a second.
type Figure = dyn Fn(&Second) -> u64;

/// One second's figures.
#[derive(Debug, Clone, Default)]
struct Second {
    /// Completed ok.
    ok: u64,
    /// Completed failed.
    failed: u64,
    /// Completed unknown.
    unknown: u64,
    /// Latencies of everything completed, ms.
    latencies: Vec<u64>,
}

/// The `q`-quantile of sorted `values`.
fn quantile(values: &[u64], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let index = ((values.len() - 1) as f64 * q).round() as usize;
    values[index.min(values.len() - 1)]
}

fn hex(color: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", color.0, color.1, color.2)
}

/// The band colour of a fault kind.
fn band_color(kind: &str) -> RGBColor {
    BANDS
        .iter()
        .find(|(name, _)| *name == kind)
        .map_or(OTHER_BAND, |(_, color)| *color)
}

/// A round number at or above `value` (1, 2 or 5 times a power of ten).
fn nice_ceiling(value: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= value.max(1) {
                return step.saturating_mul(m);
            }
        }
        step = step.saturating_mul(10);
    }
}

/// The run's figures per second, ready to draw.
pub struct Timeline {
    /// Per second of the run.
    seconds: Vec<Second>,
    /// `(kind, injected, healed, recovered)` in run ms.
    faults: Vec<(String, u64, u64, u64)>,
}

impl Timeline {
    /// Buckets `operations` by the second they completed in, up to `end_ms`.
    pub fn new(operations: &[Operation], faults: &[InjectedFault], end_ms: u64) -> Self {
        let mut seconds = vec![Second::default(); (end_ms / 1000 + 1) as usize];
        for op in operations {
            let Some(second) = seconds.get_mut((op.completed_ms / 1000) as usize) else {
                continue;
            };
            match op.outcome {
                Outcome::Ok { .. } => second.ok += 1,
                Outcome::Failed { .. } => second.failed += 1,
                Outcome::Unknown { .. } => second.unknown += 1,
            }
            second
                .latencies
                .push(op.completed_ms.saturating_sub(op.invoked_ms));
        }
        for second in &mut seconds {
            second.latencies.sort_unstable();
        }
        let faults = faults
            .iter()
            .map(|f| {
                let recovered = f
                    .time_to_recover_ms
                    .map_or(f.healed_ms, |t| f.healed_ms + t);
                (
                    f.step.fault.kind().name(),
                    f.injected_ms,
                    f.healed_ms,
                    recovered,
                )
            })
            .collect();
        Timeline { seconds, faults }
    }

    /// Draws the picture to `path` and answers its legend.
    pub fn draw(&self, path: &Path) -> Result<TimelineLegend> {
        let draw_error =
            |e: String| Error::Usage(format!("drawing the timeline {}: {e}", path.display()));
        let throughput_max = nice_ceiling(
            self.seconds
                .iter()
                .map(|s| s.ok.max(s.failed).max(s.unknown))
                .max()
                .unwrap_or(1),
        );
        let latency_max = nice_ceiling(
            self.seconds
                .iter()
                .map(|s| quantile(&s.latencies, 0.99))
                .max()
                .unwrap_or(1),
        );
        let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_error(e.to_string()))?;
        let panel_height = (HEIGHT as i32 - 3 * MARGIN) / 2;
        let left = MARGIN;
        let width = WIDTH as i32 - 2 * MARGIN;
        let n = self.seconds.len().max(2) as f64 - 1.0;
        let x_of = |ms: f64| left + ((ms / 1000.0) / n * f64::from(width)) as i32;
        let panels = [MARGIN, 2 * MARGIN + panel_height];
        for top in panels {
            let bottom = top + panel_height;
            for (kind, injected, healed, recovered) in &self.faults {
                let color = band_color(kind);
                let (a, b, c) = (
                    x_of(*injected as f64),
                    x_of(*healed as f64).max(x_of(*injected as f64) + 2),
                    x_of(*recovered as f64),
                );
                root.draw(&Rectangle::new(
                    [(a, top), (b, bottom)],
                    color.mix(0.35).filled(),
                ))
                .map_err(|e| draw_error(e.to_string()))?;
                if c > b {
                    root.draw(&Rectangle::new(
                        [(b, top), (c, bottom)],
                        color.mix(0.12).filled(),
                    ))
                    .map_err(|e| draw_error(e.to_string()))?;
                }
            }
            let grid = RGBColor(224, 224, 224);
            for s in (0..self.seconds.len() as u64).step_by(GRID_EVERY_S as usize) {
                let x = x_of((s * 1000) as f64);
                root.draw(&PathElement::new(vec![(x, top), (x, bottom)], grid))
                    .map_err(|e| draw_error(e.to_string()))?;
            }
            for quarter in 1..4 {
                let y = bottom - panel_height * quarter / 4;
                root.draw(&PathElement::new(vec![(left, y), (left + width, y)], grid))
                    .map_err(|e| draw_error(e.to_string()))?;
            }
            root.draw(&Rectangle::new(
                [(left, top), (left + width, bottom)],
                BLACK.stroke_width(1),
            ))
            .map_err(|e| draw_error(e.to_string()))?;
        }
        let line = |top: i32, max: u64, value: &Figure| -> Vec<(i32, i32)> {
            self.seconds
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let v = value(s).min(max) as f64 / max as f64;
                    (
                        x_of(i as f64 * 1000.0),
                        top + panel_height - (v * f64::from(panel_height)) as i32,
                    )
                })
                .collect()
        };
        let series: [(usize, i32, u64, &Figure); 5] = [
            (0, panels[0], throughput_max, &|s| s.ok),
            (1, panels[0], throughput_max, &|s| s.failed),
            (2, panels[0], throughput_max, &|s| s.unknown),
            (3, panels[1], latency_max, &|s| quantile(&s.latencies, 0.5)),
            (4, panels[1], latency_max, &|s| quantile(&s.latencies, 0.99)),
        ];
        for (index, top, max, value) in series {
            root.draw(&PathElement::new(
                line(top, max, value),
                SERIES[index].1.stroke_width(2),
            ))
            .map_err(|e| draw_error(e.to_string()))?;
        }
        root.present().map_err(|e| draw_error(e.to_string()))?;
        let mut fault_bands: BTreeMap<String, String> = BTreeMap::new();
        for (kind, ..) in &self.faults {
            fault_bands.insert(kind.clone(), hex(band_color(kind)));
        }
        Ok(TimelineLegend {
            png: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            seconds: self.seconds.len() as u64,
            grid_every_s: GRID_EVERY_S,
            throughput_max_per_s: throughput_max,
            latency_max_ms: latency_max,
            series: SERIES.iter().map(|(name, c)| (*name, hex(*c))).collect(),
            fault_bands,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_round_up_and_quantiles_pick_from_sorted_values() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(130), 200);
        assert_eq!(nice_ceiling(4_900), 5_000);
        assert_eq!(quantile(&[1, 2, 3, 4, 100], 0.5), 3);
        assert_eq!(quantile(&[1, 2, 3, 4, 100], 0.99), 100);
        assert_eq!(band_color("receiver-kill"), OTHER_BAND);
    }

    #[test]
    fn draws_a_png_without_fonts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.png");
        let timeline = Timeline {
            seconds: vec![
                Second {
                    ok: 10,
                    latencies: vec![5, 9],
                    ..Second::default()
                };
                30
            ],
            faults: vec![("kill".into(), 5_000, 8_000, 9_000)],
        };
        let legend = timeline.draw(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        assert_eq!(legend.throughput_max_per_s, 10);
        assert_eq!(legend.fault_bands["kill"], "#f44336");
    }
}
