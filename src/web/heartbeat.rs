//! What pages add for heartbeats, the checks without a prober: the finer
//! status word (new, late, started) and, on a check page, the latest pings
//! with their bodies.

use super::{Ui, time_text};
use crate::checks::View;
use crate::checks::config::Kind;
use crate::checks::state::State as CheckState;
use minijinja::{Value, context};

/// Pings a check page lists.
const PAGE_PINGS: u32 = 20;

/// The heartbeat statuses the checks list can filter on beside the check states.
pub(super) const STATUSES: [&str; 3] = ["new", "late", "started"];

/// The state word of a row: a heartbeat's own status, else the check's state.
pub(super) fn state_word(view: &View) -> &'static str {
    match (view.check.kind, view.status) {
        (Kind::Heartbeat, Some(status)) if view.state != CheckState::Paused => status,
        _ => view.state.as_str(),
    }
}

/// People's words for the statuses only heartbeats have.
pub(super) fn status_text(view: &View) -> Option<&'static str> {
    match state_word(view) {
        "new" => Some("Waiting for the first ping"),
        "late" => Some("Late"),
        "started" => Some("Running"),
        _ => None,
    }
}

/// The latest pings of heartbeat `name`, for its check page (`None` when
/// it is no heartbeat or they cannot be read, which is logged).
pub(super) async fn pings(ui: &Ui, name: &str) -> Option<Vec<Value>> {
    let heartbeats = ui.services.heartbeats.as_deref().filter(|heartbeats| heartbeats.has(name))?;
    let pings = match heartbeats.pings(name, PAGE_PINGS).await {
        Ok(pings) => pings,
        Err(err) => {
            tracing::warn!(check = name, error = %err, "Cannot read the pings of a heartbeat.");
            return None;
        }
    };
    Some(
        pings
            .iter()
            .map(|ping| {
                context! {
                    at => ping.at.to_rfc3339(),
                    at_text => time_text(ping.at),
                    kind => ping.kind.as_str(),
                    exit_status => ping.exit_status,
                    rid => &ping.rid,
                    duration => ping.duration_seconds.map(|seconds| super::badge::format_millis(seconds * 1000.0)),
                    source => ping.source,
                    method => &ping.method,
                    remote_addr => &ping.remote_addr,
                    user_agent => &ping.user_agent,
                    // Escaped by the template like any other text.
                    body => &ping.body,
                    body_truncated => ping.body_truncated,
                }
            })
            .collect(),
    )
}
