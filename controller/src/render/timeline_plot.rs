//! The per-run timeline plot: one lane per probe with every sample drawn where it ran (green
//! ok, red failed), the fault window shaded, the RTO drawn from the injection, and impact and
//! recovery marked with their measurement brackets.
//!
//! Lanes with more samples than [`MAX_MARKS`] are reduced to at most one ok and one failed mark
//! per pixel column, so a long run stays light while every failure stays visible.

use std::fmt::Write as _;

use super::escape;
use super::svg::{fmt_axis_us, nice_step, text, text_width, ticks, Scale};
use super::utc_datetime;
use crate::grade::{fmt_us, Measured};
use crate::report::RunReport;
use crate::timeline::Sample;

/// Above this many samples in a lane, marks are merged per pixel column.
pub(crate) const MAX_MARKS: usize = 2000;

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 170.0;
const RIGHT: f64 = 30.0;
const ROW: f64 = 16.0;
const TOP: f64 = 8.0 + 4.0 * ROW + 6.0;
const LANE: f64 = 30.0;
const BOTTOM: f64 = 64.0;
/// Tick labels are set in this size, and kept this far apart at least.
const TICK_FONT: f64 = 11.0;
const TICK_GAP: f64 = 16.0;

/// Colours of ok and failed samples (the browser test looks for them).
pub(crate) const OK_COLOR: &str = "#2da44e";
/// See [`OK_COLOR`].
pub(crate) const FAILED_COLOR: &str = "#e5332a";

/// One drawn mark: a sample, or the samples of one state in one pixel column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mark {
    pub start_us: u64,
    pub end_us: u64,
    pub ok: bool,
    /// How many samples it stands for.
    pub samples: usize,
    /// The first error among them.
    pub error: String,
}

impl Mark {
    fn of(s: &Sample) -> Mark {
        Mark {
            start_us: s.start_us,
            end_us: s.end_us,
            ok: s.ok,
            samples: 1,
            error: s.error.clone(),
        }
    }

    fn absorb(&mut self, s: &Sample) {
        self.start_us = self.start_us.min(s.start_us);
        self.end_us = self.end_us.max(s.end_us);
        self.samples += 1;
    }
}

/// The marks of one lane: one per sample up to `max_marks` samples; beyond that, per pixel
/// column of the `[d0_us, d1_us]` range split into `columns`, one mark for the ok samples and
/// one for the failed ones, so every failure keeps a mark of its own column.
pub(crate) fn downsample(
    samples: &[Sample],
    d0_us: u64,
    d1_us: u64,
    columns: usize,
    max_marks: usize,
) -> Vec<Mark> {
    if samples.len() <= max_marks {
        return samples.iter().map(Mark::of).collect();
    }
    let columns = columns.max(1) as u128;
    let span = u128::from(d1_us.saturating_sub(d0_us).max(1));
    let column_of = |s: &Sample| -> u128 {
        (u128::from(s.start_us.saturating_sub(d0_us)) * columns / span).min(columns - 1)
    };
    let mut out = Vec::new();
    let mut current: Option<u128> = None;
    let (mut ok, mut failed): (Option<Mark>, Option<Mark>) = (None, None);
    for s in samples {
        let col = column_of(s);
        if current != Some(col) {
            out.extend(ok.take());
            out.extend(failed.take());
            current = Some(col);
        }
        let slot = if s.ok { &mut ok } else { &mut failed };
        match slot {
            Some(m) => m.absorb(s),
            None => *slot = Some(Mark::of(s)),
        }
    }
    out.extend(ok);
    out.extend(failed);
    out
}

/// The plot of one run, or `None` when it has no samples to draw.
pub(crate) fn plot(run: &RunReport, rto_us: u64) -> Option<String> {
    let first = run
        .probes
        .iter()
        .flat_map(|p| p.samples.iter().map(|s| s.start_us))
        .min()?;
    let last = run
        .probes
        .iter()
        .flat_map(|p| p.samples.iter().map(|s| s.end_us))
        .max()?;
    // Times are drawn relative to the injection when there was one: that is where the RTO,
    // impact and recovery are counted from.
    let origin = run.inject.map_or(0, |m| m.at_us);
    let grade = run.grade.as_ref();
    let mut end = last.max(run.revert_us.unwrap_or(0));
    if let Some(inject) = run.inject {
        end = end.max(inject.at_us + rto_us);
        if let Some(r) = grade.and_then(|g| g.time_to_recover) {
            end = end.max(inject.at_us + r.high_us);
        }
    }
    let start = first.min(origin);
    let pad = (end - start) / 100;
    let (d0, d1) = (start.saturating_sub(pad), end + pad);
    let rel = |us: u64| us as f64 - origin as f64;
    let x = Scale::new(rel(d0), rel(d1), LEFT, WIDTH - RIGHT);
    let lanes = run.probes.len() as f64;
    let lanes_bottom = TOP + lanes * LANE;
    let height = lanes_bottom + BOTTOM;
    let plot_width = WIDTH - LEFT - RIGHT;

    let mut s = String::new();
    // The page's width: the viewBox scales to the column it sits in (as wide as the viewBox on
    // a desktop page, so a sample mark is 16 px tall there).
    let _ = write!(
        s,
        r#"<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" preserveAspectRatio="xMinYMin meet" font-family="system-ui, sans-serif" font-size="12" role="img" aria-label="probe timeline of run {}">"#,
        escape::xml_attr(&run.run_id)
    );
    // Lane backgrounds and labels.
    for (i, p) in run.probes.iter().enumerate() {
        let y0 = TOP + i as f64 * LANE;
        let fill = if i % 2 == 0 { "#f6f8fa" } else { "#ffffff" };
        let _ = write!(
            s,
            r#"<rect x="{LEFT}" y="{y0}" width="{plot_width}" height="{LANE}" fill="{fill}"/>"#
        );
        let failed = p.samples.iter().filter(|s| !s.ok).count();
        let _ = write!(s, "<g><title>{}</title>", escape::xml(&p.name));
        text(
            &mut s,
            LEFT - 8.0,
            y0 + 13.0,
            r#"class="lane" text-anchor="end" font-weight="600""#,
            &escape::truncate(&p.name, 20),
        );
        s.push_str("</g>");
        text(
            &mut s,
            LEFT - 8.0,
            y0 + 26.0,
            r##"class="small" text-anchor="end" font-size="10" fill="#57606a""##,
            &format!("{} samples, {failed} failed", p.samples.len()),
        );
    }
    let _ = write!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_width}" height="{}" fill="none" stroke="#d0d7de"/>"##,
        lanes * LANE
    );
    // Grid and axis: the time relative to the injection, and under it the wall clock (UTC), so
    // the run lines up with dashboards and logs. As many ticks as their labels leave room for.
    let (t0, t1) = x.domain();
    let wall = |t: f64, step: f64| -> Option<String> {
        let at_ms = run.started_unix_ms as f64 + (origin as f64 + t) / 1e3;
        wall_clock(at_ms.max(0.0) as u64, step).filter(|_| run.started_unix_ms > 0)
    };
    let widest = |step: f64| -> f64 {
        ticks(t0, t1, step)
            .iter()
            .flat_map(|t| [Some(fmt_axis_us(*t, step)), wall(*t, step)])
            .flatten()
            .map(|l| text_width(&l, TICK_FONT))
            .fold(0.0, f64::max)
    };
    let mut step = nice_step(t1 - t0, 10);
    while x.px(t0 + step) - x.px(t0) < widest(step) + TICK_GAP {
        step = nice_step(step * 1.5, 1);
    }
    for t in ticks(t0, t1, step) {
        let px = x.px(t);
        let _ = write!(
            s,
            r##"<line x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{:.1}" stroke="#d8dee4" stroke-width="0.8"/>"##,
            lanes_bottom + 4.0
        );
        text(
            &mut s,
            px,
            lanes_bottom + 17.0,
            r##"class="tick" text-anchor="middle" font-size="11" fill="#57606a""##,
            &fmt_axis_us(t, step),
        );
        if let Some(w) = wall(t, step) {
            text(
                &mut s,
                px,
                lanes_bottom + 31.0,
                r##"class="wall" text-anchor="middle" font-size="11" fill="#8c959f""##,
                &w,
            );
        }
    }
    let since = if run.inject.is_some() {
        "time since the fault took effect"
    } else {
        "time since the run started"
    };
    let axis = match utc_datetime(run.started_unix_ms) {
        Some((day, _)) => format!("{since}; below it, the wall clock (UTC, {day})"),
        None => since.to_string(),
    };
    text(
        &mut s,
        LEFT + plot_width / 2.0,
        lanes_bottom + 52.0,
        r##"class="axis" text-anchor="middle" fill="#24292f""##,
        &axis,
    );

    // The fault window: shaded while the fault held, a line for an instant fault.
    let kind = run
        .faults
        .first()
        .map(|f| f.kind.as_str())
        .unwrap_or("fault");
    if let Some(inject) = run.inject {
        let fx = x.px(0.0);
        match run.revert_us {
            Some(r) if r > inject.at_us => {
                let rx = x.px(rel(r));
                let _ = write!(
                    s,
                    r##"<rect class="fault-window" x="{fx:.1}" y="{TOP}" width="{:.1}" height="{}" fill="#f4a261" fill-opacity="0.3"/>"##,
                    (rx - fx).max(1.0),
                    lanes * LANE
                );
                annotate(
                    &mut s,
                    &x,
                    0.0,
                    0,
                    lanes_bottom,
                    "#c2410c",
                    "",
                    &format!(
                        "fault {kind}, held {} until the revert",
                        fmt_us(r - inject.at_us)
                    ),
                );
            }
            _ => annotate(
                &mut s,
                &x,
                0.0,
                0,
                lanes_bottom,
                "#c2410c",
                "4 2",
                &format!("fault {kind} (±{})", fmt_us(inject.uncertainty_us)),
            ),
        }
    }

    // Samples: ok first, failed on top, so no failure hides under a neighbour.
    let columns = plot_width as usize;
    for (i, p) in run.probes.iter().enumerate() {
        let y = TOP + i as f64 * LANE + 7.0;
        let marks = downsample(&p.samples, d0, d1, columns, MAX_MARKS);
        for ok in [true, false] {
            let color = if ok { OK_COLOR } else { FAILED_COLOR };
            let _ = write!(
                s,
                r#"<g class="{}" fill="{color}">"#,
                if ok { "ok" } else { "failed" }
            );
            for m in marks.iter().filter(|m| m.ok == ok) {
                let mx = x.px(rel(m.start_us));
                // At least 2 px: a lone sample, failed above all, must stay visible.
                let w = (x.px(rel(m.end_us)) - mx).max(2.0);
                let _ = write!(
                    s,
                    r#"<rect x="{mx:.1}" y="{y:.1}" width="{w:.1}" height="16""#
                );
                if ok {
                    s.push_str("/>");
                } else {
                    let what = if m.samples == 1 {
                        format!("failed at {}: {}", signed(rel(m.start_us)), m.error)
                    } else {
                        format!(
                            "{} failed samples from {}, first: {}",
                            m.samples,
                            signed(rel(m.start_us)),
                            m.error
                        )
                    };
                    let _ = write!(s, "><title>{}</title></rect>", escape::xml(&what));
                }
            }
            s.push_str("</g>");
        }
    }

    // Impact, recovery and the RTO, counted from the injection.
    if run.inject.is_some() {
        let impact = grade.and_then(|g| g.time_to_detect);
        let recovered = grade.and_then(|g| g.time_to_recover);
        if let Some(m) = impact {
            bracket_band(&mut s, &x, &m, lanes, "#9b2226");
            annotate(
                &mut s,
                &x,
                m.us as f64,
                1,
                lanes_bottom,
                "#9b2226",
                "",
                &format!("impact +{} {}", fmt_us(m.us), bracket(&m)),
            );
        }
        match recovered {
            Some(m) => {
                bracket_band(&mut s, &x, &m, lanes, "#1a7f37");
                annotate(
                    &mut s,
                    &x,
                    m.us as f64,
                    2,
                    lanes_bottom,
                    "#1a7f37",
                    "",
                    &format!("recovered +{} {}", fmt_us(m.us), bracket(&m)),
                );
            }
            None if impact.is_some() => text(
                &mut s,
                WIDTH - RIGHT,
                8.0 + 2.0 * ROW + 11.0,
                r##"class="label" text-anchor="end" font-weight="600" fill="#cf222e""##,
                "not recovered within the observation window",
            ),
            None => {}
        }
        annotate(
            &mut s,
            &x,
            rto_us as f64,
            3,
            lanes_bottom,
            "#1f4e99",
            "8 4",
            &format!("RTO {}", fmt_us(rto_us)),
        );
    }
    // The alert that noticed the fault and the people's notes: thin markers across the lanes
    // with their text on hover (labels would crowd the rows above). Those past the plot's end
    // (a note added long after the run) are in the report's list only.
    let mut events: Vec<(u64, &str, String)> = Vec::new();
    if let (Some(inject), Some(d)) = (run.inject, run.detection.as_ref()) {
        if let Some(a) = &d.alert {
            let name = a.labels.get("alertname").map_or("alert", String::as_str);
            let at = inject.at_us.saturating_add(a.delivered_after_us);
            events.push((
                at,
                "#6f42c1",
                format!("alert {name} delivered {}", signed(rel(at))),
            ));
        }
    }
    for n in &run.annotations {
        let at = n.at_us(run);
        let what = format!(
            "{} {} ({}): {}",
            signed(rel(at)),
            n.author,
            n.kind.label(),
            n.text
        );
        events.push((at, "#57606a", what));
    }
    for step in &run.remediation_steps {
        if let Some(m) = step.started {
            let what = format!(
                "{} remediation step {} started on {}",
                signed(rel(m.at_us)),
                step.name,
                step.place
            );
            events.push((m.at_us, "#1a7f37", what));
        }
        if let Some(m) = step.ended {
            let what = format!(
                "{} remediation step {} ended: {}",
                signed(rel(m.at_us)),
                step.name,
                step.outcome
            );
            events.push((m.at_us, "#1a7f37", what));
        }
    }
    for (at, color, what) in events
        .into_iter()
        .filter(|(at, _, _)| (d0..=d1).contains(at))
    {
        let px = x.px(rel(at));
        let _ = write!(
            s,
            r#"<line class="event" x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{lanes_bottom:.1}" stroke="{color}" stroke-width="3" stroke-dasharray="2 3"><title>{}</title></line>"#,
            super::escape::xml(&what)
        );
    }
    s.push_str("</svg>");
    Some(s)
}

/// The wall-clock time of a tick: "22:13:21", with the milliseconds when ticks are less than a
/// second apart ("22:13:21.250"); `None` for an unknown start (0).
fn wall_clock(unix_ms: u64, step_us: f64) -> Option<String> {
    let (_, hms) = utc_datetime(unix_ms.max(1))?;
    if step_us >= 1e6 {
        return Some(hms);
    }
    Some(format!("{hms}.{:03}", unix_ms % 1000))
}

/// "[low .. high]" of a figure.
fn bracket(m: &Measured) -> String {
    format!("[{} .. {}]", fmt_us(m.low_us), fmt_us(m.high_us))
}

fn signed(us: f64) -> String {
    if us < 0.0 {
        format!("-{}", fmt_us((-us) as u64))
    } else {
        format!("+{}", fmt_us(us as u64))
    }
}

/// A translucent band over the lanes where the truth lies.
fn bracket_band(s: &mut String, x: &Scale, m: &Measured, lanes: f64, color: &str) {
    let lo = x.px(m.low_us as f64);
    let hi = x.px(m.high_us as f64);
    let _ = write!(
        s,
        r#"<rect class="bracket" x="{lo:.1}" y="{TOP}" width="{:.1}" height="{}" fill="{color}" fill-opacity="0.16"/>"#,
        (hi - lo).max(1.0),
        lanes * LANE
    );
}

/// A vertical line at `at_us` (relative to the origin) from its label row down through the
/// lanes, labelled in that row; labels near the right edge are anchored to the left of it.
#[allow(clippy::too_many_arguments)]
fn annotate(
    s: &mut String,
    x: &Scale,
    at_us: f64,
    row: usize,
    lanes_bottom: f64,
    color: &str,
    dash: &str,
    label: &str,
) {
    let px = x.px(at_us);
    let row_y = 8.0 + row as f64 * ROW;
    let dash = if dash.is_empty() {
        String::new()
    } else {
        format!(r#" stroke-dasharray="{dash}""#)
    };
    let _ = write!(
        s,
        r#"<line class="marker" x1="{px:.1}" x2="{px:.1}" y1="{:.1}" y2="{lanes_bottom:.1}" stroke="{color}" stroke-width="2"{dash}/>"#,
        row_y + 13.0
    );
    // Right of the line when it fits, else left of it, and never off the plot.
    let w = text_width(label, 12.0);
    let (tx, anchor) = if px + 4.0 + w <= WIDTH - 2.0 {
        (px + 4.0, "start")
    } else {
        ((px - 4.0).max(w + 2.0), "end")
    };
    text(
        s,
        tx,
        row_y + 11.0,
        &format!(r#"class="label" text-anchor="{anchor}" font-weight="600" fill="{color}""#),
        label,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::{Grade, Verdict};
    use crate::timeline::{Moment, ProbeTimeline};

    fn samples(n: u64, failed: &[u64]) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                start_us: i * 10_000,
                end_us: i * 10_000 + 1_000,
                ok: !failed.contains(&i),
                error: if failed.contains(&i) {
                    format!("refused #{i}")
                } else {
                    String::new()
                },
            })
            .collect()
    }

    #[test]
    fn small_lanes_keep_every_sample() {
        let s = samples(100, &[5]);
        let m = downsample(&s, 0, 1_000_000, 900, MAX_MARKS);
        assert_eq!(m.len(), 100);
    }

    #[test]
    fn large_lanes_merge_per_column_and_keep_every_failure() {
        let failed = [3, 4_000, 4_001, 9_999];
        let s = samples(10_000, &failed);
        let m = downsample(&s, 0, 100_000_000, 900, MAX_MARKS);
        assert!(m.len() <= 2 * 900, "{} marks", m.len());
        assert!(m.len() >= 900, "every column has a mark: {}", m.len());
        let red: Vec<&Mark> = m.iter().filter(|m| !m.ok).collect();
        for f in failed {
            let at = f * 10_000;
            assert!(
                red.iter().any(|m| m.start_us <= at && at < m.end_us),
                "failure {f} has a red mark"
            );
        }
        assert_eq!(red.iter().map(|m| m.samples).sum::<usize>(), failed.len());
        assert_eq!(m.iter().map(|m| m.samples).sum::<usize>(), 10_000);
        assert_eq!(red[0].error, "refused #3");
    }

    fn run() -> RunReport {
        RunReport {
            run_id: "run-<1>".into(),
            index: 1,
            verdict: Verdict::Pass,
            reason: "ok".into(),
            met_expectation: true,
            targets: vec!["local".into()],
            epoch_monotonic_ns: 0,
            started_unix_ms: 0,
            inject: Some(Moment {
                at_us: 1_000_000,
                uncertainty_us: 500,
            }),
            revert_us: None,
            grade: Some(Grade {
                verdict: Verdict::Pass,
                reason: "ok".into(),
                time_to_detect: Some(Measured {
                    us: 1_000,
                    low_us: 0,
                    high_us: 1_000,
                }),
                time_to_recover: Some(Measured {
                    us: 301_000,
                    low_us: 290_000,
                    high_us: 301_000,
                }),
                recover_after_revert_us: None,
                recovered_by: None,
                probes: vec![],
            }),
            stages: vec![],
            detection: None,
            annotations: vec![],
            remediation: None,
            remediation_signal: None,
            remediation_steps: vec![],
            faults: vec![],
            probes: vec![ProbeTimeline {
                name: "http <&> probe".into(),
                recovered_after: 3,
                skipped: 0,
                seed: None,
                samples: samples(200, &[100, 101, 102]),
            }],
        }
    }

    #[test]
    fn plot_marks_the_run() {
        let svg = plot(&run(), 2_000_000).expect("a plot");
        assert!(svg.contains("RTO 2.000s"), "{svg}");
        assert!(svg.contains("impact +1.0ms [0µs .. 1.0ms]"));
        assert!(svg.contains("recovered +301.0ms [290.0ms .. 301.0ms]"));
        assert!(svg.contains("fault fault (±500µs)"));
        assert!(svg.contains("http &lt;&amp;&gt; probe"));
        assert!(svg.contains("run-&lt;1&gt;"));
        assert!(!svg.contains("<&>"));
        assert_eq!(
            svg.matches(FAILED_COLOR).count(),
            1,
            "one group of failed marks"
        );
        assert_eq!(svg.matches("<title>failed at").count(), 3);
        assert!(svg.contains("time since the fault took effect"));
    }

    #[test]
    fn notes_on_the_plot_are_markers_with_their_text_on_hover() {
        let mut r = run();
        r.started_unix_ms = 1_000;
        r.annotations = vec![
            crate::annotation::Annotation {
                unix_ms: 1_100,
                author: "operator <a>".into(),
                kind: crate::annotation::AnnotationKind::ActionItem,
                text: "page the DB team".into(),
            },
            crate::annotation::Annotation {
                unix_ms: 90_000,
                author: "operator b".into(),
                kind: crate::annotation::AnnotationKind::Note,
                text: "long after".into(),
            },
        ];
        let svg = plot(&r, 2_000_000).unwrap();
        assert_eq!(
            svg.matches(r#"class="event""#).count(),
            1,
            "the late note is off the plot"
        );
        assert!(
            svg.contains("operator &lt;a&gt; (action item): page the DB team</title>"),
            "{svg}"
        );
    }

    #[test]
    fn a_remediation_step_marks_its_start_and_end() {
        let mut r = run();
        let at = |us| crate::timeline::Moment {
            at_us: us,
            uncertainty_us: 100,
        };
        r.remediation_steps = vec![crate::remediation::StepRecord {
            place: "agent web1".into(),
            started: Some(at(1_250_000)),
            ended: Some(at(1_400_000)),
            ..crate::fixtures::step(
                "restart-nginx",
                crate::remediation::StepOutcome::Succeeded {
                    how: "exit 0".into(),
                },
            )
        }];
        let svg = plot(&r, 2_000_000).unwrap();
        assert_eq!(svg.matches(r#"class="event""#).count(), 2, "{svg}");
        assert!(svg.contains("remediation step restart-nginx started on agent web1</title>"));
        assert!(svg.contains("remediation step restart-nginx ended: succeeded (exit 0)</title>"));
    }

    /// The `<text>` elements of a class: (x, anchor, content).
    fn texts<'a>(svg: &'a str, class: &str) -> Vec<(f64, &'a str, &'a str)> {
        let open = format!(r#"class="{class}""#);
        svg.split("<text ")
            .skip(1)
            .filter(|t| t.contains(&open))
            .map(|t| {
                let x: f64 = t["x=\"".len()..]
                    .split('"')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                let anchor = t
                    .split(r#"text-anchor=""#)
                    .nth(1)
                    .map_or("start", |a| a.split('"').next().unwrap());
                let content = t.split('>').nth(1).unwrap().split('<').next().unwrap();
                (x, anchor, content)
            })
            .collect()
    }

    /// Extents of texts, estimated as the plot estimates them.
    fn extents(texts: &[(f64, &str, &str)], size: f64) -> Vec<(f64, f64)> {
        texts
            .iter()
            .map(|(x, anchor, content)| {
                let w = text_width(content, size);
                match *anchor {
                    "middle" => (x - w / 2.0, x + w / 2.0),
                    "end" => (x - w, *x),
                    _ => (*x, x + w),
                }
            })
            .collect()
    }

    fn assert_apart(spans: &[(f64, f64)], what: &str) {
        let mut spans = spans.to_vec();
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in spans.windows(2) {
            assert!(w[0].1 + 4.0 <= w[1].0, "{what} overlap: {spans:?}");
        }
    }

    #[test]
    fn the_plot_takes_the_pages_width() {
        let svg = plot(&run(), 2_000_000).unwrap();
        assert!(svg.contains(r#"width="100%""#), "{svg}");
        assert!(!svg.contains(&format!(r#"width="{WIDTH}""#)));
    }

    #[test]
    fn ticks_carry_the_wall_clock_and_no_labels_collide() {
        let mut r = run();
        // 2023-11-14 22:13:20 UTC at the run's start.
        r.started_unix_ms = 1_700_000_000_000;
        // A long run: 30 s of samples at 10 ms.
        r.probes[0].samples = samples(3_000, &[100, 101, 102]);
        let svg = plot(&r, 2_000_000).unwrap();
        let rel = texts(&svg, "tick");
        let wall = texts(&svg, "wall");
        assert!(rel.len() >= 4, "{rel:?}");
        assert_eq!(wall.len(), rel.len(), "a wall-clock label under every tick");
        // The injection came 1 s after the start: tick "0" is 22:13:21.
        let zero = rel
            .iter()
            .position(|t| t.2 == "0")
            .expect("a tick at the injection");
        assert_eq!(wall[zero].2, "22:13:21");
        assert_apart(&extents(&rel, 11.0), "relative ticks");
        assert_apart(&extents(&wall, 11.0), "wall-clock ticks");
        // Marker labels stay inside the plot.
        for (lo, hi) in extents(&texts(&svg, "label"), 12.0) {
            assert!(
                lo >= 0.0 && hi <= WIDTH,
                "label out of the plot: {lo}..{hi}"
            );
        }
        // Without a wall-clock start there is nothing to show.
        let svg = plot(&run(), 2_000_000).unwrap();
        assert!(texts(&svg, "wall").is_empty());
    }

    #[test]
    fn no_samples_no_plot() {
        let mut r = run();
        r.probes.clear();
        assert!(plot(&r, 1).is_none());
    }
}
