//! The trend of a scenario's recovery time across past runs: the regression rule, and its SVG
//! chart.
//!
//! **The regression rule.** Only runs graded on recovery count (PASS, and FAIL whether it
//! recovered or not); NO_IMPACT, INCONCLUSIVE, ABORTED and ERROR runs measured nothing. The
//! latest such run is a regression when at least [`RegressionRule::min_previous`] earlier runs
//! have a recovery time, and the latest either did not recover at all or recovered slower than
//! the threshold `max(p95, median × median_factor)` of the last [`RegressionRule::window`] of
//! those earlier recovery times. Both halves matter: above the p95 means "worse than nearly
//! everything seen before", and 1.5 × the median means "by a margin people notice", so neither
//! a steady series with one slow outlier in the past nor a noisy series flags a regression on
//! jitter alone.

use std::fmt::Write as _;

use super::escape;
use super::svg::{fmt_axis_us, nice_step, text, text_width, ticks, Scale};
use super::{utc_datetime, TrendPoint};
use crate::grade::{fmt_us, Verdict};
use crate::report::percentile;

/// The parameters of the regression rule (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RegressionRule {
    /// Earlier runs with a recovery time needed before anything is flagged.
    pub min_previous: usize,
    /// How many of the most recent earlier runs the baseline is taken from.
    pub window: usize,
    /// The latest must exceed the baseline median by this factor (and the p95).
    pub median_factor: f64,
}

impl Default for RegressionRule {
    fn default() -> RegressionRule {
        RegressionRule {
            min_previous: 3,
            window: 10,
            median_factor: 1.5,
        }
    }
}

/// A flagged regression: the latest run recovered clearly slower than the ones before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Regression {
    /// The latest graded run.
    pub run_id: String,
    /// Its recovery time; `None` when it did not recover.
    pub latest_recovery_us: Option<u64>,
    /// The threshold it crossed: `max(p95, median × factor)` of the baseline.
    pub threshold_us: u64,
    /// Median of the baseline's recovery times.
    pub median_us: u64,
    /// 95th percentile (nearest rank) of the baseline's recovery times.
    pub p95_us: u64,
    /// How many earlier runs the baseline holds.
    pub previous: usize,
}

impl Regression {
    /// One sentence for people.
    pub fn summary(&self) -> String {
        let latest = match self.latest_recovery_us {
            Some(us) => format!("recovered in {}", fmt_us(us)),
            None => "did not recover".into(),
        };
        format!(
            "the latest run ({}) {latest}, over the threshold of {} (max of p95 {} and 1.5 × median {} of the {} previous runs)",
            self.run_id,
            fmt_us(self.threshold_us),
            fmt_us(self.p95_us),
            fmt_us(self.median_us),
            self.previous
        )
    }
}

/// The rule in words, for reports.
pub(crate) fn rule_text() -> &'static str {
    "a regression is flagged when the latest run did not recover, or recovered slower than \
     max(p95, 1.5 × median) of up to 10 previous recovery times, with at least 3 of them"
}

/// The baseline the latest graded run is judged against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Baseline {
    /// Index of the latest graded point in the sorted points.
    pub latest: usize,
    pub median_us: u64,
    pub p95_us: u64,
    pub threshold_us: u64,
    pub previous: usize,
}

/// Points sorted by start time (stable, so equal times keep the caller's order).
pub(crate) fn sorted(points: &[TrendPoint]) -> Vec<&TrendPoint> {
    let mut v: Vec<&TrendPoint> = points.iter().collect();
    v.sort_by_key(|p| p.started_unix_ms);
    v
}

fn graded_on_recovery(p: &TrendPoint) -> bool {
    matches!(p.verdict, Verdict::Pass | Verdict::Fail)
}

/// The baseline for the latest graded point of `sorted` points, if there is enough history.
pub(crate) fn baseline(sorted: &[&TrendPoint], rule: &RegressionRule) -> Option<Baseline> {
    let latest = sorted.iter().rposition(|p| graded_on_recovery(p))?;
    let mut previous: Vec<u64> = sorted[..latest]
        .iter()
        .filter(|p| graded_on_recovery(p))
        .filter_map(|p| p.recovery_us)
        .collect();
    if previous.len() > rule.window {
        previous.drain(..previous.len() - rule.window);
    }
    if previous.len() < rule.min_previous.max(1) {
        return None;
    }
    previous.sort_unstable();
    let median_us = percentile(&previous, 50.0)?;
    let p95_us = percentile(&previous, 95.0)?;
    let scaled = (median_us as f64 * rule.median_factor).ceil() as u64;
    Some(Baseline {
        latest,
        median_us,
        p95_us,
        threshold_us: p95_us.max(scaled),
        previous: previous.len(),
    })
}

/// Applies the default rule to past runs (in any order).
pub fn regression(points: &[TrendPoint]) -> Option<Regression> {
    regression_with(points, &RegressionRule::default())
}

/// Applies a rule to past runs (in any order).
pub fn regression_with(points: &[TrendPoint], rule: &RegressionRule) -> Option<Regression> {
    let sorted = sorted(points);
    let b = baseline(&sorted, rule)?;
    let latest = sorted[b.latest];
    let worse = match latest.recovery_us {
        None => true,
        Some(us) => us > b.threshold_us,
    };
    worse.then(|| Regression {
        run_id: latest.run_id.clone(),
        latest_recovery_us: latest.recovery_us,
        threshold_us: b.threshold_us,
        median_us: b.median_us,
        p95_us: b.p95_us,
        previous: b.previous,
    })
}

const WIDTH: f64 = 1100.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 96.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 74.0;
/// Where runs that measured nothing (INCONCLUSIVE, ABORTED, ERROR, NO_IMPACT) are drawn: on a
/// strip of their own under the x labels, never on the chart's 0 s line.
const UNMEASURED_Y: f64 = HEIGHT - BOTTOM + 36.0;

/// The trend chart: recovery time per run (points, joined), the RTO as a horizontal line, the
/// regression threshold, and the latest run ringed (red when it is a regression).
pub(crate) fn chart(points: &[TrendPoint], rto_us: u64) -> String {
    let sorted = sorted(points);
    let rule = RegressionRule::default();
    let base = baseline(&sorted, &rule);
    let flagged = regression_with(points, &rule).is_some();
    let max_recovery = sorted
        .iter()
        .filter_map(|p| p.recovery_us)
        .max()
        .unwrap_or(0);
    let top_us = max_recovery
        .max(rto_us)
        .max(base.as_ref().map_or(0, |b| b.threshold_us))
        .max(1) as f64
        * 1.15;
    let y = Scale::new(0.0, top_us, HEIGHT - BOTTOM, TOP);
    let n = sorted.len().max(1);
    let x = |i: usize| {
        if n == 1 {
            LEFT + (WIDTH - LEFT - RIGHT) / 2.0
        } else {
            LEFT + 10.0 + i as f64 * (WIDTH - LEFT - RIGHT - 20.0) / (n - 1) as f64
        }
    };

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="trend" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" preserveAspectRatio="xMinYMin meet" font-family="system-ui, sans-serif" font-size="12" role="img" aria-label="recovery time across runs">"#
    );
    let _ = write!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="#fbfbfc" stroke="#d0d7de"/>"##,
        WIDTH - LEFT - RIGHT,
        HEIGHT - TOP - BOTTOM
    );
    // Y axis: recovery time.
    let step = nice_step(top_us, 5);
    for t in ticks(0.0, top_us, step) {
        let py = y.px(t);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="#eaeef2"/>"##,
            WIDTH - RIGHT
        );
        text(
            &mut s,
            LEFT - 6.0,
            py + 4.0,
            r#"class="tick" text-anchor="end""#,
            &fmt_axis_us(t, step),
        );
    }
    text(
        &mut s,
        16.0,
        TOP + (HEIGHT - TOP - BOTTOM) / 2.0,
        &format!(
            r#"class="axis" text-anchor="middle" transform="rotate(-90 16 {:.1})""#,
            TOP + (HEIGHT - TOP - BOTTOM) / 2.0
        ),
        "recovery time",
    );
    // Horizontal references: the RTO and the regression threshold.
    let rto_y = y.px(rto_us as f64);
    let _ = write!(
        s,
        r##"<line class="rto" x1="{LEFT}" x2="{}" y1="{rto_y:.1}" y2="{rto_y:.1}" stroke="#1f4e99" stroke-width="2" stroke-dasharray="8 4"/>"##,
        WIDTH - RIGHT
    );
    text(
        &mut s,
        WIDTH - RIGHT + 6.0,
        rto_y + 4.0,
        r##"class="label" fill="#1f4e99""##,
        &format!("RTO {}", fmt_us(rto_us)),
    );
    if let Some(b) = &base {
        let ty = y.px(b.threshold_us as f64);
        let _ = write!(
            s,
            r##"<line class="threshold" x1="{LEFT}" x2="{}" y1="{ty:.1}" y2="{ty:.1}" stroke="#bc4c00" stroke-width="1.5" stroke-dasharray="2 3"/>"##,
            WIDTH - RIGHT
        );
        // Keep the two labels apart when the lines are close.
        let ly = if (ty - rto_y).abs() < 14.0 {
            if ty < rto_y {
                rto_y - 14.0
            } else {
                rto_y + 14.0
            }
        } else {
            ty
        };
        text(
            &mut s,
            WIDTH - RIGHT + 6.0,
            ly + 4.0,
            r##"class="label" fill="#bc4c00""##,
            &format!("regression threshold {}", fmt_us(b.threshold_us)),
        );
    }
    // The line through measured recoveries.
    let line: Vec<String> = sorted
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            p.recovery_us
                .map(|us| format!("{:.1},{:.1}", x(i), y.px(us as f64)))
        })
        .collect();
    if line.len() > 1 {
        let _ = write!(
            s,
            r##"<polyline points="{}" fill="none" stroke="#6e7781" stroke-width="1.5"/>"##,
            line.join(" ")
        );
    }
    // The points, and the x labels: the date, and the time too when runs share a day; as many
    // labels as fit without touching.
    let labels = x_labels(&sorted);
    let widest = labels
        .iter()
        .map(|l| text_width(l, 12.0))
        .fold(0.0, f64::max);
    let spacing = if n > 1 { x(1) - x(0) } else { f64::MAX };
    let label_every = ((widest + 12.0) / spacing).ceil().max(1.0) as usize;
    // A FAIL that never recovered is drawn at the top (an × for "forever"); anything else
    // without a recovery time measured nothing.
    let unmeasured = |p: &TrendPoint| p.recovery_us.is_none() && p.verdict != Verdict::Fail;
    if sorted.iter().any(|p| unmeasured(p)) {
        text(
            &mut s,
            LEFT - 6.0,
            UNMEASURED_Y + 4.0,
            r##"class="tick" text-anchor="end" font-size="11" fill="#57606a""##,
            "not measured",
        );
    }
    for (i, p) in sorted.iter().enumerate() {
        let px = x(i);
        let when = utc_datetime(p.started_unix_ms)
            .map(|(d, t)| format!("{d} {t} UTC"))
            .unwrap_or_else(|| "unknown time".into());
        let figure = p
            .recovery_us
            .map(|us| format!("recovered in {}", fmt_us(us)))
            .unwrap_or_else(|| "no recovery time".into());
        let title = format!("{} — {when} — {} — {figure}", p.run_id, p.verdict);
        let _ = write!(s, "<g><title>{}</title>", escape::xml(&title));
        match (p.verdict, p.recovery_us) {
            (_, Some(us)) => {
                let color = if p.verdict == Verdict::Pass {
                    "#2da44e"
                } else {
                    "#e5332a"
                };
                let _ = write!(
                    s,
                    r##"<circle cx="{px:.1}" cy="{:.1}" r="5" fill="{color}" stroke="#ffffff" stroke-width="1"/>"##,
                    y.px(us as f64)
                );
            }
            (Verdict::Fail, None) => {
                let py = TOP + 8.0;
                let _ = write!(
                    s,
                    r##"<path d="M{:.1},{:.1} l10,10 m0,-10 l-10,10" stroke="#e5332a" stroke-width="2.5"/>"##,
                    px - 5.0,
                    py - 5.0
                );
            }
            _ => {
                // A diamond on the "not measured" strip: no recovery time is not a 0 s one.
                let py = UNMEASURED_Y;
                let _ = write!(
                    s,
                    r##"<path class="unmeasured" d="M{px:.1},{:.1} l5,5 l-5,5 l-5,-5 z" fill="none" stroke="#8c959f" stroke-width="1.5"/>"##,
                    py - 5.0
                );
            }
        }
        s.push_str("</g>");
        if i % label_every == 0 || i + 1 == n {
            let label = labels[i].clone();
            text(
                &mut s,
                px,
                HEIGHT - BOTTOM + 16.0,
                r#"class="tick" text-anchor="middle""#,
                &label,
            );
        }
    }
    if let Some(b) = &base {
        let p = sorted[b.latest];
        let px = x(b.latest);
        let py = p.recovery_us.map_or(TOP + 8.0, |us| y.px(us as f64));
        let (color, label) = if flagged {
            ("#cf222e", "REGRESSION")
        } else {
            ("#1a7f37", "latest")
        };
        let _ = write!(
            s,
            r##"<circle class="latest" cx="{px:.1}" cy="{py:.1}" r="10" fill="none" stroke="{color}" stroke-width="2.5"/>"##
        );
        text(
            &mut s,
            px,
            (py - 16.0).max(TOP + 12.0),
            &format!(r#"class="label" text-anchor="middle" font-weight="bold" fill="{color}""#),
            label,
        );
    }
    text(
        &mut s,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        HEIGHT - 12.0,
        r#"class="axis" text-anchor="middle""#,
        "runs, oldest to newest (start, UTC)",
    );
    s.push_str("</svg>");
    s
}

/// The x labels of sorted points: "11-14", or "11-14 22:13" for every point when two of them
/// started on the same day; "#N" when the start is unknown.
fn x_labels(sorted: &[&TrendPoint]) -> Vec<String> {
    let days: Vec<Option<(String, String)>> = sorted
        .iter()
        .map(|p| utc_datetime(p.started_unix_ms))
        .collect();
    let shared = days
        .windows(2)
        .any(|w| matches!((&w[0], &w[1]), (Some(a), Some(b)) if a.0 == b.0));
    days.iter()
        .enumerate()
        .map(|(i, d)| match d {
            Some((day, time)) if shared => format!("{} {}", &day[5..], &time[..5]),
            Some((day, _)) => day[5..].to_string(),
            None => format!("#{}", i + 1),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(i: u64, verdict: Verdict, recovery_ms: Option<u64>) -> TrendPoint {
        TrendPoint {
            run_id: format!("run-{i}"),
            started_unix_ms: 1_700_000_000_000 + i * 86_400_000,
            verdict,
            recovery_us: recovery_ms.map(|ms| ms * 1000),
        }
    }

    fn series(recoveries_ms: &[u64]) -> Vec<TrendPoint> {
        recoveries_ms
            .iter()
            .enumerate()
            .map(|(i, ms)| point(i as u64, Verdict::Pass, Some(*ms)))
            .collect()
    }

    #[test]
    fn needs_three_previous_measurements() {
        assert_eq!(regression(&series(&[500, 510, 5_000])), None);
        let r = regression(&series(&[500, 510, 505, 5_000])).expect("flagged");
        assert_eq!(r.run_id, "run-3");
        assert_eq!(r.previous, 3);
        assert_eq!(r.median_us, 505_000);
        assert_eq!(r.p95_us, 510_000);
        assert_eq!(r.threshold_us, 757_500);
    }

    #[test]
    fn must_beat_both_the_p95_and_one_and_a_half_medians() {
        // Over the p95 (520) but under 1.5 × median (757.5): jitter, not a regression.
        assert_eq!(regression(&series(&[500, 510, 505, 520, 700])), None);
        // Over 1.5 × median but not over a past outlier that is the p95 of a short window.
        assert_eq!(regression(&series(&[500, 510, 2_000, 800])), None);
        // Exactly at the threshold is not over it.
        assert_eq!(regression(&series(&[100, 100, 100, 150])), None);
        assert!(regression(&series(&[100, 100, 100, 151])).is_some());
    }

    #[test]
    fn the_baseline_is_the_last_ten() {
        // An old outlier drops out of the window of ten.
        let mut ms = vec![9_000];
        ms.extend(std::iter::repeat_n(100, 10));
        ms.push(400);
        let r = regression(&series(&ms)).expect("the 9 s outlier is out of the window");
        assert_eq!(r.previous, 10);
        assert_eq!(r.p95_us, 100_000);
    }

    #[test]
    fn never_recovering_is_a_regression() {
        let mut pts = series(&[100, 110, 120]);
        pts.push(point(9, Verdict::Fail, None));
        let r = regression(&pts).expect("flagged");
        assert_eq!(r.latest_recovery_us, None);
        assert!(r.summary().contains("did not recover"), "{}", r.summary());
    }

    #[test]
    fn runs_that_measured_nothing_are_skipped() {
        let mut pts = series(&[100, 110, 120, 1_000]);
        // Later runs that were inconclusive or in error do not hide the regression.
        pts.push(point(10, Verdict::Inconclusive, None));
        pts.push(point(11, Verdict::Error, None));
        pts.push(point(12, Verdict::NoImpact, None));
        assert_eq!(regression(&pts).map(|r| r.run_id), Some("run-3".into()));
    }

    #[test]
    fn order_is_by_start_time_not_by_slice_order() {
        let mut pts = series(&[100, 110, 120, 1_000]);
        pts.reverse();
        assert_eq!(regression(&pts).map(|r| r.run_id), Some("run-3".into()));
    }

    #[test]
    fn a_fail_that_recovered_still_has_a_figure_in_the_baseline() {
        let pts = vec![
            point(0, Verdict::Fail, Some(3_000)),
            point(1, Verdict::Pass, Some(100)),
            point(2, Verdict::Pass, Some(100)),
            point(3, Verdict::Pass, Some(200)),
        ];
        // Baseline [100, 100, 3000]: p95 is 3 s, so 200 ms is no regression.
        assert_eq!(regression(&pts), None);
    }

    #[test]
    fn a_run_that_measured_nothing_is_not_drawn_as_a_zero_recovery() {
        let mut pts = series(&[500, 510]);
        pts.push(point(5, Verdict::Inconclusive, None));
        let svg = chart(&pts, 2_000_000);
        let marker = svg
            .split("<g><title>run-5")
            .nth(1)
            .expect("the inconclusive run is drawn");
        assert!(marker.contains(r#"class="unmeasured""#), "{marker}");
        let y: f64 = marker
            .split(r#"d="M"#)
            .nth(1)
            .and_then(|m| m.split([',', ' ']).nth(1))
            .expect("a marker with a position")
            .parse()
            .unwrap();
        assert!(
            y > HEIGHT - BOTTOM,
            "below the chart, not on its 0 s line: {y}"
        );
        assert!(svg.contains("not measured"));
    }

    #[test]
    fn runs_on_the_same_day_are_labelled_with_their_time() {
        let day = |i: u64, minute: u64| TrendPoint {
            run_id: format!("run-{i}"),
            started_unix_ms: 1_700_000_000_000 + minute * 60_000,
            verdict: Verdict::Pass,
            recovery_us: Some(100_000),
        };
        let svg = chart(&[day(0, 0), day(1, 5)], 2_000_000);
        assert!(svg.contains(">11-14 22:13<"), "{svg}");
        assert!(svg.contains(">11-14 22:18<"), "{svg}");
        // On days of their own, the date is enough.
        let svg = chart(&series(&[100, 110]), 2_000_000);
        assert!(svg.contains(">11-14<") && svg.contains(">11-15<"), "{svg}");
    }

    #[test]
    fn chart_draws_points_rto_threshold_and_the_flag() {
        let pts = series(&[500, 510, 505, 5_000]);
        let svg = chart(&pts, 2_000_000);
        assert_eq!(svg.matches("<circle").count(), 5, "4 points + the ring");
        assert!(svg.contains(r#"class="rto""#));
        assert!(svg.contains(r#"class="threshold""#));
        assert!(svg.contains("REGRESSION"));
        let calm = chart(&series(&[500, 510, 505, 500]), 2_000_000);
        assert!(!calm.contains("REGRESSION"));
    }
}
