//! Checks without a prober — heartbeats — in the same slots, history and
//! views as probed checks.
//!
//! Their owner registers them ([`Checks::set_unprobed`]), records each outcome
//! ([`Checks::record_unprobed`]) and reports its finer status
//! ([`Checks::report_status`]); the state machine, results, roll-ups and
//! incidents are the probed checks' own, so uptime, day bars, status pages,
//! badges and `/metrics` come out of the same code. No task runs them, and
//! they never announce: their owner notifies through the pipeline itself.

use super::config::Check;
use super::state::{Run, Thresholds};
use super::store::{NewResult, StoredResult};
use super::{Checks, Error, Last, Shared, Slot};
use crate::storage::StoreError;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;

/// The part that owns unprobed checks; an operator's pause or resume of one
/// (UI or checks API) goes to it first.
pub trait Owner: Send + Sync {
    /// Pauses or resumes check `name` (an unknown name is not an error).
    fn set_paused<'a>(&'a self, name: &'a str, paused: bool) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// One outcome of an unprobed check: a result in its history.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// When it happened (a ping's arrival, a deadline's detection).
    pub at: DateTime<Utc>,
    /// Up or down.
    pub success: bool,
    /// The run's duration, when known (a start paired with its end);
    /// stored as "no duration measured" otherwise.
    pub duration: Option<std::time::Duration>,
    /// Phase and reason of a failure, as probed checks have them.
    pub failure: Option<(String, String)>,
    /// Whether a maintenance window covered it (its owner knows its
    /// windows): kept out of uptime and the state machine's streaks, as a
    /// probed check's run in maintenance.
    pub maintenance: bool,
}

/// The in-memory last result of a stored one.
fn last_of(result: StoredResult) -> Last {
    Last {
        at: result.at,
        success: result.success,
        duration_seconds: result.duration_seconds,
        failure: result.phase.zip(result.reason),
        maintenance: result.maintenance,
        registry: Arc::new(crate::probe::metrics::Registry::default()),
    }
}

impl Shared {
    /// The unprobed slot of `name`.
    pub(super) fn unprobed_slot(&self, name: &str) -> Option<Arc<Slot>> {
        let unprobed = self.unprobed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        unprobed.get(name).cloned()
    }

    /// Gives up the unprobed slots whose names probed `checks` take (only a
    /// check file changed at run time can do that; loading refuses it).
    pub(super) fn yield_unprobed(&self, checks: &[Check]) {
        let mut unprobed = self.unprobed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for check in checks {
            if unprobed.remove(&check.name).is_some() {
                tracing::error!(check = %check.name, "A check has the name of a heartbeat; the check replaces it in the history.");
            }
        }
    }

    /// Asks the owner to pause or resume the unprobed ones among `slots`.
    pub(super) async fn pause_unprobed(&self, slots: &[Arc<Slot>], paused: bool) -> Result<(), StoreError> {
        let owner = self.owner.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let Some(owner) = owner else { return Ok(()) };
        for slot in slots {
            let name = slot.check().name.clone();
            if self.unprobed_slot(&name).is_some() {
                owner.set_paused(&name, paused).await?;
            }
        }
        Ok(())
    }
}

impl Checks {
    /// Makes `checks` the unprobed checks, owned by `owner`: new ones get a
    /// slot (with the history their name already has), changed ones are
    /// updated, gone ones leave the views (their history stays). A name a
    /// probed check has is skipped.
    pub async fn set_unprobed(&self, checks: Vec<Check>, owner: Arc<dyn Owner>) -> Result<(), Error> {
        let shared = &self.shared;
        *shared.owner.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(owner);
        let probed: Vec<String> = {
            let running = shared.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            running.keys().cloned().collect()
        };
        let (checks, clashing): (Vec<Check>, Vec<Check>) =
            checks.into_iter().partition(|check| !probed.contains(&check.name));
        for check in clashing {
            tracing::error!(check = %check.name, "A heartbeat has the name of a check; it stays out of the history.");
        }
        let new_names: Vec<String> = {
            let unprobed = shared.unprobed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            checks.iter().filter(|check| !unprobed.contains_key(&check.name)).map(|check| check.name.clone()).collect()
        };
        let mut saved = shared.store.register(new_names).await?;
        // A heartbeat may not report for a day: its last result is read
        // back, so a restart neither forgets what it shows nor a result
        // held in a maintenance window ([`Checks::held`]).
        let mut lasts = HashMap::new();
        for (name, found) in &saved {
            if let Some(result) = shared.store.last_result(found.id).await? {
                lasts.insert(name.clone(), last_of(result));
            }
        }
        let mut unprobed = shared.unprobed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        unprobed.retain(|name, _| checks.iter().any(|check| check.name == *name));
        for check in checks {
            if let Some(slot) = unprobed.get(&check.name) {
                if *slot.check() != check {
                    slot.set_check(check);
                }
                continue;
            }
            let Some(saved) = saved.remove(&check.name) else { continue };
            let slot = Slot::restore(saved, check.clone());
            slot.lock().last = lasts.remove(&check.name);
            unprobed.insert(check.name, slot);
        }
        Ok(())
    }

    /// Enters one outcome of unprobed check `name` into its history: a
    /// result, and the incident it opens or closes. Unknown names are
    /// ignored; a store failure is logged and counted like a probe's.
    pub async fn record_unprobed(&self, name: &str, outcome: Outcome) {
        let shared = &self.shared;
        let Some(slot) = shared.unprobed_slot(name) else { return };
        let check = slot.check();
        // Results are keyed by check and instant: two outcomes in one
        // millisecond (a fail ping racing a deadline) stay two results.
        let last_at = slot.lock().last.as_ref().map(|last| last.at);
        let at = match last_at {
            Some(last_at) if outcome.at <= last_at => last_at + chrono::Duration::milliseconds(1),
            _ => outcome.at,
        };
        let maintenance = outcome.maintenance;
        let run = Run { at, success: outcome.success, failure: outcome.failure.clone(), maintenance };
        let thresholds = Thresholds {
            failures_before_down: check.failures_before_down,
            successes_before_up: check.successes_before_up,
        };
        let change = slot.lock().machine.apply(&run, thresholds);
        let result = NewResult {
            check_id: slot.id,
            at,
            duration_us: outcome.duration.map(|duration| u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)),
            success: outcome.success,
            failure: outcome.failure.clone(),
            maintenance,
        };
        let stored = shared.store.record(result, super::to_store(change.as_ref(), at)).await;
        super::remember_incident(shared, &slot, name, stored);
        slot.lock().last = Some(Last {
            at,
            success: outcome.success,
            duration_seconds: outcome.duration.map(|duration| duration.as_secs_f64()),
            failure: outcome.failure,
            maintenance,
            registry: Arc::new(crate::probe::metrics::Registry::default()),
        });
        super::log_change(name, change.as_ref(), at);
    }

    /// Unprobed check `name`'s last result when it was inside a
    /// maintenance window and its health did not follow it (a failure while
    /// not down, a success while not up): maintenance runs leave the streaks
    /// alone. Its owner enters it again once the window is over, if the
    /// check is still so then.
    pub fn held(&self, name: &str) -> Option<Outcome> {
        let slot = self.shared.unprobed_slot(name)?;
        let state = slot.lock();
        let last = state.last.as_ref()?;
        let followed = match state.machine.health {
            super::state::State::Up => last.success,
            super::state::State::Down => !last.success,
            _ => false,
        };
        (last.maintenance && !followed).then(|| Outcome {
            at: last.at,
            success: last.success,
            duration: None,
            failure: last.failure.clone(),
            maintenance: true,
        })
    }

    /// Shows unprobed check `name` with its owner's finer `status` (`new`,
    /// `late`, `started`…) and whether its owner has it paused.
    pub fn report_status(&self, name: &str, status: &'static str, paused: bool) {
        if let Some(slot) = self.shared.unprobed_slot(name) {
            let mut state = slot.lock();
            state.status = Some(status);
            state.paused_override = Some(paused);
        }
    }

    /// Stores unprobed check `name` as paused or resumed by its owner (the
    /// owner's own API), without asking the owner again.
    pub async fn record_paused(&self, name: &str, paused: bool) -> Result<(), StoreError> {
        match self.shared.unprobed_slot(name) {
            Some(slot) => self.shared.record_paused(&[slot], paused).await,
            None => Ok(()),
        }
    }
}
