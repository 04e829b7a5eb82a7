//! The per-location breakdown of a check run by agents, for its check page:
//! each location's state (as the quorum counts it), its last result, and its
//! failures and uptime over the last 24 hours from the stored results.

use super::{badge, relative_text, time_text};
use crate::bridge::store::StoreError;
use crate::checks::View;
use crate::checks::state::State;
use crate::checks::store::CheckStore;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// One location's row.
#[derive(Debug, Serialize)]
pub(super) struct LocationRow {
    name: String,
    state: &'static str,
    state_text: &'static str,
    last_at: Option<String>,
    last_text: String,
    last_success: Option<bool>,
    failures: u64,
    runs: u64,
    uptime_text: String,
    last_failure_at: Option<String>,
    last_failure_text: String,
}

/// Every location of `view`'s check, in config order (none for a check not
/// run by agents).
pub(super) async fn rows(
    store: &CheckStore,
    id: i64,
    view: &View,
    now: DateTime<Utc>,
) -> Result<Vec<LocationRow>, StoreError> {
    if view.check.locations.is_empty() {
        return Ok(Vec::new());
    }
    let summaries = store.location_summaries(id, now - Duration::hours(24), now).await?;
    Ok(view
        .check
        .locations
        .iter()
        .map(|location| {
            let entry = view.locations.get(location);
            let state = entry.map_or(State::Unknown, |entry| entry.machine.health);
            let last_at = entry.and_then(|entry| entry.last_at);
            let summary = summaries.iter().find(|summary| summary.location == *location);
            let last_failure_at = summary.and_then(|summary| summary.last_failure_at);
            LocationRow {
                name: location.clone(),
                state: state.as_str(),
                state_text: match state {
                    State::Up => "Up",
                    State::Down => "Down",
                    _ => "Unknown",
                },
                last_at: last_at.map(|at| at.to_rfc3339()),
                last_text: last_at.map_or_else(|| "none yet".into(), |at| relative_text(at, now)),
                last_success: entry.and_then(|entry| entry.last_success),
                failures: summary.map_or(0, |summary| summary.failures),
                runs: summary.map_or(0, |summary| summary.runs),
                uptime_text: summary
                    .and_then(|summary| summary.uptime)
                    .map_or_else(|| "no data".into(), badge::format_percent),
                last_failure_at: last_failure_at.map(|at| at.to_rfc3339()),
                last_failure_text: last_failure_at.map_or_else(|| "none".into(), time_text),
            }
        })
        .collect())
}
