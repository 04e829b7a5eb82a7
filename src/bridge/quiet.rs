//! Quiet hours: per-contact periods in the contact's own time zone during
//! which notifications are deferred (and later summarised), not dropped.
//!
//! A range names the days it **starts** on, a start and an end time. When
//! `to` is earlier than `from` the range runs overnight: `mon-fri 22:00–07:00`
//! covers Monday 22:00 to Tuesday 07:00, …, Friday 22:00 to Saturday 07:00,
//! but not Sunday night. Ranges are half-open (`from` is quiet, `to` is not),
//! and ranges that touch or overlap merge into one quiet period, so
//! `quiet_until` on a Friday night can answer "Monday 07:00".
//!
//! Local times are turned into instants per calendar day, which keeps DST
//! right: a time skipped by a spring-forward gap means the first instant
//! after the gap; a time repeated when clocks fall back means the earlier
//! instant for `from` and the later one for `to`, so quiet hours never get
//! shorter than the wall clock promises.

use crate::config::Problems;
use chrono::offset::LocalResult;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// A contact's quiet hours (`quiet_hours:` in a contact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// IANA time zone name, e.g. `Europe/Berlin`. Default `UTC`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// The quiet ranges.
    pub ranges: Vec<QuietRange>,
    /// Alertmanager-style matcher expressions (`severity="critical"`);
    /// alerts matching any of them are delivered even during quiet hours.
    /// Stored raw: the bridge core evaluates them with its matcher.
    #[serde(default)]
    pub bypass: Vec<String>,
}

/// One quiet range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietRange {
    /// Days the range starts on: `mon`…`sun` (or full names), ranges such as
    /// `mon-fri` or `fri-mon` (wrapping). Empty means every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// Start, `HH:MM` (00:00–23:59).
    pub from: String,
    /// End, `HH:MM` (00:00–24:00); earlier than `from` means the next day.
    pub to: String,
}

fn default_timezone() -> String {
    "UTC".to_string()
}

/// Longest stretch `quiet_until` follows merged ranges; a schedule quiet for
/// longer is reported as quiet until this horizon (validation rejects
/// schedules that cover the whole week).
const HORIZON_DAYS: i64 = 8;

impl QuietHours {
    /// Records every problem below `path` (e.g. `contacts.alice.quiet_hours`).
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        if self.timezone.parse::<Tz>().is_err() {
            problems.push(
                format!("{path}.timezone"),
                format!("unknown time zone {:?}: use an IANA name such as Europe/Berlin", self.timezone),
            );
        }
        if self.ranges.is_empty() {
            problems.push(format!("{path}.ranges"), "at least one range is needed");
        }
        for (index, range) in self.ranges.iter().enumerate() {
            let range_path = format!("{path}.ranges[{index}]");
            for (day_index, day) in range.days.iter().enumerate() {
                if let Err(message) = parse_days(day) {
                    problems.push(format!("{range_path}.days[{day_index}]"), message);
                }
            }
            let from = parse_time(&range.from, false);
            if let Err(message) = &from {
                problems.push(format!("{range_path}.from"), message.clone());
            }
            let to = parse_time(&range.to, true);
            if let Err(message) = &to {
                problems.push(format!("{range_path}.to"), message.clone());
            }
            if let (Ok(from), Ok(to)) = (from, to) {
                if from == to {
                    problems.push(
                        range_path.clone(),
                        "from and to are equal; use from: \"00:00\", to: \"24:00\" for a whole day",
                    );
                }
            }
        }
        for (index, expression) in self.bypass.iter().enumerate() {
            if let Err(message) = check_matcher_shape(expression) {
                problems.push(format!("{path}.bypass[{index}]"), message);
            }
        }
        if let Ok(schedule) = self.compile() {
            if schedule.covers_whole_week() {
                problems.push(
                    format!("{path}.ranges"),
                    "quiet hours cover the whole week; nothing would ever be delivered",
                );
            }
        }
    }

    /// The raw bypass matcher expressions, for the core's matcher.
    pub fn bypass_expressions(&self) -> &[String] {
        &self.bypass
    }

    /// Whether `at` falls in a quiet period. An invalid schedule (which
    /// validation rejects) is never quiet.
    pub fn is_quiet(&self, at: DateTime<Utc>) -> bool {
        self.compile().is_ok_and(|schedule| schedule.end_of_period_containing(at).is_some())
    }

    /// The end of the quiet period containing `at`, following touching and
    /// overlapping ranges (Friday 22:00 through the weekend to Monday 07:00);
    /// `None` when `at` is not quiet.
    pub fn quiet_until(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let schedule = self.compile().ok()?;
        let mut end = schedule.end_of_period_containing(at)?;
        let horizon = at + Duration::days(HORIZON_DAYS);
        while end < horizon {
            match schedule.end_of_period_containing(end) {
                Some(next) if next > end => end = next,
                _ => break,
            }
        }
        Some(end.min(horizon))
    }

    fn compile(&self) -> Result<Schedule, String> {
        let timezone: Tz = self.timezone.parse().map_err(|_| format!("unknown time zone {:?}", self.timezone))?;
        let mut ranges = Vec::with_capacity(self.ranges.len());
        for range in &self.ranges {
            let mut days = [range.days.is_empty(); 7];
            for day in &range.days {
                for weekday in parse_days(day)? {
                    days[weekday.num_days_from_monday() as usize] = true;
                }
            }
            let from = parse_time(&range.from, false)?;
            let to = parse_time(&range.to, true)?;
            if from == to {
                return Err("from and to are equal".to_string());
            }
            ranges.push(CompiledRange { days, from, to });
        }
        Ok(Schedule { timezone, ranges })
    }
}

const MINUTES_PER_DAY: u32 = 24 * 60;

#[derive(Debug, Clone)]
struct CompiledRange {
    /// Start days, Monday first.
    days: [bool; 7],
    /// Minutes after local midnight.
    from: u32,
    /// Minutes after local midnight; `to <= from` means the next day.
    to: u32,
}

#[derive(Debug, Clone)]
struct Schedule {
    timezone: Tz,
    ranges: Vec<CompiledRange>,
}

impl Schedule {
    /// The instants of the ranges starting on local `date`.
    fn periods_starting_on(&self, date: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let weekday = date.weekday().num_days_from_monday() as usize;
        self.ranges
            .iter()
            .filter(|range| range.days[weekday])
            .filter_map(|range| {
                let end_date = if range.to <= range.from { date.succ_opt()? } else { date };
                let start = local_instant(self.timezone, date, range.from, false)?;
                let end = local_instant(self.timezone, end_date, range.to, true)?;
                (start < end).then_some((start, end))
            })
            .collect()
    }

    /// The latest end among periods with `start <= at < end`.
    fn end_of_period_containing(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local_date = at.with_timezone(&self.timezone).date_naive();
        // A period lasts at most about a day, so it started today or
        // yesterday (local); two days back covers DST and date-line oddities.
        (0..=2)
            .filter_map(|back| local_date.checked_sub_signed(Duration::days(back)))
            .flat_map(|date| self.periods_starting_on(date))
            .filter(|(start, end)| *start <= at && at < *end)
            .map(|(_, end)| end)
            .max()
    }

    /// True when some instant of a sample week is quiet and the quiet period
    /// never ends within the horizon.
    fn covers_whole_week(&self) -> bool {
        // Any fixed instant works: a schedule covering the week is quiet
        // everywhere, so following it from one point never reaches an end.
        let probe = Utc.with_ymd_and_hms(2026, 1, 5, 12, 0, 0).single();
        let Some(mut at) = probe else {
            return false;
        };
        let horizon = at + Duration::days(HORIZON_DAYS);
        while at < horizon {
            match self.end_of_period_containing(at) {
                Some(end) if end > at => at = end,
                _ => return false,
            }
        }
        true
    }
}

/// The instant of local `date` + `minutes` in `timezone`. In a DST gap this
/// is the first instant after the gap; when the local time occurs twice,
/// the earlier one, or the later one if `latest`.
pub(crate) fn local_instant(timezone: Tz, date: NaiveDate, minutes: u32, latest: bool) -> Option<DateTime<Utc>> {
    let local = date.and_hms_opt(0, 0, 0)? + Duration::minutes(i64::from(minutes));
    match timezone.from_local_datetime(&local) {
        LocalResult::Single(time) => Some(time.with_timezone(&Utc)),
        LocalResult::Ambiguous(earlier, later) => Some(if latest { later } else { earlier }.with_timezone(&Utc)),
        // Gaps are whole minutes and at most a day long (Samoa skipped
        // 2011-12-30), so the first valid minute is the gap's end.
        LocalResult::None => (1..=MINUTES_PER_DAY as i64 + 60).find_map(|step| {
            timezone
                .from_local_datetime(&(local + Duration::minutes(step)))
                .earliest()
                .map(|time| time.with_timezone(&Utc))
        }),
    }
}

/// Parses `HH:MM`; `24:00` only when `allow_end_of_day`.
pub(crate) fn parse_time(text: &str, allow_end_of_day: bool) -> Result<u32, String> {
    let invalid = || format!("invalid time {text:?}: expected HH:MM");
    let (hours, minutes) = text.split_once(':').ok_or_else(invalid)?;
    if hours.len() != 2 || minutes.len() != 2 {
        return Err(invalid());
    }
    let hours: u32 = hours.parse().map_err(|_| invalid())?;
    let minutes: u32 = minutes.parse().map_err(|_| invalid())?;
    if hours == 24 && minutes == 0 {
        return if allow_end_of_day {
            Ok(MINUTES_PER_DAY)
        } else {
            Err(format!("{text:?} is only allowed as the end of a range"))
        };
    }
    if hours > 23 || minutes > 59 {
        return Err(format!("invalid time {text:?}: out of range"));
    }
    Ok(hours * 60 + minutes)
}

/// Parses `mon`, `monday`, `mon-fri`, `fri-mon` (wrapping over the week end).
pub(crate) fn parse_days(text: &str) -> Result<Vec<Weekday>, String> {
    let day = |name: &str| -> Result<Weekday, String> {
        let lower = name.trim().to_ascii_lowercase();
        let weekday = match lower.as_str() {
            "mon" | "monday" => Weekday::Mon,
            "tue" | "tuesday" => Weekday::Tue,
            "wed" | "wednesday" => Weekday::Wed,
            "thu" | "thursday" => Weekday::Thu,
            "fri" | "friday" => Weekday::Fri,
            "sat" | "saturday" => Weekday::Sat,
            "sun" | "sunday" => Weekday::Sun,
            _ => {
                return Err(format!("unknown day {name:?}: use mon, tue, … sun or a range such as mon-fri"));
            }
        };
        Ok(weekday)
    };
    match text.split_once('-') {
        None => Ok(vec![day(text)?]),
        Some((first, last)) => {
            let first = day(first)?;
            let last = day(last)?;
            let mut days = vec![first];
            let mut current = first;
            while current != last {
                current = current.succ();
                days.push(current);
            }
            Ok(days)
        }
    }
}

/// A shallow check that `expression` looks like `name op value`; the core's
/// matcher does the real parsing.
fn check_matcher_shape(expression: &str) -> Result<(), String> {
    let trimmed = expression.trim();
    let name_end = trimmed.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(trimmed.len());
    let name = &trimmed[..name_end];
    let rest = trimmed[name_end..].trim_start();
    let has_operator = ["=~", "!~", "!=", "="].iter().any(|op| rest.starts_with(op));
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) || !has_operator {
        Err(format!("invalid matcher {expression:?}: expected label=value, label!=value, label=~regex or label!~regex"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn range(days: &[&str], from: &str, to: &str) -> QuietRange {
        QuietRange { days: days.iter().map(|day| day.to_string()).collect(), from: from.into(), to: to.into() }
    }

    fn quiet(timezone: &str, ranges: Vec<QuietRange>) -> QuietHours {
        QuietHours { timezone: timezone.into(), ranges, bypass: Vec::new() }
    }

    /// Checks `(instant, expected quiet_until)` pairs; `None` = not quiet.
    fn check(hours: &QuietHours, cases: &[(&str, Option<&str>)]) {
        for (at, expected) in cases {
            let at = utc(at);
            let expected = expected.map(utc);
            assert_eq!(hours.quiet_until(at), expected, "quiet_until({at})");
            assert_eq!(hours.is_quiet(at), expected.is_some(), "is_quiet({at})");
        }
    }

    #[test]
    fn overnight_ranges_start_on_the_listed_days() {
        // 2026-01-05 is a Monday; Berlin is UTC+1 in winter.
        let hours = quiet("Europe/Berlin", vec![range(&["mon-fri"], "22:00", "07:00")]);
        check(
            &hours,
            &[
                ("2026-01-05T20:59:59Z", None),
                ("2026-01-05T21:00:00Z", Some("2026-01-06T06:00:00Z")),
                ("2026-01-06T03:00:00Z", Some("2026-01-06T06:00:00Z")),
                ("2026-01-06T06:00:00Z", None),
                // Friday night runs into Saturday morning...
                ("2026-01-10T05:00:00Z", Some("2026-01-10T06:00:00Z")),
                // ...but Sunday night is not listed, so Monday 03:00 is loud.
                ("2026-01-12T02:00:00Z", None),
                ("2026-01-11T22:00:00Z", None),
            ],
        );
    }

    #[test]
    fn same_day_ranges_and_every_day_default() {
        let hours = quiet("UTC", vec![range(&[], "12:00", "13:30"), range(&["sat", "Sunday"], "00:00", "24:00")]);
        check(
            &hours,
            &[
                ("2026-01-07T12:00:00Z", Some("2026-01-07T13:30:00Z")),
                ("2026-01-07T13:30:00Z", None),
                ("2026-01-07T11:59:00Z", None),
                ("2026-01-10T09:00:00Z", Some("2026-01-12T00:00:00Z")),
            ],
        );
    }

    #[test]
    fn touching_and_overlapping_ranges_merge_over_the_weekend() {
        let hours = quiet(
            "Europe/Berlin",
            vec![
                range(&["mon-fri"], "22:00", "07:00"),
                range(&["sat-sun"], "00:00", "24:00"),
                range(&["mon"], "00:00", "07:00"),
            ],
        );
        // Friday 2026-01-09 23:00 Berlin → Monday 2026-01-12 07:00 Berlin.
        check(
            &hours,
            &[
                ("2026-01-09T22:00:00Z", Some("2026-01-12T06:00:00Z")),
                ("2026-01-11T12:00:00Z", Some("2026-01-12T06:00:00Z")),
                ("2026-01-12T06:00:00Z", None),
            ],
        );
    }

    #[test]
    fn wrapping_day_ranges() {
        assert_eq!(parse_days("fri-mon").unwrap(), [Weekday::Fri, Weekday::Sat, Weekday::Sun, Weekday::Mon]);
        assert_eq!(parse_days("Tue").unwrap(), [Weekday::Tue]);
        assert_eq!(parse_days("mon-sun").unwrap().len(), 7);
    }

    #[test]
    fn berlin_spring_forward_night_is_one_hour_shorter() {
        // 2026-03-29 02:00 CET → 03:00 CEST. Saturday 22:00 CET = 21:00 UTC,
        // Sunday 07:00 CEST = 05:00 UTC: eight real hours.
        let hours = quiet("Europe/Berlin", vec![range(&[], "22:00", "07:00")]);
        check(
            &hours,
            &[
                ("2026-03-28T20:59:00Z", None),
                ("2026-03-28T21:00:00Z", Some("2026-03-29T05:00:00Z")),
                ("2026-03-29T01:30:00Z", Some("2026-03-29T05:00:00Z")),
                ("2026-03-29T05:00:00Z", None),
                // The next night is already in summer time (UTC+2).
                ("2026-03-29T20:00:00Z", Some("2026-03-30T05:00:00Z")),
            ],
        );
    }

    #[test]
    fn berlin_fall_back_night_is_one_hour_longer() {
        // 2026-10-25 03:00 CEST → 02:00 CET. Saturday 22:00 CEST = 20:00 UTC,
        // Sunday 07:00 CET = 06:00 UTC: ten real hours.
        let hours = quiet("Europe/Berlin", vec![range(&[], "22:00", "07:00")]);
        check(
            &hours,
            &[
                ("2026-10-24T19:59:00Z", None),
                ("2026-10-24T20:00:00Z", Some("2026-10-25T06:00:00Z")),
                ("2026-10-25T05:59:00Z", Some("2026-10-25T06:00:00Z")),
                ("2026-10-25T06:00:00Z", None),
            ],
        );
    }

    #[test]
    fn times_inside_a_gap_start_when_the_gap_ends() {
        // 02:30 does not exist in Berlin on 2026-03-29: the range starts at
        // 03:00 CEST (01:00 UTC) and ends at 03:30 CEST (01:30 UTC).
        let hours = quiet("Europe/Berlin", vec![range(&["sun"], "02:30", "03:30")]);
        check(
            &hours,
            &[
                ("2026-03-29T00:59:00Z", None),
                ("2026-03-29T01:00:00Z", Some("2026-03-29T01:30:00Z")),
                ("2026-03-29T01:30:00Z", None),
            ],
        );
    }

    #[test]
    fn new_york_transitions() {
        // Spring: 2026-03-08 02:00 EST → 03:00 EDT. Saturday 22:00 EST =
        // 03:00 UTC Sunday; Sunday 07:00 EDT = 11:00 UTC.
        let nightly = quiet("America/New_York", vec![range(&[], "22:00", "07:00")]);
        check(
            &nightly,
            &[
                ("2026-03-08T02:59:00Z", None),
                ("2026-03-08T03:00:00Z", Some("2026-03-08T11:00:00Z")),
                ("2026-03-08T10:59:00Z", Some("2026-03-08T11:00:00Z")),
                ("2026-03-08T11:00:00Z", None),
            ],
        );
        // Fall: 2026-11-01 02:00 EDT → 01:00 EST, so 01:00–01:45 happens
        // twice. The range starts at the first 01:00 (05:00 UTC) and ends at
        // the second 01:45 (06:45 UTC).
        let repeated = quiet("America/New_York", vec![range(&["sun"], "01:00", "01:45")]);
        check(
            &repeated,
            &[
                ("2026-11-01T04:59:00Z", None),
                ("2026-11-01T05:00:00Z", Some("2026-11-01T06:45:00Z")),
                ("2026-11-01T06:10:00Z", Some("2026-11-01T06:45:00Z")),
                ("2026-11-01T06:45:00Z", None),
            ],
        );
        // The overnight range across the fall-back night: Saturday 22:00 EDT
        // = 02:00 UTC, Sunday 07:00 EST = 12:00 UTC.
        check(
            &nightly,
            &[
                ("2026-11-01T01:59:00Z", None),
                ("2026-11-01T02:00:00Z", Some("2026-11-01T12:00:00Z")),
                ("2026-11-01T12:00:00Z", None),
            ],
        );
    }

    #[test]
    fn validation_reports_every_problem_with_its_path() {
        let hours = QuietHours {
            timezone: "Mars/Olympus".into(),
            ranges: vec![
                range(&["mon-fry", "sat"], "24:00", "7:00"),
                range(&["mon"], "08:00", "08:00"),
                range(&["tue"], "22:00", "25:00"),
            ],
            bypass: vec!["severity=\"critical\"".into(), "=x".into(), "team".into()],
        };
        let mut problems = Problems::default();
        hours.validate("contacts.alice.quiet_hours", &mut problems);
        let paths = problems.paths();
        assert_eq!(
            paths,
            [
                "contacts.alice.quiet_hours.timezone",
                "contacts.alice.quiet_hours.ranges[0].days[0]",
                "contacts.alice.quiet_hours.ranges[0].from",
                "contacts.alice.quiet_hours.ranges[0].to",
                "contacts.alice.quiet_hours.ranges[1]",
                "contacts.alice.quiet_hours.ranges[2].to",
                "contacts.alice.quiet_hours.bypass[1]",
                "contacts.alice.quiet_hours.bypass[2]",
            ],
            "{:#?}",
            problems.0
        );
        let mut problems = Problems::default();
        quiet("UTC", vec![]).validate("q", &mut problems);
        assert_eq!(problems.0[0].to_string(), "q.ranges: at least one range is needed");
    }

    #[test]
    fn a_schedule_covering_the_whole_week_is_rejected() {
        let always = quiet("Europe/Berlin", vec![range(&[], "00:00", "24:00")]);
        let mut problems = Problems::default();
        always.validate("q", &mut problems);
        assert_eq!(problems.0.len(), 1, "{:?}", problems.0);
        assert!(problems.0[0].message.contains("whole week"));
        // quiet_until stays bounded even so.
        let at = utc("2026-01-05T12:00:00Z");
        assert_eq!(always.quiet_until(at), Some(at + Duration::days(HORIZON_DAYS)));

        let nightly = quiet("Europe/Berlin", vec![range(&[], "22:00", "07:00")]);
        let mut problems = Problems::default();
        nightly.validate("q", &mut problems);
        assert!(problems.is_empty(), "{:?}", problems.0);
    }

    #[test]
    fn bypass_expressions_are_passed_through_raw() {
        let mut hours = quiet("UTC", vec![range(&[], "22:00", "07:00")]);
        hours.bypass = vec!["severity=\"critical\"".into(), "team=~\"db|ops\"".into()];
        assert_eq!(hours.bypass_expressions(), hours.bypass.as_slice());
        let mut problems = Problems::default();
        hours.validate("q", &mut problems);
        assert!(problems.is_empty(), "{:?}", problems.0);
    }

    #[test]
    fn parses_from_yaml_with_defaults() {
        let value = crate::config::yaml::parse_value(
            "timezone: Europe/Berlin\nranges:\n  - {days: [mon-fri], from: \"22:00\", to: \"07:00\"}\n",
        )
        .unwrap();
        let hours: QuietHours = crate::config::yaml::from_value(value, "q").unwrap();
        assert_eq!(hours.ranges[0], range(&["mon-fri"], "22:00", "07:00"));
        assert!(hours.bypass.is_empty());
        let value = crate::config::yaml::parse_value("ranges: []\nsilence: true\n").unwrap();
        let err = crate::config::yaml::from_value::<QuietHours>(value, "q").unwrap_err();
        assert!(err.message.contains("unknown field"), "{err}");
    }
}
