//! Notifications from inside checkit (scheduled checks) enter the bridge
//! here: the same route → dedup → durable commit as a webhook, without HTTP.

use super::store::{Ingested, NewNotification, StoreError};
use super::{Bridge, Shared, dedup};
use crate::bridge::payload::Notification;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A handle that commits notifications to the bridge's outbox; cheap to clone.
#[derive(Clone)]
pub struct Submitter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Submitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submitter").finish_non_exhaustive()
    }
}

impl Bridge {
    /// A handle for sources inside the process.
    pub fn submitter(&self) -> Submitter {
        Submitter { shared: Arc::clone(&self.shared) }
    }
}

impl Submitter {
    /// Routes `notification`, commits it (unless it repeats one inside the
    /// dedup window) and wakes the workers. Returns once it is durable.
    pub async fn submit(&self, notification: Notification) -> Result<Ingested, StoreError> {
        let shared = &self.shared;
        let runtime = shared.runtime();
        let received_at = shared.clock.now();
        let deliveries = runtime.routing.route(&notification, received_at);
        let window = runtime.config.dedup_window.get();
        let dedup_key = (!window.is_zero()).then(|| dedup::key(&notification));
        let dedup_since = received_at - chrono::Duration::from_std(window).unwrap_or_default();
        let ingested = shared
            .store
            .ingest(NewNotification { received_at, notification, dedup_key, dedup_since, deliveries, message: None })
            .await?;
        match ingested {
            Ingested::Accepted { deliveries, .. } => {
                shared.metrics.notifications_accepted.inc();
                shared.rows_accepted.fetch_add(deliveries as u64, Ordering::Relaxed);
                shared.queue_depth.fetch_add(deliveries as u64, Ordering::Relaxed);
                if deliveries > 0 {
                    shared.wake.notify_waiters();
                }
            }
            Ingested::Duplicate => {
                shared.metrics.deduplicated.inc();
            }
        }
        Ok(ingested)
    }
}
