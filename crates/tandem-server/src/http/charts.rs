//! Server-side SVG line charts for the endpoint metrics (no JavaScript).
//!
//! A chart has one line per series over the range's buckets; a bucket without data breaks
//! the line (a gap stays a gap, it is never bridged), and a lone point between two gaps is a
//! dot. Axis labels are in the viewer's time zone. The SVG carries a `<title>` and a
//! `<desc>` that says in words what the chart shows.

use std::fmt::Write as _;
use tandem_domain::metrics::{ChartData, Range};
use tandem_domain::Timestamp;

const W: f64 = 720.0;
const H: f64 = 220.0;
const LEFT: f64 = 46.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 30.0;

/// One line of a chart.
pub struct Series {
    /// Its name in the legend and the description.
    pub label: String,
    /// One value per bucket (percent), `None` where nothing was measured.
    pub values: Vec<Option<f64>>,
    /// Drawn dashed (for a maximum beside an average).
    pub dashed: bool,
}

/// Escapes text for XML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn fmt_pct(v: f64) -> String {
    format!("{v:.1} %")
}

/// Where the axis ticks go, in the viewer's time zone: every three hours over a day, every
/// midnight over a week. Each tick is (instant, label).
pub fn ticks(
    range: Range,
    from: Timestamp,
    to: Timestamp,
    tz_name: &str,
) -> Vec<(Timestamp, String)> {
    use jiff::ToSpan;
    let tz = jiff::tz::TimeZone::get(tz_name).unwrap_or(jiff::tz::TimeZone::UTC);
    let start = from.to_jiff().to_zoned(tz.clone());
    let mut out = Vec::new();
    let mut t = match range {
        Range::Day => {
            let h = start.hour();
            let next = (h / 3) * 3;
            match start
                .with()
                .hour(next)
                .minute(0)
                .second(0)
                .subsec_nanosecond(0)
                .build()
            {
                Ok(z) => z,
                Err(_) => return out,
            }
        }
        Range::Week => match start.start_of_day() {
            Ok(z) => z,
            Err(_) => return out,
        },
    };
    for _ in 0..64 {
        let at = Timestamp(t.timestamp().as_microsecond());
        if at > to {
            break;
        }
        if at >= from {
            let label = match range {
                Range::Day => t.strftime("%H:%M").to_string(),
                Range::Week => t.strftime("%a %-d").to_string(),
            };
            out.push((at, label));
        }
        let step = match range {
            Range::Day => t.checked_add(3.hours()),
            Range::Week => t.checked_add(1.day()),
        };
        t = match step {
            Ok(z) => z,
            Err(_) => break,
        };
    }
    out
}

/// Draws one chart. `id` must be unique on the page (it names the title and description).
pub fn line_chart(id: &str, title: &str, data: &ChartData, series: &[Series], tz: &str) -> String {
    let n = data.buckets.len().max(1);
    let span = (data.to.0 - data.from.0).max(1) as f64;
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x_of = |at: Timestamp| LEFT + (at.0 - data.from.0) as f64 / span * pw;
    let y_of = |v: f64| TOP + ph - v.clamp(0.0, 100.0) / 100.0 * ph;
    let id = esc(id);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" width="100%" role="img" aria-labelledby="{id}-t {id}-d" xmlns="http://www.w3.org/2000/svg">"#
    );
    let _ = write!(s, r#"<title id="{id}-t">{}</title>"#, esc(title));
    let _ = write!(
        s,
        r#"<desc id="{id}-d">{}</desc>"#,
        esc(&describe(data, series, tz))
    );
    // Horizontal grid and the percent axis.
    for p in [0.0, 25.0, 50.0, 75.0, 100.0] {
        let y = y_of(p);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/><text class="axis" x="{:.1}" y="{:.1}" text-anchor="end">{p:.0} %</text>"#,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0
        );
    }
    // Time axis, in the viewer's zone.
    let base = TOP + ph;
    for (at, label) in ticks(data.range, data.from, data.to, tz) {
        let x = x_of(at);
        let _ = write!(
            s,
            r#"<line class="tick" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}"/><text class="axis" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            base + 4.0,
            base + 18.0,
            esc(&label)
        );
    }
    let _ = write!(
        s,
        r#"<line class="axis-line" x1="{LEFT}" y1="{base:.1}" x2="{:.1}" y2="{base:.1}"/>"#,
        W - RIGHT
    );
    // The lines: a new path after every gap; a lone point is a dot.
    for (k, ser) in series.iter().enumerate() {
        let class = format!("s{}{}", k % 8, if ser.dashed { " dashed" } else { "" });
        let mut run: Vec<(f64, f64)> = Vec::new();
        let flush = |run: &mut Vec<(f64, f64)>, s: &mut String| {
            match run.len() {
                0 => {}
                1 => {
                    let _ = write!(
                        s,
                        r#"<circle class="{class}" cx="{:.1}" cy="{:.1}" r="2.2"/>"#,
                        run[0].0, run[0].1
                    );
                }
                _ => {
                    let mut d = String::new();
                    for (i, (x, y)) in run.iter().enumerate() {
                        let _ = write!(d, "{}{x:.1} {y:.1}", if i == 0 { "M" } else { " L" });
                    }
                    let _ = write!(s, r#"<path class="{class}" d="{d}"/>"#);
                }
            }
            run.clear();
        };
        for (i, v) in ser.values.iter().enumerate().take(n) {
            match v {
                Some(v) => run.push((x_of(data.bucket_at(i)), y_of(*v))),
                None => flush(&mut run, &mut s),
            }
        }
        flush(&mut run, &mut s);
    }
    s.push_str("</svg>");
    s
}

/// The chart in words: what, over when, latest and highest values, and how much is missing.
fn describe(data: &ChartData, series: &[Series], tz: &str) -> String {
    let per = match data.range {
        Range::Day => "per 5 minutes",
        Range::Week => "per hour",
    };
    let mut out = format!(
        "Average {per} from {} to {}.",
        data.from.display_in(tz),
        data.bucket_at(data.buckets.len().saturating_sub(1))
            .display_in(tz)
    );
    let mut any = false;
    for ser in series {
        let present: Vec<f64> = ser.values.iter().flatten().copied().collect();
        if present.is_empty() {
            continue;
        }
        any = true;
        let latest = ser
            .values
            .iter()
            .rev()
            .flatten()
            .next()
            .copied()
            .unwrap_or(0.0);
        let high = present.iter().copied().fold(f64::MIN, f64::max);
        let _ = write!(
            out,
            " {}: latest {}, highest {}.",
            ser.label,
            fmt_pct(latest),
            fmt_pct(high)
        );
    }
    if !any {
        out.push_str(" No data in this range.");
        return out;
    }
    let missing = data.buckets.iter().filter(|b| b.is_none()).count();
    if missing > 0 {
        let _ = write!(
            out,
            " No data for {missing} of {} periods (shown as gaps).",
            data.buckets.len()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_domain::metrics::Sample;

    fn data(values: &[Option<i64>]) -> ChartData {
        let now = Timestamp(1_780_000_000 * Timestamp::SECOND);
        let mut d = ChartData::build(Range::Day, now, &[]);
        for (i, v) in values.iter().enumerate() {
            d.buckets[i] = v.map(|cpu| Sample {
                at: d.bucket_at(i),
                samples: 1,
                cpu: Some(cpu),
                ..Sample::default()
            });
        }
        d
    }

    fn cpu(d: &ChartData) -> Vec<Series> {
        vec![Series {
            label: "CPU <busy>".into(),
            values: d.series(|s| s.cpu),
            dashed: false,
        }]
    }

    #[test]
    fn gaps_break_the_line_and_a_lone_point_is_a_dot() {
        // Two runs of three points, a gap, a lone point, then nothing.
        let d = data(&[
            Some(1000),
            Some(2000),
            Some(3000),
            None,
            Some(4000),
            Some(5000),
            Some(6000),
            None,
            Some(7000),
        ]);
        let svg = line_chart("cpu", "CPU & more", &d, &cpu(&d), "America/New_York");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<path ").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle ").count(), 1);
        // Each path has three points: one move and two lines.
        for p in svg.split("<path ").skip(1) {
            let d = p.split("d=\"").nth(1).unwrap().split('"').next().unwrap();
            assert_eq!(d.matches('M').count(), 1);
            assert_eq!(d.matches('L').count(), 2);
        }
        assert!(svg.contains(r#"aria-labelledby="cpu-t cpu-d""#));
        assert!(svg.contains(r#"<title id="cpu-t">CPU &amp; more</title>"#));
        let desc = svg.split("<desc id=\"cpu-d\">").nth(1).unwrap();
        assert!(
            desc.contains("CPU &lt;busy&gt;: latest 70.0 %, highest 70.0 %"),
            "{desc}"
        );
        assert!(desc.contains("No data for 281 of 288 periods"), "{desc}");
        // The y axis.
        for l in ["0 %", "50 %", "100 %"] {
            assert!(svg.contains(&format!(">{l}</text>")), "{l}");
        }
    }

    #[test]
    fn empty_chart_says_so_and_draws_no_line() {
        let d = data(&[]);
        let svg = line_chart("m", "Memory", &d, &cpu(&d), "UTC");
        assert_eq!(svg.matches("<path ").count(), 0);
        assert!(svg.contains("No data in this range."));
    }

    #[test]
    fn ticks_are_in_the_viewers_zone() {
        // 2026-07-01 12:00 UTC is 08:00 in New York (EDT): ticks fall on local hours 9, 12, …
        let now = Timestamp::parse_rfc3339("2026-07-01T12:00:00Z").unwrap();
        let d = ChartData::build(Range::Day, now, &[]);
        let ny = ticks(Range::Day, d.from, d.to, "America/New_York");
        let utc = ticks(Range::Day, d.from, d.to, "UTC");
        assert_eq!(ny.len(), 8);
        assert!(ny.iter().all(|(_, l)| l.ends_with(":00")));
        assert!(ny.iter().any(|(_, l)| l == "21:00"));
        assert!(ny.iter().all(|(at, _)| *at >= d.from && *at <= d.to));
        // 06:00 in New York is 10:00 UTC; UTC's own ticks fall on other instants.
        let six = Timestamp::parse_rfc3339("2026-07-01T10:00:00Z").unwrap();
        assert!(
            ny.iter().any(|(at, l)| l == "06:00" && *at == six),
            "{ny:?}"
        );
        assert!(utc.iter().any(|(_, l)| l == "09:00"));
        assert!(!utc.iter().any(|(at, _)| *at == six));
        let w = ChartData::build(Range::Week, now, &[]);
        let days = ticks(Range::Week, w.from, w.to, "Asia/Kolkata");
        assert_eq!(days.len(), 7, "{days:?}");
        for (at, _) in &days {
            let z = at
                .to_jiff()
                .to_zoned(jiff::tz::TimeZone::get("Asia/Kolkata").unwrap());
            assert_eq!((z.hour(), z.minute()), (0, 0));
        }
    }
}
