//! Small building blocks for the SVG plots: linear scales, "nice" axis ticks and tick labels in
//! human time units.

use std::fmt::Write as _;

use super::escape;

/// Maps a data interval onto a pixel interval.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scale {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
}

impl Scale {
    /// A scale from data `[d0, d1]` to pixels `[r0, r1]`; an empty data interval is widened.
    pub(crate) fn new(d0: f64, d1: f64, r0: f64, r1: f64) -> Scale {
        let d1 = if d1 > d0 { d1 } else { d0 + 1.0 };
        Scale { d0, d1, r0, r1 }
    }

    /// The pixel of a data value.
    pub(crate) fn px(&self, v: f64) -> f64 {
        self.r0 + (v - self.d0) / (self.d1 - self.d0) * (self.r1 - self.r0)
    }

    /// The data interval.
    pub(crate) fn domain(&self) -> (f64, f64) {
        (self.d0, self.d1)
    }
}

/// A tick step of 1, 2 or 5 times a power of ten, giving about `target` ticks over `span`.
pub(crate) fn nice_step(span: f64, target: usize) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    step.max(1.0)
}

/// Tick values (multiples of `step`) inside `[d0, d1]`.
pub(crate) fn ticks(d0: f64, d1: f64, step: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut v = (d0 / step).ceil() * step;
    while v <= d1 + step * 1e-9 && out.len() < 1000 {
        out.push(v);
        v += step;
    }
    out
}

/// A tick label for `us` microseconds on an axis whose ticks are `step_us` apart: "0",
/// "-500ms", "1.5s", "250µs", with just the decimals the step needs.
pub(crate) fn fmt_axis_us(us: f64, step_us: f64) -> String {
    let rounded = (us / step_us).round() * step_us;
    if rounded.abs() < 0.5 {
        return "0".into();
    }
    let (unit, scale) = if rounded.abs() >= 1e6 {
        ("s", 1e6)
    } else if rounded.abs() >= 1e3 {
        ("ms", 1e3)
    } else {
        ("µs", 1.0)
    };
    // Just the decimals a multiple of the step needs: 2.5ms steps need one, 500µs steps none.
    let step_in_unit = step_us / scale;
    let decimals = (0..6)
        .find(|d| {
            let scaled = step_in_unit * 10f64.powi(*d);
            (scaled - scaled.round()).abs() < 1e-6
        })
        .unwrap_or(6) as usize;
    let mut s = format!("{:.*}", decimals, rounded / scale);
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{unit}")
}

/// The width a text takes at `size` px in a proportional sans-serif, estimated generously (0.62
/// em per character, about the width of digits and lower-case letters in common UI fonts), so
/// labels placed apart by this estimate do not touch on screen.
pub(crate) fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.62
}

/// Appends a `<text>` element with escaped content.
pub(crate) fn text(out: &mut String, x: f64, y: f64, attrs: &str, content: &str) {
    let _ = write!(
        out,
        r#"<text x="{x:.1}" y="{y:.1}" {attrs}>{}</text>"#,
        escape::xml(content)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_two_five() {
        assert_eq!(nice_step(3_000_000.0, 8), 500_000.0);
        assert_eq!(nice_step(1_000.0, 8), 200.0);
        assert_eq!(nice_step(70.0, 8), 10.0);
        assert_eq!(nice_step(0.0, 8), 1.0);
    }

    #[test]
    fn ticks_cover_the_domain_on_multiples() {
        assert_eq!(
            ticks(-1_200_000.0, 1_000_000.0, 500_000.0),
            vec![-1_000_000.0, -500_000.0, 0.0, 500_000.0, 1_000_000.0]
        );
    }

    #[test]
    fn axis_labels_read_like_people_write() {
        assert_eq!(fmt_axis_us(0.0, 500_000.0), "0");
        assert_eq!(fmt_axis_us(500_000.0, 500_000.0), "500ms");
        assert_eq!(fmt_axis_us(1_500_000.0, 500_000.0), "1.5s");
        assert_eq!(fmt_axis_us(2_000_000.0, 500_000.0), "2s");
        assert_eq!(fmt_axis_us(-1_000_000.0, 500_000.0), "-1s");
        assert_eq!(fmt_axis_us(250.0, 50.0), "250µs");
        assert_eq!(fmt_axis_us(12_500.0, 2_500.0), "12.5ms");
        assert_eq!(fmt_axis_us(20_000_000.0, 5_000_000.0), "20s");
    }

    #[test]
    fn scale_maps_linearly() {
        let s = Scale::new(0.0, 100.0, 10.0, 210.0);
        assert_eq!(s.px(50.0), 110.0);
        let flat = Scale::new(5.0, 5.0, 0.0, 10.0);
        assert!(flat.px(5.0).is_finite());
    }
}
