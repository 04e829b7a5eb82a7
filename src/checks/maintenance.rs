//! Maintenance windows: one-off (`start`, `end`) or recurring (`weekdays`,
//! `time`, `duration`, IANA `timezone`), per check or, under
//! `check_options.maintenance`, for every check whose labels match. Heartbeats
//! take the same windows (`heartbeats.maintenance`, `checks[].maintenance`
//! there) to hold their alerts.
//!
//! During a window a check still runs and its results are stored, marked as
//! maintenance; its up/down state does not move and nobody is notified.
//! Uptime leaves maintenance runs out (see `rollup`).

use crate::bridge::matcher::Matchers;
use crate::bridge::quiet::{local_instant, parse_days, parse_time};
use crate::config::Problems;
use crate::config::types::GoDuration;
use chrono::{DateTime, Datelike, Duration, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One maintenance window.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// One-off: the start (RFC 3339).
    pub start: Option<DateTime<Utc>>,
    /// One-off: the end (RFC 3339), exclusive.
    pub end: Option<DateTime<Utc>>,
    /// Recurring: the days the window starts on (`mon`, `sat-sun`…); empty is every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<String>,
    /// Recurring: local start time, `HH:MM`.
    pub time: Option<String>,
    /// Recurring: how long.
    pub duration: Option<GoDuration>,
    /// Recurring: IANA time zone of `time` and `weekdays`.
    #[serde(default = "utc")]
    pub timezone: String,
    /// Only in shared windows (`check_options.maintenance`,
    /// `heartbeats.maintenance`): label matchers selecting checks
    /// (`team="db"`; `check`, `module` and `target` can be matched too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matchers: Vec<String>,
}

fn utc() -> String {
    "UTC".into()
}

impl Window {
    /// Records every problem below `path`; `global` windows need matchers.
    pub fn validate(&self, path: &str, global: bool, problems: &mut Problems) {
        let one_off = self.start.is_some() || self.end.is_some();
        let recurring = self.time.is_some() || self.duration.is_some() || !self.weekdays.is_empty();
        match (one_off, recurring) {
            (true, true) => problems.push(path, "set either start and end, or time and duration, not both"),
            (false, false) => problems.push(path, "set start and end (one-off) or time and duration (recurring)"),
            (true, false) => match (self.start, self.end) {
                (Some(start), Some(end)) if end <= start => problems.push(format!("{path}.end"), "must be after start"),
                (Some(_), Some(_)) => {}
                (None, _) => problems.push(format!("{path}.start"), "must be set with end"),
                (_, None) => problems.push(format!("{path}.end"), "must be set with start"),
            },
            (false, true) => {
                match &self.time {
                    None => problems.push(format!("{path}.time"), "must be set for a recurring window"),
                    Some(time) => {
                        if let Err(message) = parse_time(time, false) {
                            problems.push(format!("{path}.time"), message);
                        }
                    }
                }
                match self.duration {
                    None => problems.push(format!("{path}.duration"), "must be set for a recurring window"),
                    Some(duration) if duration.get().is_zero() => {
                        problems.push(format!("{path}.duration"), "must be more than 0")
                    }
                    Some(duration) if duration.get() > std::time::Duration::from_secs(7 * 24 * 3600) => {
                        problems.push(format!("{path}.duration"), "must be at most 168h")
                    }
                    Some(_) => {}
                }
                for (index, day) in self.weekdays.iter().enumerate() {
                    if let Err(message) = parse_days(day) {
                        problems.push(format!("{path}.weekdays[{index}]"), message);
                    }
                }
            }
        }
        if self.timezone.parse::<Tz>().is_err() {
            problems.push(
                format!("{path}.timezone"),
                format!("unknown time zone {:?}: use an IANA name such as Europe/Berlin", self.timezone),
            );
        }
        if global && self.matchers.is_empty() {
            problems.push(format!("{path}.matchers"), "a shared window needs matchers selecting its checks");
        }
        if !global && !self.matchers.is_empty() {
            problems.push(
                format!("{path}.matchers"),
                "only shared windows (check_options.maintenance, heartbeats.maintenance) select by labels",
            );
        }
        if let Err(message) = Matchers::parse_all(&self.matchers) {
            problems.push(format!("{path}.matchers"), message);
        }
    }

    /// Whether the window selects a check with `labels` (always, without matchers).
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.is_empty() || Matchers::parse_all(&self.matchers).is_ok_and(|matchers| matchers.matches(labels))
    }

    /// Whether `at` falls inside the window. An invalid window (which
    /// validation rejects) is never active.
    pub fn is_active(&self, at: DateTime<Utc>) -> bool {
        if let (Some(start), Some(end)) = (self.start, self.end) {
            return start <= at && at < end;
        }
        let (Some(time), Some(duration)) = (&self.time, self.duration) else { return false };
        let (Ok(minutes), Ok(timezone)) = (parse_time(time, false), self.timezone.parse::<Tz>()) else {
            return false;
        };
        let days: Vec<Weekday> = self.weekdays.iter().filter_map(|day| parse_days(day).ok()).flatten().collect();
        let Ok(duration) = Duration::from_std(duration.get()) else { return false };
        let today = at.with_timezone(&timezone).date_naive();
        // A window may have started up to `duration` (≤ 7 days) before today.
        (0..=8).any(|back| {
            let Some(date) = today.checked_sub_days(chrono::Days::new(back)) else { return false };
            if !days.is_empty() && !days.contains(&date.weekday()) {
                return false;
            }
            local_instant(timezone, date, minutes, false).is_some_and(|start| start <= at && at < start + duration)
        })
    }
}

impl Window {
    /// The stretches of this window that overlap `[from, to)`, by start; a
    /// recurring window is looked up day by day, so at most 40 days are
    /// scanned whatever `to` is.
    pub fn occurrences(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if let (Some(start), Some(end)) = (self.start, self.end) {
            return if start < to && end > from { vec![(start, end)] } else { Vec::new() };
        }
        let (Some(time), Some(duration)) = (&self.time, self.duration) else { return Vec::new() };
        let (Ok(minutes), Ok(timezone)) = (parse_time(time, false), self.timezone.parse::<Tz>()) else {
            return Vec::new();
        };
        let Ok(duration) = Duration::from_std(duration.get()) else { return Vec::new() };
        let days: Vec<Weekday> = self.weekdays.iter().filter_map(|day| parse_days(day).ok()).flatten().collect();
        let Some(first) =
            (from - duration).with_timezone(&timezone).date_naive().checked_sub_days(chrono::Days::new(1))
        else {
            return Vec::new();
        };
        first
            .iter_days()
            .take(40)
            .filter(|date| days.is_empty() || days.contains(&date.weekday()))
            .filter_map(|date| local_instant(timezone, date, minutes, false))
            .map(|start| (start, start + duration))
            .filter(|(start, end)| *start < to && *end > from)
            .collect()
    }
}

/// Whether any of `windows` that is active at `at` selects `labels`; the
/// labels are built only when some window is active (most runs are outside
/// every window, and building them copies the check's labels).
pub fn in_maintenance<'a>(
    windows: impl IntoIterator<Item = &'a Window>,
    labels: impl FnOnce() -> BTreeMap<String, String>,
    at: DateTime<Utc>,
) -> bool {
    let mut active = windows.into_iter().filter(|window| window.is_active(at)).peekable();
    if active.peek().is_none() {
        return false;
    }
    let labels = labels();
    active.any(|window| window.selects(&labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn recurring(weekdays: &[&str], time: &str, hours: u64, timezone: &str) -> Window {
        Window {
            start: None,
            end: None,
            weekdays: weekdays.iter().map(ToString::to_string).collect(),
            time: Some(time.into()),
            duration: Some(GoDuration(std::time::Duration::from_secs(hours * 3600))),
            timezone: timezone.into(),
            matchers: Vec::new(),
        }
    }

    #[test]
    fn recurring_windows_follow_their_time_zone_and_cross_midnight() {
        // Saturdays 23:00–03:00 Berlin time (UTC+1 in December).
        let window = recurring(&["sat"], "23:00", 4, "Europe/Berlin");
        let at = |d, h, m| Utc.with_ymd_and_hms(2026, 12, d, h, m, 0).unwrap();
        assert!(!window.is_active(at(5, 21, 59)), "Saturday 22:59 local");
        assert!(window.is_active(at(5, 22, 0)), "Saturday 23:00 local");
        assert!(window.is_active(at(6, 1, 59)), "Sunday 02:59 local");
        assert!(!window.is_active(at(6, 2, 0)), "Sunday 03:00 local");
        assert!(!window.is_active(at(6, 22, 30)), "not on Sunday night");
    }

    #[test]
    fn one_off_windows_are_half_open_and_selectors_match_labels() {
        let start = Utc.with_ymd_and_hms(2026, 12, 24, 0, 0, 0).unwrap();
        let window = Window {
            start: Some(start),
            end: Some(start + Duration::hours(2)),
            weekdays: Vec::new(),
            time: None,
            duration: None,
            timezone: "UTC".into(),
            matchers: vec!["team=\"db\"".into()],
        };
        assert!(window.is_active(start));
        assert!(!window.is_active(start + Duration::hours(2)));
        let db: BTreeMap<String, String> = [("team".to_string(), "db".to_string())].into();
        assert!(in_maintenance([&window], || db.clone(), start));
        assert!(!in_maintenance([&window], BTreeMap::new, start));
    }

    #[test]
    fn occurrences_list_the_coming_stretches() {
        let window = recurring(&["sat"], "23:00", 4, "Europe/Berlin");
        let from = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let found = window.occurrences(from, from + Duration::days(14));
        let starts: Vec<String> = found.iter().map(|(start, _)| start.to_rfc3339()).collect();
        assert_eq!(starts, ["2026-12-05T22:00:00+00:00", "2026-12-12T22:00:00+00:00"]);
        assert_eq!(found[0].1 - found[0].0, Duration::hours(4));
        let inside = Utc.with_ymd_and_hms(2026, 12, 6, 1, 0, 0).unwrap();
        assert_eq!(window.occurrences(inside, inside + Duration::hours(1)).len(), 1, "the running one counts");
    }

    #[test]
    fn validation_names_each_problem() {
        let mut problems = Problems::default();
        let mut window = recurring(&["noday"], "25:00", 0, "Mars/Olympus");
        window.start = Some(Utc::now());
        window.validate("w", false, &mut problems);
        assert_eq!(problems.0.len(), 2, "{:?}", problems.0);
        let mut problems = Problems::default();
        recurring(&["noday"], "25:00", 0, "Mars/Olympus").validate("w", true, &mut problems);
        let paths = problems.paths();
        assert_eq!(paths, ["w.time", "w.duration", "w.weekdays[0]", "w.timezone", "w.matchers"]);
    }
}
