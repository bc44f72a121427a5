//! `vouch bench --plot`: an SVG written by hand with two charts of a [`Report`]: latency over
//! time (p50 and p99 of each second, with the calls completed per second as bars) and the
//! latency distribution by percentile (on the usual HDR axis, where 90 %, 99 %, 99.9 % ...
//! are equally spaced).

use std::fmt::Write as _;

use super::report::Report;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 760.0;
/// Left edge of both plot areas.
const LEFT: f64 = 80.0;
/// Right edge of both plot areas.
const RIGHT: f64 = WIDTH - 80.0;
const P50_COLOUR: &str = "#1f77b4";
const P99_COLOUR: &str = "#d62728";
const BAR_COLOUR: &str = "#d9d9d9";

/// Escapes text for an SVG text node or attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A round step for about five ticks up to `max`, and the axis top (a multiple of it).
fn ticks(max: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    (step, (max / step).ceil() * step)
}

/// A number for an axis label, without needless decimals.
fn label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if v >= 0.1 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[allow(
    clippy::cast_precision_loss,
    reason = "latencies and counts are far below 2^52"
)]
fn f(v: u64) -> f64 {
    v as f64
}

#[allow(
    clippy::cast_precision_loss,
    reason = "seconds and label lengths are small"
)]
fn fi(v: usize) -> f64 {
    v as f64
}

fn text(out: &mut String, x: f64, y: f64, anchor: &str, size: u32, content: &str) {
    let _ = writeln!(
        out,
        r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}" font-size="{size}">{}</text>"#,
        escape(content)
    );
}

fn line(out: &mut String, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: &str) {
    let _ = writeln!(
        out,
        r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{stroke}" stroke-width="1"/>"#
    );
}

fn polyline(out: &mut String, points: &[(f64, f64)], colour: &str) {
    if points.is_empty() {
        return;
    }
    let pts = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ");
    let _ = writeln!(
        out,
        r#"<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>"#
    );
    for (x, y) in points {
        let _ = writeln!(
            out,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.5" fill="{colour}"/>"#
        );
    }
}

/// Horizontal grid lines and labels of a latency axis in milliseconds.
fn y_axis(out: &mut String, top: f64, bottom: f64, max_ms: f64) -> f64 {
    let (step, axis_max) = ticks(max_ms);
    let mut v = 0.0;
    while v <= axis_max + step / 2.0 {
        let y = bottom - (bottom - top) * v / axis_max;
        line(out, (LEFT, y), (RIGHT, y), "#eeeeee");
        text(out, LEFT - 6.0, y + 4.0, "end", 11, &label(v));
        v += step;
    }
    line(out, (LEFT, top), (LEFT, bottom), "#333333");
    line(out, (LEFT, bottom), (RIGHT, bottom), "#333333");
    let _ = writeln!(
        out,
        r#"<text x="20" y="{:.1}" text-anchor="middle" font-size="12" transform="rotate(-90 20 {:.1})">latency (ms)</text>"#,
        f64::midpoint(top, bottom),
        f64::midpoint(top, bottom)
    );
    axis_max
}

fn legend(out: &mut String, x: f64, y: f64, entries: &[(&str, &str)]) {
    let mut x = x;
    for (colour, name) in entries {
        let _ = writeln!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="14" height="10" fill="{colour}"/>"#,
            y - 9.0
        );
        text(out, x + 18.0, y, "start", 12, name);
        x += 30.0 + 7.0 * fi(name.len());
    }
}

/// Latency of each second: p50 and p99 lines over bars of completed calls.
fn timeline(out: &mut String, r: &Report, top: f64, bottom: f64) {
    text(
        out,
        WIDTH / 2.0,
        top - 12.0,
        "middle",
        14,
        "Latency over time (p50 and p99 of each second)",
    );
    let seconds = r.timeline.len().max(1);
    let max_us = r
        .timeline
        .iter()
        .filter_map(|s| s.p99_us)
        .max()
        .unwrap_or(1);
    let axis_max = y_axis(out, top, bottom, f(max_us) / 1000.0);
    let max_requests = r
        .timeline
        .iter()
        .map(|s| s.requests)
        .max()
        .unwrap_or(1)
        .max(1);
    let slot = (RIGHT - LEFT) / fi(seconds);
    let x_of = |i: usize| LEFT + slot * (fi(i) + 0.5);
    for (i, s) in r.timeline.iter().enumerate() {
        let h = (bottom - top) * f(s.requests) / f(max_requests);
        let _ = writeln!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{BAR_COLOUR}"/>"#,
            LEFT + slot * fi(i) + slot * 0.1,
            bottom - h,
            slot * 0.8
        );
    }
    let y_of = |us: u64| bottom - (bottom - top) * (f(us) / 1000.0) / axis_max;
    let p50: Vec<_> = r
        .timeline
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.p50_us.map(|v| (x_of(i), y_of(v))))
        .collect();
    let p99: Vec<_> = r
        .timeline
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.p99_us.map(|v| (x_of(i), y_of(v))))
        .collect();
    polyline(out, &p99, P99_COLOUR);
    polyline(out, &p50, P50_COLOUR);
    let every = seconds.div_ceil(20).max(1);
    for i in (0..seconds).step_by(every) {
        text(out, x_of(i), bottom + 16.0, "middle", 11, &i.to_string());
    }
    text(
        out,
        f64::midpoint(LEFT, RIGHT),
        bottom + 34.0,
        "middle",
        12,
        "second of the run",
    );
    text(
        out,
        RIGHT + 6.0,
        top + 4.0,
        "start",
        11,
        &format!("{max_requests}"),
    );
    text(out, RIGHT + 6.0, top + 18.0, "start", 11, "calls/s");
    legend(
        out,
        LEFT,
        bottom + 54.0,
        &[
            (P50_COLOUR, "p50"),
            (P99_COLOUR, "p99"),
            (BAR_COLOUR, "calls completed per second (right scale)"),
        ],
    );
}

/// Position of percentile `p` on the HDR axis: `log10(1 / (1 - p))`, capped at 99.999 %.
fn hdr_x(p: f64) -> f64 {
    let q = (p / 100.0).min(0.999_99);
    (1.0 / (1.0 - q)).log10()
}

/// Latency at each percentile of the distribution.
fn distribution(out: &mut String, r: &Report, top: f64, bottom: f64) {
    text(
        out,
        WIDTH / 2.0,
        top - 12.0,
        "middle",
        14,
        "Latency by percentile (all successful calls)",
    );
    let max_us = r
        .distribution
        .iter()
        .map(|p| p.latency_us)
        .max()
        .unwrap_or(1);
    let axis_max = y_axis(out, top, bottom, f(max_us) / 1000.0);
    let x_max = hdr_x(100.0);
    let x_of = |p: f64| LEFT + (RIGHT - LEFT) * hdr_x(p) / x_max;
    for (p, name) in [
        (0.0, "0%"),
        (90.0, "90%"),
        (99.0, "99%"),
        (99.9, "99.9%"),
        (99.99, "99.99%"),
        (100.0, "99.999% and max"),
    ] {
        let x = x_of(p);
        line(out, (x, top), (x, bottom), "#eeeeee");
        text(out, x, bottom + 16.0, "middle", 11, name);
    }
    text(
        out,
        f64::midpoint(LEFT, RIGHT),
        bottom + 34.0,
        "middle",
        12,
        "percentile",
    );
    let points: Vec<_> = r
        .distribution
        .iter()
        .map(|p| {
            (
                x_of(p.percentile),
                bottom - (bottom - top) * (f(p.latency_us) / 1000.0) / axis_max,
            )
        })
        .collect();
    polyline(out, &points, P50_COLOUR);
    let marks = [("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9)];
    for (name, at) in marks {
        if let Some(p) = r
            .distribution
            .iter()
            .find(|p| (p.percentile - at).abs() < 1e-9)
        {
            let (x, y) = (
                x_of(at),
                bottom - (bottom - top) * (f(p.latency_us) / 1000.0) / axis_max,
            );
            text(
                out,
                x + 4.0,
                y - 6.0,
                "start",
                11,
                &format!("{name} {} ms", label(f(p.latency_us) / 1000.0)),
            );
        }
    }
}

/// The SVG document of `report`.
pub fn render(report: &Report) -> String {
    let e = &report.environment;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">"#
    );
    let _ = writeln!(
        out,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    text(
        &mut out,
        WIDTH / 2.0,
        24.0,
        "middle",
        16,
        &format!(
            "vouch bench {}: {} calls in {:.1} s, {:.0} calls/s, {:.0} entries/s, {} errors",
            e.workload,
            report.requests,
            report.elapsed_seconds,
            report.requests_per_second,
            report.entries_per_second,
            report.errors
        ),
    );
    text(
        &mut out,
        WIDTH / 2.0,
        44.0,
        "middle",
        12,
        &format!(
            "{} concurrent, {} server, {}, durability {}, {}-byte payloads, {} cores, vouch {}",
            e.concurrency, e.server, e.hash, e.durability, e.payload_bytes, e.cores, e.version
        ),
    );
    if let Some(w) = report.durability_warning() {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="62" text-anchor="middle" font-size="12" fill="{P99_COLOUR}" font-weight="bold">{}</text>"#,
            WIDTH / 2.0,
            escape(&w)
        );
    }
    timeline(&mut out, report, 100.0, 350.0);
    distribution(&mut out, report, 480.0, 700.0);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        let close =
            |(a, b): (f64, f64), (x, y): (f64, f64)| (a - x).abs() < 1e-9 && (b - y).abs() < 1e-9;
        for (max, want) in [
            (4.3, (1.0, 5.0)),
            (0.37, (0.1, 0.4)),
            (120.0, (25.0, 125.0)),
            (0.0, (0.2, 1.0)),
            (f64::NAN, (0.2, 1.0)),
        ] {
            assert!(close(ticks(max), want), "{max}: {:?}", ticks(max));
        }
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a<b & \"c\"\n"), "a&lt;b &amp; &quot;c&quot; ");
    }

    #[test]
    fn the_hdr_axis_spaces_nines_evenly() {
        let d1 = hdr_x(99.0) - hdr_x(90.0);
        let d2 = hdr_x(99.9) - hdr_x(99.0);
        assert!((d1 - d2).abs() < 1e-9 && (d1 - 1.0).abs() < 1e-9);
        assert!(hdr_x(100.0).is_finite());
    }
}
