//! The state machine of one check: `unknown` → `up`/`down` by thresholds,
//! and the incident a down period opens and a recovery closes.
//!
//! Pure: no I/O, no clock; the runner feeds it one [`Run`] at a time and acts
//! on the [`Change`] it returns. `paused` and `maintenance` are not health
//! states: they are shown on top of it ([`State::effective`]) and
//! maintenance runs leave the counters alone.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What a check is, as shown on the API and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Never ran (or no result since it was added).
    Unknown,
    /// Passing.
    Up,
    /// Failing for at least `failures_before_down` runs.
    Down,
    /// Not running: paused by config or API.
    Paused,
    /// Running inside a maintenance window.
    Maintenance,
}

impl State {
    /// Every state, in the order of the `state` label values.
    pub const ALL: [State; 5] = [State::Unknown, State::Up, State::Down, State::Paused, State::Maintenance];

    /// The label and JSON value.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses a stored health value; anything else is `unknown`.
    pub fn parse_health(text: &str) -> State {
        match text {
            "up" => State::Up,
            "down" => State::Down,
            _ => State::Unknown,
        }
    }

    /// What to show: paused wins over maintenance, maintenance over health.
    pub fn effective(health: State, paused: bool, maintenance: bool) -> State {
        if paused {
            State::Paused
        } else if maintenance {
            State::Maintenance
        } else {
            health
        }
    }
}

/// One finished run, as the state machine needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// When it started.
    pub at: DateTime<Utc>,
    /// Whether the probe succeeded.
    pub success: bool,
    /// The failure's phase and reason (`probe_failure_info`).
    pub failure: Option<(String, String)>,
    /// Whether it ran inside a maintenance window.
    pub maintenance: bool,
}

/// A down period: open while `ended_at` is `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// Store id, once stored.
    pub id: Option<i64>,
    /// The first failing run of the streak that took the check down.
    pub started_at: DateTime<Utc>,
    /// The first passing run of the streak that brought it back up.
    pub ended_at: Option<DateTime<Utc>>,
    /// Phase of the first failure.
    pub phase: String,
    /// Reason of the first failure.
    pub reason: String,
    /// When people were last told (the down message or a reminder).
    pub notified_at: Option<DateTime<Utc>>,
}

impl Incident {
    /// How long the check was (or has been, until `now`) down.
    pub fn duration(&self, now: DateTime<Utc>) -> chrono::Duration {
        self.ended_at.unwrap_or(now) - self.started_at
    }
}

/// A transition the runner must record and announce.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// First verdict of a new check (or after `unknown`): up.
    FirstUp,
    /// Went down: a new open incident.
    Down(Incident),
    /// Came back up: the closed incident.
    Recovered(Incident),
}

/// Thresholds of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive failures before down.
    pub failures_before_down: u32,
    /// Consecutive successes before up.
    pub successes_before_up: u32,
}

/// The health of one check and its streak counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// Unknown, up or down.
    pub health: State,
    /// When the health last changed.
    pub since: Option<DateTime<Utc>>,
    /// The open incident while down.
    pub incident: Option<Incident>,
    failures: u32,
    successes: u32,
    /// The first failure of the current failing streak.
    first_failure: Option<(DateTime<Utc>, String, String)>,
    /// The first success of the current passing streak.
    first_success: Option<DateTime<Utc>>,
}

impl Default for Machine {
    fn default() -> Self {
        Machine::restore(State::Unknown, None, None)
    }
}

impl Machine {
    /// A machine resumed from the store; streaks start afresh.
    pub fn restore(health: State, since: Option<DateTime<Utc>>, incident: Option<Incident>) -> Machine {
        Machine { health, since, incident, failures: 0, successes: 0, first_failure: None, first_success: None }
    }

    /// Feeds one run; returns the transition it caused, if any.
    pub fn apply(&mut self, run: &Run, thresholds: Thresholds) -> Option<Change> {
        if run.maintenance {
            return None;
        }
        if run.success {
            self.failures = 0;
            self.first_failure = None;
            self.successes = self.successes.saturating_add(1);
            let first_success = *self.first_success.get_or_insert(run.at);
            if self.successes < thresholds.successes_before_up || self.health == State::Up {
                return None;
            }
            let was = std::mem::replace(&mut self.health, State::Up);
            self.since = Some(first_success);
            match (was, self.incident.take()) {
                (State::Down, Some(mut incident)) => {
                    incident.ended_at = Some(first_success);
                    Some(Change::Recovered(incident))
                }
                _ => Some(Change::FirstUp),
            }
        } else {
            self.successes = 0;
            self.first_success = None;
            self.failures = self.failures.saturating_add(1);
            let (phase, reason) = run.failure.clone().unwrap_or_else(|| ("unknown".into(), "unknown".into()));
            let (started_at, phase, reason) = self.first_failure.get_or_insert((run.at, phase, reason)).clone();
            if self.failures < thresholds.failures_before_down || self.health == State::Down {
                return None;
            }
            self.health = State::Down;
            self.since = Some(started_at);
            let incident = Incident { id: None, started_at, ended_at: None, phase, reason, notified_at: None };
            self.incident = Some(incident.clone());
            Some(Change::Down(incident))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn run(minute: u32, success: bool) -> Run {
        Run {
            at: Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0).unwrap(),
            success,
            failure: (!success).then(|| ("connect".to_string(), format!("refused{minute}"))),
            maintenance: false,
        }
    }

    const T: Thresholds = Thresholds { failures_before_down: 2, successes_before_up: 2 };

    #[test]
    fn down_after_n_failures_up_after_m_successes_with_the_first_failure_as_cause() {
        let mut machine = Machine::default();
        assert_eq!(machine.apply(&run(0, true), T), None);
        assert_eq!(machine.apply(&run(1, true), T), Some(Change::FirstUp));
        assert_eq!(machine.apply(&run(2, false), T), None, "one failure is not enough");
        assert_eq!(machine.apply(&run(3, true), T), None, "a success resets the streak");
        assert_eq!(machine.apply(&run(4, false), T), None);
        let Some(Change::Down(incident)) = machine.apply(&run(5, false), T) else { panic!() };
        assert_eq!((incident.started_at, incident.reason.as_str()), (run(4, false).at, "refused4"));
        assert_eq!(machine.health, State::Down);
        assert_eq!(machine.apply(&run(6, false), T), None, "already down");
        assert_eq!(machine.apply(&run(7, true), T), None);
        let Some(Change::Recovered(closed)) = machine.apply(&run(8, true), T) else { panic!() };
        assert_eq!(closed.ended_at, Some(run(7, true).at));
        assert_eq!(closed.duration(Utc::now()), chrono::Duration::minutes(3));
        assert_eq!(machine.incident, None);
    }

    #[test]
    fn maintenance_runs_do_not_move_the_counters() {
        let mut machine = Machine::default();
        let mut quiet = run(0, false);
        quiet.maintenance = true;
        for _ in 0..5 {
            assert_eq!(machine.apply(&quiet, T), None);
        }
        assert_eq!(machine.health, State::Unknown);
        assert_eq!(machine.apply(&run(1, false), T), None, "the streak starts after maintenance");
        assert!(matches!(machine.apply(&run(2, false), T), Some(Change::Down(_))));
        assert_eq!(State::effective(State::Down, false, true), State::Maintenance);
        assert_eq!(State::effective(State::Down, true, true), State::Paused);
    }
}
