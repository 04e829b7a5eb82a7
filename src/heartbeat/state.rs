//! The state of one heartbeat check, and how pings and time move it.
//!
//! Pure: no I/O and no clock. The service feeds it pings ([`Record::apply`])
//! and asks, for an instant, what the status is ([`Record::status`]), which
//! alerts should fire ([`Record::wanted_alerts`]) and when that could next
//! change without a ping ([`Record::next_change`]) — the evaluator sleeps
//! exactly until then.

use super::schedule::Schedule;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// What a check is expected to do, from its config.
#[derive(Debug, Clone)]
pub struct Spec {
    /// When the next success is due.
    pub schedule: Schedule,
    /// How long past due before the check is down (late until then).
    pub grace: Duration,
    /// How long a run may take after `/start` before the check is down.
    pub start_grace: Duration,
    /// Successes closer together than this raise "ran too often".
    pub min_interval: Option<Duration>,
    /// Paused by config.
    pub paused: bool,
}

/// A status, as shown on the API and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// No ping yet (or none since a resume).
    New,
    /// The last run succeeded and the next is not due yet.
    Up,
    /// Past due, within grace.
    Late,
    /// Past due plus grace, a run over its `start_grace`, or the last run failed.
    Down,
    /// A run has started and is within `start_grace`.
    Started,
    /// Paused by config or API: no alerts.
    Paused,
}

impl Status {
    /// Every status, in the order of the `status` label values.
    pub const ALL: [Status; 6] = [Status::New, Status::Up, Status::Late, Status::Down, Status::Started, Status::Paused];

    /// The label and JSON value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What a ping says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A run succeeded (`/ping/<uuid>`, exit status 0, a successful result).
    Success,
    /// A run started.
    Start,
    /// A run failed (`/fail`, exit status 1–255, a failed result).
    Fail,
    /// Recorded only; the state does not move.
    Log,
}

impl Kind {
    /// Every kind, for metric labels.
    pub const ALL: [Kind; 4] = [Kind::Success, Kind::Start, Kind::Fail, Kind::Log];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The alerts a heartbeat check can raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// No success by due + grace, or a run past its `start_grace`.
    Missing,
    /// The last run reported failure.
    Failed,
    /// Two successes closer than `min_interval`.
    TooOften,
}

impl AlertKind {
    /// Every alert kind.
    pub const ALL: [AlertKind; 3] = [AlertKind::Missing, AlertKind::Failed, AlertKind::TooOften];

    /// The `alertname` label value.
    pub fn alertname(self) -> &'static str {
        match self {
            AlertKind::Missing => "HeartbeatMissing",
            AlertKind::Failed => "HeartbeatFailed",
            AlertKind::TooOften => "HeartbeatTooOften",
        }
    }
}

/// The alerts currently told as firing, each with the instant it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alerts {
    /// `HeartbeatMissing` since.
    pub missing: Option<DateTime<Utc>>,
    /// `HeartbeatFailed` since.
    pub failed: Option<DateTime<Utc>>,
    /// `HeartbeatTooOften` since.
    pub too_often: Option<DateTime<Utc>>,
}

impl Alerts {
    /// The start of `kind`, when it fires.
    pub fn get(&self, kind: AlertKind) -> Option<DateTime<Utc>> {
        match kind {
            AlertKind::Missing => self.missing,
            AlertKind::Failed => self.failed,
            AlertKind::TooOften => self.too_often,
        }
    }

    /// Sets or clears `kind`.
    pub fn set(&mut self, kind: AlertKind, since: Option<DateTime<Utc>>) {
        match kind {
            AlertKind::Missing => self.missing = since,
            AlertKind::Failed => self.failed = since,
            AlertKind::TooOften => self.too_often = since,
        }
    }
}

/// A run that has started and not ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRun {
    /// The run id from `?rid=`, if the job sent one.
    pub rid: Option<String>,
    /// When `/start` arrived.
    pub started_at: DateTime<Utc>,
}

/// Runs open at once that are remembered; older ones are forgotten first.
pub const MAX_OPEN_RUNS: usize = 16;

/// What is kept about one check between pings (stored as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    /// The last success.
    pub last_success: Option<DateTime<Utc>>,
    /// The last ping of any kind.
    pub last_ping: Option<DateTime<Utc>>,
    /// The last ping's kind.
    pub last_kind: Option<Kind>,
    /// The last completed run failed (and no success since).
    pub failed_at: Option<DateTime<Utc>>,
    /// The last success came sooner than `min_interval` after the one before.
    pub too_often_at: Option<DateTime<Utc>>,
    /// Started runs not ended yet, oldest first.
    pub open_runs: Vec<OpenRun>,
    /// Paused through the API since then (a ping resumes).
    pub paused_at: Option<DateTime<Utc>>,
    /// Alerts already submitted as firing.
    pub alerts: Alerts,
    /// When the current outage without a failure ping (a missed deadline,
    /// a run past `start_grace`) entered the checks' history; once per outage.
    pub missed_at: Option<DateTime<Utc>>,
}

/// What applying a ping did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// The run's duration, when the ping ended a started run.
    pub duration: Option<Duration>,
}

impl Record {
    /// Moves the record by a ping of `kind` at `at` with run id `rid`.
    pub fn apply(&mut self, spec: &Spec, kind: Kind, at: DateTime<Utc>, rid: Option<&str>) -> Applied {
        self.last_ping = Some(at);
        self.last_kind = Some(kind);
        if kind != Kind::Log {
            self.paused_at = None;
        }
        match kind {
            Kind::Log => Applied::default(),
            Kind::Start => {
                // A start with the same run id (or none) replaces the earlier one.
                self.open_runs.retain(|run| run.rid.as_deref() != rid);
                self.open_runs.push(OpenRun { rid: rid.map(str::to_string), started_at: at });
                if self.open_runs.len() > MAX_OPEN_RUNS {
                    self.open_runs.remove(0);
                }
                Applied::default()
            }
            Kind::Success | Kind::Fail => {
                self.missed_at = None;
                let duration = self.end_run(rid).map(|started| at - started);
                if kind == Kind::Success {
                    let previous = self.last_success.replace(at);
                    self.failed_at = None;
                    self.too_often_at = match (spec.min_interval, previous) {
                        (Some(min), Some(previous)) if at - previous < min => Some(at),
                        _ => None,
                    };
                } else {
                    self.failed_at = Some(at);
                }
                Applied { duration }
            }
        }
    }

    /// Closes the run `rid` names (or, without one, every open run, pairing
    /// with the latest); returns when it started.
    fn end_run(&mut self, rid: Option<&str>) -> Option<DateTime<Utc>> {
        match rid {
            Some(rid) => {
                let index = self.open_runs.iter().position(|run| run.rid.as_deref() == Some(rid))?;
                Some(self.open_runs.remove(index).started_at)
            }
            None => {
                let latest = self.open_runs.last().map(|run| run.started_at);
                self.open_runs.clear();
                latest
            }
        }
    }

    /// Pauses through the API.
    pub fn pause(&mut self, at: DateTime<Utc>) {
        self.paused_at = Some(at);
    }

    /// Resumes through the API: the check waits for its next ping, as new.
    pub fn resume(&mut self) {
        self.paused_at = None;
        self.last_success = None;
        self.failed_at = None;
        self.too_often_at = None;
        self.open_runs.clear();
        self.missed_at = None;
    }

    /// Whether the check is down without a failure report (overdue, or a
    /// run past its `start_grace`) and that is not in the history yet; the
    /// failure's reason when so.
    pub fn unrecorded_miss(&self, spec: &Spec, now: DateTime<Utc>) -> Option<&'static str> {
        if self.missed_at.is_some() || self.failed_at.is_some() || self.status(spec, now) != Status::Down {
            return None;
        }
        Some(if self.open_runs.is_empty() { "missed" } else { "run_too_long" })
    }

    /// When the oldest open run must end.
    fn run_deadline(&self, spec: &Spec) -> Option<DateTime<Utc>> {
        let oldest = self.open_runs.iter().map(|run| run.started_at).min()?;
        Some(oldest.checked_add_signed(spec.start_grace).unwrap_or(DateTime::<Utc>::MAX_UTC))
    }

    /// When the next success is due (`None`: new, or never due again).
    pub fn due(&self, spec: &Spec) -> Option<DateTime<Utc>> {
        spec.schedule.due_after(self.last_success?, spec.grace)
    }

    /// The status at `now`.
    pub fn status(&self, spec: &Spec, now: DateTime<Utc>) -> Status {
        if spec.paused || self.paused_at.is_some() {
            return Status::Paused;
        }
        if let Some(deadline) = self.run_deadline(spec) {
            return if now <= deadline { Status::Started } else { Status::Down };
        }
        if self.failed_at.is_some() {
            return Status::Down;
        }
        if self.last_success.is_none() {
            return Status::New;
        }
        match self.due(spec) {
            None => Status::Up,
            Some(due) if now < due => Status::Up,
            Some(due) if now < due.checked_add_signed(spec.grace).unwrap_or(DateTime::<Utc>::MAX_UTC) => Status::Late,
            Some(_) => Status::Down,
        }
    }

    /// Whether each alert should fire at `now`. A missing or failed alert,
    /// once firing, stays until a success (or a pause) ends it, so a `/start`
    /// alone does not resolve it.
    pub fn wanted_alerts(&self, spec: &Spec, now: DateTime<Utc>) -> [(AlertKind, bool); 3] {
        let status = self.status(spec, now);
        if status == Status::Paused {
            return [(AlertKind::Missing, false), (AlertKind::Failed, false), (AlertKind::TooOften, false)];
        }
        let failed = self.failed_at.is_some();
        let overdue = status == Status::Down && !failed;
        let missing = overdue || (self.alerts.missing.is_some() && self.no_success_since(self.alerts.missing));
        [(AlertKind::Missing, missing), (AlertKind::Failed, failed), (AlertKind::TooOften, self.too_often_at.is_some())]
    }

    fn no_success_since(&self, since: Option<DateTime<Utc>>) -> bool {
        match (self.last_success, since) {
            (Some(success), Some(since)) => success < since,
            _ => true,
        }
    }

    /// The instant at which a firing alert of `kind` began.
    pub fn alert_start(&self, spec: &Spec, kind: AlertKind, now: DateTime<Utc>) -> DateTime<Utc> {
        match kind {
            AlertKind::Failed => self.failed_at.unwrap_or(now),
            AlertKind::TooOften => self.too_often_at.unwrap_or(now),
            AlertKind::Missing => {
                let run_over = self.run_deadline(spec).filter(|deadline| *deadline < now);
                let overdue = self.due(spec).and_then(|due| due.checked_add_signed(spec.grace));
                run_over.or(overdue).filter(|at| *at <= now).unwrap_or(now)
            }
        }
    }

    /// The next instant after `now` at which the status can change without a
    /// ping, if any.
    pub fn next_change(&self, spec: &Spec, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if spec.paused || self.paused_at.is_some() {
            return None;
        }
        if let Some(deadline) = self.run_deadline(spec) {
            // Down is "after the deadline"; wake one millisecond past it.
            return (deadline >= now).then(|| deadline + Duration::milliseconds(1));
        }
        if self.failed_at.is_some() {
            return None;
        }
        let due = self.due(spec)?;
        let down_at = due.checked_add_signed(spec.grace)?;
        [due, down_at].into_iter().find(|at| *at > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(minutes)
    }

    fn spec() -> Spec {
        Spec {
            schedule: Schedule::Period(Duration::minutes(10)),
            grace: Duration::minutes(5),
            start_grace: Duration::minutes(30),
            min_interval: None,
            paused: false,
        }
    }

    fn wanted(record: &Record, spec: &Spec, now: DateTime<Utc>) -> Vec<&'static str> {
        record.wanted_alerts(spec, now).into_iter().filter(|(_, on)| *on).map(|(kind, _)| kind.alertname()).collect()
    }

    #[test]
    fn period_and_grace_move_up_late_down_and_a_ping_brings_it_back() {
        let spec = spec();
        let mut record = Record::default();
        assert_eq!(record.status(&spec, t(0)), Status::New);
        assert_eq!(record.next_change(&spec, t(0)), None, "a new check never goes down by itself");
        record.apply(&spec, Kind::Success, t(0), None);
        assert_eq!(record.status(&spec, t(9)), Status::Up);
        assert_eq!(record.next_change(&spec, t(9)), Some(t(10)));
        assert_eq!(record.status(&spec, t(10)), Status::Late);
        assert_eq!(record.next_change(&spec, t(10)), Some(t(15)));
        assert_eq!(record.status(&spec, t(15)), Status::Down);
        assert_eq!(wanted(&record, &spec, t(15)), ["HeartbeatMissing"]);
        assert_eq!(record.alert_start(&spec, AlertKind::Missing, t(20)), t(15));
        record.apply(&spec, Kind::Success, t(21), None);
        assert_eq!(record.status(&spec, t(21)), Status::Up);
        assert!(wanted(&record, &spec, t(21)).is_empty());
    }

    #[test]
    fn start_grace_bounds_the_run_and_rid_pairs_start_with_end() {
        let spec = spec();
        let mut record = Record::default();
        record.apply(&spec, Kind::Start, t(0), Some("a"));
        record.apply(&spec, Kind::Start, t(2), Some("b"));
        assert_eq!(record.status(&spec, t(1)), Status::Started);
        assert_eq!(record.next_change(&spec, t(1)), Some(t(30) + Duration::milliseconds(1)));
        let applied = record.apply(&spec, Kind::Success, t(7), Some("b"));
        assert_eq!(applied.duration, Some(Duration::minutes(5)));
        assert_eq!(record.status(&spec, t(8)), Status::Started, "run a is still open");
        assert_eq!(record.status(&spec, t(31)), Status::Down, "run a exceeded start_grace");
        assert_eq!(wanted(&record, &spec, t(31)), ["HeartbeatMissing"]);
        record.alerts.missing = Some(t(30));
        // A new start does not resolve the missing alert; a success does.
        record.apply(&spec, Kind::Start, t(32), None);
        assert_eq!(record.open_runs.len(), 2);
        assert_eq!(wanted(&record, &spec, t(33)), ["HeartbeatMissing"]);
        let applied = record.apply(&spec, Kind::Success, t(40), None);
        assert_eq!(applied.duration, Some(Duration::minutes(8)), "no rid pairs with the latest start");
        assert!(record.open_runs.is_empty());
        assert!(wanted(&record, &spec, t(40)).is_empty());
        assert_eq!(record.apply(&spec, Kind::Success, t(41), Some("unknown")).duration, None);
    }

    #[test]
    fn a_miss_enters_the_history_once_per_outage() {
        let spec = spec();
        let mut record = Record::default();
        assert_eq!(record.unrecorded_miss(&spec, t(100)), None, "a new check misses nothing");
        record.apply(&spec, Kind::Success, t(0), None);
        assert_eq!(record.unrecorded_miss(&spec, t(12)), None, "late is no miss");
        assert_eq!(record.unrecorded_miss(&spec, t(16)), Some("missed"));
        record.missed_at = Some(t(16));
        assert_eq!(record.unrecorded_miss(&spec, t(60)), None, "once per outage");
        record.apply(&spec, Kind::Start, t(61), None);
        assert_eq!(record.unrecorded_miss(&spec, t(95)), None, "still the same outage");
        record.apply(&spec, Kind::Success, t(96), None);
        assert_eq!(record.missed_at, None, "a success ends the outage");
        record.apply(&spec, Kind::Start, t(100), None);
        assert_eq!(record.unrecorded_miss(&spec, t(131)), Some("run_too_long"));
        record.apply(&spec, Kind::Fail, t(132), None);
        assert_eq!(record.unrecorded_miss(&spec, t(200)), None, "a failure ping is its own result");
    }

    #[test]
    fn a_failure_is_down_at_once_until_a_success() {
        let spec = spec();
        let mut record = Record::default();
        record.apply(&spec, Kind::Success, t(0), None);
        record.apply(&spec, Kind::Fail, t(3), None);
        assert_eq!(record.status(&spec, t(3)), Status::Down);
        assert_eq!(wanted(&record, &spec, t(3)), ["HeartbeatFailed"]);
        assert_eq!(record.next_change(&spec, t(3)), None);
        record.apply(&spec, Kind::Log, t(4), None);
        assert_eq!(record.status(&spec, t(4)), Status::Down, "log pings change nothing");
        record.apply(&spec, Kind::Success, t(5), None);
        assert_eq!(record.status(&spec, t(5)), Status::Up);
        assert!(wanted(&record, &spec, t(5)).is_empty());
    }

    #[test]
    fn successes_closer_than_min_interval_are_too_often() {
        let spec = Spec { min_interval: Some(Duration::minutes(8)), ..spec() };
        let mut record = Record::default();
        record.apply(&spec, Kind::Success, t(0), None);
        record.apply(&spec, Kind::Success, t(3), None);
        assert_eq!(record.status(&spec, t(3)), Status::Up, "an early ping still counts as a run");
        assert_eq!(record.due(&spec), Some(t(13)), "the next run is due a period after the early one");
        assert_eq!(wanted(&record, &spec, t(3)), ["HeartbeatTooOften"]);
        record.apply(&spec, Kind::Success, t(12), None);
        assert!(wanted(&record, &spec, t(12)).is_empty());
    }

    #[test]
    fn paused_raises_nothing_and_a_ping_resumes() {
        let spec = spec();
        let mut record = Record::default();
        record.apply(&spec, Kind::Success, t(0), None);
        record.pause(t(1));
        assert_eq!(record.status(&spec, t(100)), Status::Paused);
        assert!(wanted(&record, &spec, t(100)).is_empty());
        assert_eq!(record.next_change(&spec, t(100)), None);
        record.apply(&spec, Kind::Success, t(101), None);
        assert_eq!(record.status(&spec, t(101)), Status::Up);
        record.pause(t(102));
        record.resume();
        assert_eq!(record.status(&spec, t(200)), Status::New);
        let by_config = Spec { paused: true, ..spec };
        assert_eq!(record.status(&by_config, t(200)), Status::Paused);
    }
}
