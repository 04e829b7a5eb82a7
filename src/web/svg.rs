//! Server-rendered SVG: the day bar of a status page, the response-time
//! chart and the state timeline of a check page.
//!
//! Every drawing names what it shows (`role="img"` with a label and a
//! `<desc>`), colours are CSS classes so both themes apply, and nothing is
//! drawn in colour alone: each day carries its figures as text for hover,
//! keyboard focus (see `assets/app.js`) and screen readers.

use super::badge::{escape, format_millis, format_percent};
use chrono::{DateTime, NaiveDate, Utc};
use std::fmt::Write;

/// One day of a day bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Day {
    /// The UTC day.
    pub date: NaiveDate,
    /// Share of successful runs outside maintenance; `None` without runs.
    pub uptime: Option<f64>,
    /// True when any run of the day fell in a maintenance window.
    pub maintenance: bool,
    /// Incidents that were open during the day.
    pub incidents: u32,
    /// Estimated seconds down during the day.
    pub downtime_seconds: u64,
}

impl Day {
    /// The CSS class (and so the colour) of the day.
    pub fn class(&self) -> &'static str {
        match self.uptime {
            None if self.maintenance => "d-maint",
            None => "d-none",
            Some(uptime) if uptime >= 0.9995 && self.maintenance => "d-maint",
            Some(uptime) if uptime >= 0.9995 => "d-up",
            Some(uptime) if uptime >= 0.99 => "d-minor",
            Some(uptime) if uptime >= 0.95 => "d-major",
            Some(_) => "d-down",
        }
    }

    /// The day in words, for hover, focus and screen readers.
    pub fn describe(&self) -> String {
        let mut text = self.date.format("%a %-d %b %Y").to_string();
        match self.uptime {
            None => text.push_str(": no data"),
            Some(uptime) => {
                let _ = write!(text, ": {} up", format_percent(uptime));
            }
        }
        if self.downtime_seconds > 0 {
            let _ = write!(text, ", {} down", format_duration(self.downtime_seconds));
        }
        match self.incidents {
            0 => {}
            1 => text.push_str(", 1 incident"),
            n => {
                let _ = write!(text, ", {n} incidents");
            }
        }
        if self.maintenance {
            text.push_str(", maintenance");
        }
        text
    }
}

/// Seconds as `45s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub fn format_duration(seconds: u64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => {
            let minutes = (s % 3600) / 60;
            if minutes == 0 { format!("{} h", s / 3600) } else { format!("{} h {minutes} min", s / 3600) }
        }
        s => {
            let hours = (s % 86_400) / 3600;
            if hours == 0 { format!("{} d", s / 86_400) } else { format!("{} d {hours} h", s / 86_400) }
        }
    }
}

/// The bar of `days` (oldest first), one unit wide per day. A status page
/// holds hundreds of bars, so each is small: a background in the most common
/// colour and one path per other colour, with runs of equal days merged; the
/// gaps between days are a CSS mask, and each day's words are fetched by
/// `assets/app.js` on hover or focus (`/status/<slug>/days/<check>`). The
/// label sums the bar up for screen readers and pages without script.
pub fn day_bar(name: &str, days: &[Day]) -> String {
    let with_data = days.iter().filter(|day| day.uptime.is_some()).count();
    let bad_days = days.iter().filter(|day| day.uptime.is_some_and(|uptime| uptime < 0.9995)).count();
    let mut svg = String::with_capacity(300);
    let _ = write!(
        svg,
        r#"<svg class="daybar" viewBox="0 0 {} 1" preserveAspectRatio="none" role="img" tabindex="0" aria-label="{}: {} days, {with_data} with data, {bad_days} with downtime">"#,
        days.len(),
        escape(name),
        days.len(),
    );
    // The most common class is the background; the rest are runs over it.
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for day in days {
        match counts.iter_mut().find(|(class, _)| *class == day.class()) {
            Some((_, count)) => *count += 1,
            None => counts.push((day.class(), 1)),
        }
    }
    let background = counts.iter().max_by_key(|(_, count)| *count).map_or("d-none", |(class, _)| *class);
    let _ = write!(svg, r#"<rect class="{background}" width="{}" height="1"/>"#, days.len());
    for (class, _) in counts.iter().filter(|(class, _)| *class != background) {
        let mut path = String::new();
        let mut index = 0;
        while index < days.len() {
            if days[index].class() != *class {
                index += 1;
                continue;
            }
            let run = days[index..].iter().take_while(|day| day.class() == *class).count();
            let _ = write!(path, "M{index} 0h{run}v1h-{run}z");
            index += run;
        }
        let _ = write!(svg, r#"<path class="{class}" d="{path}"/>"#);
    }
    svg.push_str("</svg>");
    svg
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend name (`total`, `connect`, `tls`…).
    pub name: String,
    /// (time, milliseconds); `None` breaks the line (no runs in that bucket).
    pub points: Vec<(DateTime<Utc>, Option<f64>)>,
}

/// Chart size in its own coordinates; the SVG scales to the page width.
const CHART_WIDTH: f64 = 720.0;
const CHART_HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 10.0;
const RIGHT: f64 = 10.0;

/// A response-time chart of `series` between `from` and `to`.
pub fn line_chart(title: &str, from: DateTime<Utc>, to: DateTime<Utc>, series: &[Series]) -> String {
    let span = (to - from).num_seconds().max(1) as f64;
    let max = series
        .iter()
        .flat_map(|series| series.points.iter().filter_map(|(_, value)| *value))
        .filter(|value| value.is_finite())
        .fold(0.0_f64, f64::max);
    let top = nice_ceiling(max);
    let plot_width = CHART_WIDTH - LEFT - RIGHT;
    let plot_height = CHART_HEIGHT - TOP - BOTTOM;
    let x_of = |time: DateTime<Utc>| LEFT + ((time - from).num_seconds() as f64 / span).clamp(0.0, 1.0) * plot_width;
    let y_of = |value: f64| TOP + plot_height - (value / top).clamp(0.0, 1.0) * plot_height;
    let mut svg = String::with_capacity(4096);
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" aria-labelledby="{id}-t {id}-d"><title id="{id}-t">{title}</title><desc id="{id}-d">{desc}</desc>"#,
        id = chart_id(title),
        title = escape(title),
        desc = escape(&describe_series(series)),
    );
    for step in 0..=4 {
        let value = top * f64::from(step) / 4.0;
        let y = y_of(value);
        let class = if step == 0 { "axis" } else { "grid" };
        let _ = write!(
            svg,
            r#"<line class="{class}" x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}"/><text class="label" x="{lx}" y="{ty:.1}" text-anchor="end">{label}</text>"#,
            x2 = CHART_WIDTH - RIGHT,
            lx = LEFT - 6.0,
            ty = y + 4.0,
            label = axis_millis(value),
        );
    }
    for step in 0..=4 {
        let time = from + chrono::Duration::seconds((span * f64::from(step) / 4.0) as i64);
        let anchor = match step {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let format = if span > 2.0 * 86_400.0 { "%-d %b" } else { "%H:%M" };
        let _ = write!(
            svg,
            r#"<text class="label" x="{x:.1}" y="{y}" text-anchor="{anchor}">{label}</text>"#,
            x = x_of(time),
            y = CHART_HEIGHT - 6.0,
            label = time.format(format),
        );
    }
    for (index, line) in series.iter().enumerate() {
        let class = if index == 0 { "line".to_string() } else { format!("line p{}", (index % 4) + 1) };
        let mut segment = String::new();
        let flush = |segment: &mut String, svg: &mut String| {
            if segment.trim().contains(" ") {
                let _ = write!(svg, r#"<polyline class="{class}" points="{}"/>"#, segment.trim());
            } else if !segment.is_empty() {
                // A lone point: draw it as a dot so it is not lost.
                let mut parts = segment.trim().split(',');
                if let (Some(x), Some(y)) = (parts.next(), parts.next()) {
                    let _ = write!(svg, r#"<circle class="{class}" cx="{x}" cy="{y}" r="2"/>"#);
                }
            }
            segment.clear();
        };
        for (time, value) in &line.points {
            match value.filter(|value| value.is_finite()) {
                Some(value) => {
                    let _ = write!(segment, "{:.1},{:.1} ", x_of(*time), y_of(value));
                }
                None => flush(&mut segment, &mut svg),
            }
        }
        flush(&mut segment, &mut svg);
    }
    svg.push_str("</svg>");
    svg
}

fn chart_id(title: &str) -> String {
    let slug: String =
        title.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    format!("chart-{slug}")
}

/// Min, average and max of each series, as the chart's text alternative.
pub fn describe_series(series: &[Series]) -> String {
    let mut parts = Vec::new();
    for line in series {
        let values: Vec<f64> = line.points.iter().filter_map(|(_, value)| *value).filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            parts.push(format!("{}: no data", line.name));
            continue;
        }
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(0.0_f64, f64::max);
        let average = values.iter().sum::<f64>() / values.len() as f64;
        parts.push(format!(
            "{}: min {}, average {}, max {}",
            line.name,
            format_millis(min),
            format_millis(average),
            format_millis(max)
        ));
    }
    parts.join("; ")
}

/// An axis label: quarter steps of a small scale (0.25 ms, 1.25 ms) keep
/// their fraction, which `format_millis` rounds away, so no two gridlines
/// carry the same label.
fn axis_millis(millis: f64) -> String {
    if millis < 1000.0 && millis.fract() != 0.0 {
        format!("{} ms", format!("{millis:.2}").trim_end_matches('0'))
    } else {
        format_millis(millis)
    }
}

/// The smallest 1/2/5×10ⁿ at or above `value` (at least 1 ms), so axis
/// labels are round numbers.
fn nice_ceiling(value: f64) -> f64 {
    if !value.is_finite() || value <= 1.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|step| step * magnitude).find(|step| *step >= value).unwrap_or(value)
}

/// One span of a state timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Start.
    pub from: DateTime<Utc>,
    /// End (exclusive).
    pub to: DateTime<Utc>,
    /// `up`, `down`, `maintenance`, `paused` or `unknown`.
    pub state: String,
}

/// A horizontal timeline of state spans between `from` and `to`.
pub fn timeline(title: &str, from: DateTime<Utc>, to: DateTime<Utc>, spans: &[Span]) -> String {
    let span = (to - from).num_seconds().max(1) as f64;
    let x_of = |time: DateTime<Utc>| ((time - from).num_seconds() as f64 / span).clamp(0.0, 1.0) * 1000.0;
    let summary: Vec<String> = spans
        .iter()
        .filter(|span| span.state != "up")
        .map(|span| {
            format!(
                "{} from {} to {}",
                span.state,
                span.from.format("%Y-%m-%d %H:%M"),
                span.to.format("%Y-%m-%d %H:%M")
            )
        })
        .collect();
    let desc = if summary.is_empty() { "up throughout".to_string() } else { summary.join("; ") };
    let mut svg = String::with_capacity(256 + spans.len() * 120);
    let _ = write!(
        svg,
        r#"<svg class="timeline" viewBox="0 0 1000 20" preserveAspectRatio="none" role="img" aria-label="{title}: {desc}">"#,
        title = escape(title),
        desc = escape(&desc),
    );
    for span in spans {
        let x = x_of(span.from);
        let width = (x_of(span.to) - x).max(0.5);
        let _ = write!(
            svg,
            r#"<rect class="t-{state}" x="{x:.2}" y="0" width="{width:.2}" height="20"><title>{state} {from} – {to}</title></rect>"#,
            state = escape(&span.state),
            from = span.from.format("%Y-%m-%d %H:%M"),
            to = span.to.format("%Y-%m-%d %H:%M"),
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn day(uptime: Option<f64>, maintenance: bool) -> Day {
        Day {
            date: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            uptime,
            maintenance,
            incidents: 0,
            downtime_seconds: 0,
        }
    }

    #[test]
    fn days_are_coloured_by_uptime() {
        assert_eq!(day(Some(1.0), false).class(), "d-up");
        assert_eq!(day(Some(0.995), false).class(), "d-minor");
        assert_eq!(day(Some(0.96), false).class(), "d-major");
        assert_eq!(day(Some(0.5), false).class(), "d-down");
        assert_eq!(day(None, false).class(), "d-none");
        assert_eq!(day(None, true).class(), "d-maint");
        assert_eq!(day(Some(1.0), true).class(), "d-maint");
        assert_eq!(day(Some(0.5), true).class(), "d-down", "an outage outside the window still shows");
    }

    #[test]
    fn days_are_described_in_words() {
        let mut outage = day(Some(0.75), false);
        outage.incidents = 1;
        outage.downtime_seconds = 6 * 3600;
        assert_eq!(outage.describe(), "Tue 1 Dec 2026: 75% up, 6 h down, 1 incident");
        assert_eq!(day(None, false).describe(), "Tue 1 Dec 2026: no data");
        let clean = day(Some(1.0), false);
        let bar = day_bar("api", &[outage.clone(), clean.clone(), clean.clone(), outage, day(None, false)]);
        assert!(bar.contains(r#"aria-label="api: 5 days, 4 with data, 2 with downtime""#), "{bar}");
        assert!(bar.contains(r#"<rect class="d-up" width="5" height="1"/>"#), "the common class is the ground: {bar}");
        assert!(bar.contains(r#"<path class="d-down" d="M0 0h1v1h-1zM3 0h1v1h-1z"/>"#), "{bar}");
        assert!(bar.contains(r#"<path class="d-none" d="M4 0h1v1h-1z"/>"#), "{bar}");
    }

    #[test]
    fn axis_labels_of_a_small_scale_are_distinct() {
        let labels: Vec<String> = (0..=4).map(|step| axis_millis(f64::from(step) / 4.0)).collect();
        assert_eq!(labels, ["0 ms", "0.25 ms", "0.5 ms", "0.75 ms", "1 ms"]);
        assert_eq!(axis_millis(1.25), "1.25 ms");
        assert_eq!(axis_millis(500.0), "500 ms");
        assert_eq!(axis_millis(2500.0), "2.50 s");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(42), "42s");
        assert_eq!(format_duration(600), "10 min");
        assert_eq!(format_duration(3600 * 3 + 300), "3 h 5 min");
        assert_eq!(format_duration(86_400 * 2), "2 d");
    }

    #[test]
    fn charts_break_at_gaps_and_describe_themselves() {
        let start = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let at = |minutes| start + chrono::Duration::minutes(minutes);
        let series = Series {
            name: "total".into(),
            points: vec![(at(0), Some(100.0)), (at(10), Some(300.0)), (at(20), None), (at(30), Some(200.0))],
        };
        let svg = line_chart("Response time 24h", start, at(60), &[series]);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 1, "the point after the gap is a dot");
        assert!(svg.contains("total: min 100 ms, average 200 ms, max 300 ms"));
        assert!(svg.contains(">500 ms<"), "the axis tops out at a round number");
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(1234.0), 2000.0);
    }
}
