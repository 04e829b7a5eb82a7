//! When the next ping of a heartbeat is due: a fixed `period` after the last
//! one, or the next slot of a 5-field cron `schedule` in an IANA `timezone`.
//!
//! Cron slots are found in local time by `croner` and converted to UTC, so a
//! daily 02:30 job stays at 02:30 local across DST changes; a slot that falls
//! into a spring-forward gap is due at the first instant after the gap, and a
//! slot in a fall-back overlap is due once, at its first occurrence.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Due `period` after the last success.
    Period(Duration),
    /// Due at the next matching minute in `timezone`.
    Cron {
        /// The parsed 5-field expression.
        cron: Box<Cron>,
        /// Where the expression's wall-clock times are.
        timezone: Tz,
    },
}

/// Parses a 5-field cron expression (minute precision; seconds refused).
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    let fields = expression.split_whitespace().count();
    if fields != 5 {
        return Err(format!("expected 5 fields (minute hour day-of-month month day-of-week), found {fields}"));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(expression)
        .map_err(|err| format!("invalid cron expression: {err}"))
}

/// Parses an IANA time zone name (`Europe/Berlin`, `UTC`).
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| format!("unknown IANA time zone {name:?}"))
}

impl Schedule {
    /// The first cron slot strictly after `after` (`None` for a period schedule
    /// or an expression that never matches again).
    pub fn next_slot(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Period(_) => None,
            Schedule::Cron { cron, timezone } => {
                let local = after.with_timezone(timezone);
                cron.find_next_occurrence(&local, false).ok().map(|next| next.with_timezone(&Utc))
            }
        }
    }

    /// When the run after a success at `last` is due.
    ///
    /// For a cron schedule a ping shortly *before* a slot counts for that slot
    /// (a job host's clock a little ahead must not raise a false alarm):
    /// "shortly" is within `grace` and closer to that slot than half the gap
    /// to the slot after it. `None` means never due again (a cron expression
    /// with no future match, or a period too large to add).
    pub fn due_after(&self, last: DateTime<Utc>, grace: Duration) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Period(period) => last.checked_add_signed(*period),
            Schedule::Cron { .. } => {
                let slot = self.next_slot(last)?;
                let Some(following) = self.next_slot(slot) else {
                    return Some(slot);
                };
                let tolerance = grace.min((following - slot) / 2);
                if slot - last <= tolerance { Some(following) } else { Some(slot) }
            }
        }
    }

    /// The shortest gap between two runs this schedule expects, looking at the
    /// slots after `from` (for config checks: `min_interval` above it would
    /// alert on every run).
    pub fn shortest_gap(&self, from: DateTime<Utc>) -> Option<Duration> {
        match self {
            Schedule::Period(period) => Some(*period),
            Schedule::Cron { .. } => {
                let mut shortest: Option<Duration> = None;
                let mut slot = self.next_slot(from)?;
                // A year of a daily schedule, or a few days of a per-minute
                // one: enough to see every distinct gap of common patterns.
                for _ in 0..400 {
                    let Some(next) = self.next_slot(slot) else { break };
                    let gap = next - slot;
                    shortest = Some(shortest.map_or(gap, |current| current.min(gap)));
                    slot = next;
                }
                shortest
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn cron(expression: &str, zone: &str) -> Schedule {
        Schedule::Cron { cron: Box::new(parse_cron(expression).unwrap()), timezone: parse_timezone(zone).unwrap() }
    }

    #[test]
    fn only_five_fields_are_accepted() {
        assert!(parse_cron("30 2 * * *").is_ok());
        assert!(parse_cron("*/5 * * * mon-fri").is_ok());
        assert!(parse_cron("0 30 2 * * *").unwrap_err().contains("expected 5 fields"));
        assert!(parse_cron("61 * * * *").is_err());
        assert!(parse_cron("").is_err());
        assert!(parse_timezone("Mars/Olympus").is_err());
    }

    #[test]
    fn period_is_due_a_period_after_the_last_success() {
        let schedule = Schedule::Period(Duration::minutes(10));
        assert_eq!(schedule.due_after(utc(2026, 1, 1, 0, 0), Duration::minutes(5)), Some(utc(2026, 1, 1, 0, 10)));
        let huge = Schedule::Period(Duration::MAX);
        assert_eq!(huge.due_after(utc(2026, 1, 1, 0, 0), Duration::zero()), None);
    }

    #[test]
    fn daily_cron_stays_at_local_time_across_spring_forward_and_fall_back() {
        // Europe/Berlin: 2026-03-29 02:00 CET → 03:00 CEST; 2026-10-25 03:00 CEST → 02:00 CET.
        let schedule = cron("30 3 * * *", "Europe/Berlin");
        let grace = Duration::minutes(30);
        // 03:30 CET = 02:30 UTC before the change, 03:30 CEST = 01:30 UTC after.
        assert_eq!(schedule.due_after(utc(2026, 3, 28, 2, 31), grace), Some(utc(2026, 3, 29, 1, 30)));
        assert_eq!(schedule.due_after(utc(2026, 3, 29, 1, 31), grace), Some(utc(2026, 3, 30, 1, 30)));
        assert_eq!(schedule.due_after(utc(2026, 10, 24, 1, 31), grace), Some(utc(2026, 10, 25, 2, 30)));
        assert_eq!(schedule.due_after(utc(2026, 10, 25, 2, 31), grace), Some(utc(2026, 10, 26, 2, 30)));
    }

    #[test]
    fn a_slot_in_the_spring_forward_gap_is_due_right_after_the_gap() {
        // 02:30 does not exist in Berlin on 2026-03-29: due at 03:00 CEST (01:00 UTC).
        let schedule = cron("30 2 * * *", "Europe/Berlin");
        assert_eq!(schedule.next_slot(utc(2026, 3, 28, 2, 0)), Some(utc(2026, 3, 29, 1, 0)));
        assert_eq!(schedule.next_slot(utc(2026, 3, 29, 1, 0)), Some(utc(2026, 3, 30, 0, 30)));
    }

    #[test]
    fn a_slot_in_the_fall_back_overlap_is_due_once() {
        // 02:30 happens twice in Berlin on 2026-10-25 (00:30 and 01:30 UTC).
        let schedule = cron("30 2 * * *", "Europe/Berlin");
        assert_eq!(schedule.next_slot(utc(2026, 10, 24, 12, 0)), Some(utc(2026, 10, 25, 0, 30)));
        assert_eq!(schedule.next_slot(utc(2026, 10, 25, 0, 30)), Some(utc(2026, 10, 26, 1, 30)));
    }

    #[test]
    fn a_ping_shortly_before_a_slot_counts_for_it() {
        let schedule = cron("0 * * * *", "UTC");
        let grace = Duration::minutes(5);
        // 2 minutes early: counts for 01:00, so 02:00 is due next.
        assert_eq!(
            schedule.due_after(utc(2026, 1, 1, 0, 58), grace),
            Some(utc(2026, 1, 1, 2, 0)),
            "a ping just before the slot covers it"
        );
        // 20 minutes early is beyond grace: 01:00 is still due.
        assert_eq!(schedule.due_after(utc(2026, 1, 1, 0, 40), grace), Some(utc(2026, 1, 1, 1, 0)));
        // A grace larger than the schedule is capped at half the gap.
        let wide = Duration::hours(3);
        assert_eq!(schedule.due_after(utc(2026, 1, 1, 0, 20), wide), Some(utc(2026, 1, 1, 1, 0)));
        assert_eq!(schedule.due_after(utc(2026, 1, 1, 0, 31), wide), Some(utc(2026, 1, 1, 2, 0)));
    }

    #[test]
    fn shortest_gap_sees_uneven_schedules() {
        assert_eq!(cron("0 9,17 * * *", "UTC").shortest_gap(utc(2026, 1, 1, 0, 0)), Some(Duration::hours(8)));
        assert_eq!(Schedule::Period(Duration::hours(1)).shortest_gap(utc(2026, 1, 1, 0, 0)), Some(Duration::hours(1)));
    }
}
