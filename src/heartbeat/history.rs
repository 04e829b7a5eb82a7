//! Heartbeats as checks without a prober: what of them enters the checks'
//! history (`checks::unprobed`).
//!
//! A success ping is an up result (with the run's duration when a start
//! pairs with it), a failure ping or a non-zero exit status a down result
//! with its reason, a missed deadline (or a run past its `start_grace`) a
//! down result at the instant it was detected. A result without a measured
//! duration is stored as such (never as 0 s), and one inside a maintenance
//! window as a maintenance result. Late, started and new are no
//! results: the check stays what its last result made it, and the finer
//! status is shown beside it. Pauses go both ways through [`Owner`].

use super::Entry;
use super::schedule::Schedule;
use super::state::Kind;
use super::store::Ping;
use crate::checks::config::Check;
use crate::checks::unprobed::{Outcome, Owner};
use crate::storage::StoreError;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use std::sync::{Arc, Weak};

/// The `phase` of every failure a heartbeat records.
pub const PHASE: &str = "heartbeat";

/// The result a ping adds to the history (`None` for start and log pings);
/// `maintenance`: whether a window covers the check at the ping.
pub(crate) fn outcome(ping: &Ping, maintenance: bool) -> Option<Outcome> {
    let success = match ping.kind {
        Kind::Success => true,
        Kind::Fail => false,
        Kind::Start | Kind::Log => return None,
    };
    let failure = (!success).then(|| {
        let reason = match ping.exit_status {
            Some(status) => format!("exit_status_{status}"),
            None => "failed".to_string(),
        };
        (PHASE.to_string(), reason)
    });
    let duration = ping.duration_seconds.and_then(|seconds| std::time::Duration::try_from_secs_f64(seconds).ok());
    Some(Outcome { at: ping.at, success, duration, failure, maintenance })
}

/// The down result of a deadline detected missed at `at`; `reason` is
/// `missed` or `run_too_long`; `maintenance`: whether a window covers the
/// check at `at`.
pub(crate) fn missed(at: DateTime<Utc>, reason: &'static str, maintenance: bool) -> Outcome {
    Outcome { at, success: false, duration: None, failure: Some((PHASE.to_string(), reason.to_string())), maintenance }
}

/// `held`, a result first recorded inside a maintenance window, entered
/// again at `at` outside it once the window is over.
pub(crate) fn again(at: DateTime<Utc>, held: Outcome) -> Outcome {
    Outcome { at, duration: None, maintenance: false, ..held }
}

/// The check a heartbeat is in the history: its name and labels, its period
/// as the interval (zero for a cron schedule).
pub(crate) fn check_of(entry: &Entry) -> Check {
    let interval = match &entry.spec.schedule {
        Schedule::Period(period) => period.to_std().unwrap_or_default(),
        Schedule::Cron { .. } => std::time::Duration::ZERO,
    };
    Check::unprobed(entry.check.name.clone(), interval, entry.check.labels.clone(), entry.check.paused)
}

/// Pauses asked for through the checks (UI, checks API) reach the heartbeat.
struct Pauser(Weak<super::Shared>);

impl Owner for Pauser {
    fn set_paused<'a>(&'a self, name: &'a str, paused: bool) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let Some(shared) = self.0.upgrade() else { return Ok(()) };
            match shared.pause_record(name, paused).await {
                Ok(()) | Err(super::PingError::Unknown(_) | super::PingError::RateLimited { .. }) => Ok(()),
                Err(super::PingError::Store(err)) => Err(err),
            }
        }
        .boxed()
    }
}

/// The owner the checks call back (held weakly: the checks outlive no heartbeat).
pub(crate) fn owner(shared: &Arc<super::Shared>) -> Arc<dyn Owner> {
    Arc::new(Pauser(Arc::downgrade(shared)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(kind: Kind, exit_status: Option<u8>, duration_seconds: Option<f64>) -> Ping {
        Ping {
            at: DateTime::<Utc>::UNIX_EPOCH,
            kind,
            exit_status,
            rid: None,
            duration_seconds,
            source: "uuid",
            method: "POST".into(),
            remote_addr: None,
            user_agent: None,
            body: String::new(),
            body_truncated: false,
        }
    }

    #[test]
    fn pings_become_results_with_their_reason_and_duration() {
        let up = outcome(&ping(Kind::Success, Some(0), Some(2.5)), false).expect("a result");
        assert!(up.success && up.failure.is_none());
        assert_eq!(up.duration, Some(std::time::Duration::from_millis(2500)));
        let down = outcome(&ping(Kind::Fail, Some(3), None), false).expect("a result");
        assert_eq!(down.failure, Some(("heartbeat".into(), "exit_status_3".into())));
        let failed = outcome(&ping(Kind::Fail, None, Some(-1.0)), false).expect("a result");
        assert_eq!(failed.failure, Some(("heartbeat".into(), "failed".into())));
        assert_eq!(failed.duration, None);
        assert!(outcome(&ping(Kind::Success, None, None), true).expect("a result").maintenance);
        assert!(missed(DateTime::<Utc>::UNIX_EPOCH, "missed", true).maintenance);
        assert_eq!(outcome(&ping(Kind::Start, None, None), false), None);
        assert_eq!(outcome(&ping(Kind::Log, None, None), false), None);
    }
}
