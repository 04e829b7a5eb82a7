//! The pipeline's one input: [`Submitter::submit`] commits a [`Batch`] of
//! events durably (notification row, outbox rows, dedup key, in one
//! transaction) before it returns. Every source enters here: the webhook
//! (`intake`), scheduled checks, and whatever comes next.
//!
//! ```text
//! let submitter = bridge.submitter();
//! match submitter.submit(Batch::single(event)).await {
//!     Ok(Submitted::Accepted { .. } | Submitted::Duplicate) => {} // committed (or already was)
//!     Err(err) => retry_later(err), // nothing was stored
//! }
//! ```

use super::event::{Batch, BatchError};
use super::store::{NewNotification, StoreError};
use super::{Shared, dedup};
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub use super::store::Ingested as Submitted;

/// Why a batch was not committed; nothing of it was stored.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The batch itself is unusable.
    #[error("{0}")]
    Batch(#[from] BatchError),
    /// The outbox holds `max_queue` rows already; retry later.
    #[error("outbox full ({max_queue} messages pending); retry later")]
    QueueFull {
        /// `bridge.max_queue`.
        max_queue: u64,
    },
    /// The store could not commit; retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(#[from] StoreError),
}

impl SubmitError {
    /// A bounded reason, for metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            SubmitError::Batch(_) => "malformed",
            SubmitError::QueueFull { .. } => "queue_full",
            SubmitError::Unavailable(_) => "unavailable",
        }
    }
}

/// A cheap handle on the pipeline's input, for sources that live apart from
/// the bridge (scheduled checks).
#[derive(Clone)]
pub struct Submitter(pub(super) Arc<Shared>);

impl std::fmt::Debug for Submitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submitter").finish_non_exhaustive()
    }
}

impl Submitter {
    /// Routes `batch`, then commits it with its outbox rows and wakes the
    /// workers; returns once the commit returned. An identical batch within
    /// `dedup_window` is [`Submitted::Duplicate`] and creates nothing.
    pub async fn submit(&self, batch: Batch) -> Result<Submitted, SubmitError> {
        submit(&self.0, batch).await
    }

    /// Who acknowledged alert `fingerprint`, while the acknowledgement is
    /// open (checks stop their reminders then).
    pub async fn acknowledged_by(&self, fingerprint: &str) -> Result<Option<String>, StoreError> {
        super::ack::acknowledged_by(&self.0, fingerprint).await
    }

    /// Closes the acknowledgements of alert `fingerprint`: its check resolved.
    pub async fn close_acknowledgements(&self, fingerprint: &str) -> Result<(), StoreError> {
        super::ack::close_for(&self.0, fingerprint).await
    }
}

pub(super) async fn submit(shared: &Shared, batch: Batch) -> Result<Submitted, SubmitError> {
    // The stored form is all the pipeline holds of a batch: routing and
    // dedup read its alerts one at a time (issue 13, defect 8).
    let notification = batch.into_encoded()?;
    let runtime = shared.runtime();
    let received_at = shared.clock.now();
    let unreadable = |err: serde_json::Error| BatchError::Unreadable(err.to_string());
    let deliveries = runtime.routing.route(&notification, received_at).map_err(unreadable)?;
    let window = runtime.config.dedup_window.get();
    let dedup_key = if window.is_zero() { None } else { Some(dedup::key(&notification).map_err(unreadable)?) };
    let dedup_since = received_at - chrono::Duration::from_std(window).unwrap_or_default();
    commit(shared, NewNotification { received_at, notification, dedup_key, dedup_since, deliveries, message: None })
        .await
}

/// The durable commit behind [`submit`], also for sources that choose their
/// recipients themselves (the message API, the "acknowledged by" note):
/// back-pressure, one transaction, counters, wake-up.
pub(super) async fn commit(shared: &Shared, new: NewNotification) -> Result<Submitted, SubmitError> {
    let max_queue = shared.runtime().config.max_queue;
    if shared.queue_depth.load(Ordering::Relaxed) >= max_queue {
        tracing::warn!(max_queue, "Refused a submission: the outbox is full.");
        return Err(SubmitError::QueueFull { max_queue });
    }
    let activity = super::activity::Accepted::of(&new.notification, &new.deliveries)
        .map_err(|err| BatchError::Unreadable(err.to_string()))?;
    let committed = shared.store.ingest(new).await?;
    match committed {
        Submitted::Accepted { notification_id, deliveries } => {
            activity.log(notification_id);
            shared.metrics.notifications_accepted.inc();
            shared.rows_accepted.fetch_add(deliveries as u64, Ordering::Relaxed);
            shared.queue_depth.fetch_add(deliveries as u64, Ordering::Relaxed);
            if deliveries > 0 {
                shared.wake.notify_waiters();
            }
        }
        Submitted::Duplicate => {
            shared.metrics.deduplicated.inc();
        }
    }
    Ok(committed)
}
