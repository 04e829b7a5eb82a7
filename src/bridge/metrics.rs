//! The bridge's `checkit_bridge_*` metric families, registered once into the
//! long-lived registry served on `/metrics`. Label values are bounded: channel
//! kinds, outcome and reason names, never error text or contact names.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

/// Every metric name the bridge exposes (as scraped, with suffixes).
pub const METRIC_NAMES: &[&str] = &[
    "checkit_bridge_webhooks_received_total",
    "checkit_bridge_webhooks_rejected_total",
    "checkit_bridge_notifications_accepted_total",
    "checkit_bridge_notifications_deduplicated_total",
    "checkit_bridge_deliveries_total",
    "checkit_bridge_delivery_failures_total",
    "checkit_bridge_queue_depth",
    "checkit_bridge_queue_oldest_pending_age_seconds",
    "checkit_bridge_quiet_hours_held_total",
    "checkit_bridge_rate_limited_total",
    "checkit_bridge_delivery_latency_seconds",
    "checkit_bridge_delivery_attempt_duration_seconds",
];

/// Why a webhook was refused.
pub const REJECT_REASONS: &[&str] =
    &["unauthorized", "too_large", "malformed", "unsupported_version", "queue_full", "busy", "unavailable"];

/// Delivery outcomes counted per channel.
pub const DELIVERY_OUTCOMES: &[&str] = &["sent", "failed", "dead", "skipped"];

/// `{reason="…"}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// A bounded reason name.
    pub reason: &'static str,
}

/// `{channel="…", outcome="…"}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// Channel kind.
    pub channel: &'static str,
    /// Outcome name.
    pub outcome: &'static str,
}

/// `{channel="…", reason="…"}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// Channel kind.
    pub channel: &'static str,
    /// A `channels::Reason` name.
    pub reason: &'static str,
}

/// `{channel="…"}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    /// Channel kind.
    pub channel: &'static str,
}

/// `{state="…"}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// Outbox state.
    pub state: &'static str,
}

type HistogramFamily = Family<ChannelLabels, Histogram, fn() -> Histogram>;

/// The bridge's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Every POST to the webhook.
    pub webhooks_received: Counter,
    /// Refused webhooks by reason.
    pub webhooks_rejected: Family<ReasonLabels, Counter>,
    /// Notifications committed.
    pub notifications_accepted: Counter,
    /// Notifications dropped as duplicates (HA peer or retry).
    pub deduplicated: Counter,
    /// Delivery outcomes.
    pub deliveries: Family<DeliveryLabels, Counter>,
    /// Failed delivery attempts by channel and reason.
    pub delivery_failures: Family<FailureLabels, Counter>,
    /// Outbox rows by state.
    pub queue_depth: Family<StateLabels, Gauge>,
    /// Age of the oldest pending row.
    pub oldest_pending_age: Gauge<f64, AtomicU64>,
    /// Messages held by quiet hours.
    pub held: Family<ChannelLabels, Counter>,
    /// Messages deferred by a rate limit.
    pub rate_limited: Family<ChannelLabels, Counter>,
    /// From webhook to delivered, for messages sent without hold, limit or delay.
    pub delivery_latency: HistogramFamily,
    /// One attempt's duration.
    pub attempt_duration: HistogramFamily,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Metrics {
    /// Creates the families and registers them into `registry`.
    pub fn register(registry: &mut Registry, channels: &[&'static str]) -> Metrics {
        let metrics = Metrics {
            webhooks_received: Counter::default(),
            webhooks_rejected: Family::default(),
            notifications_accepted: Counter::default(),
            deduplicated: Counter::default(),
            deliveries: Family::default(),
            delivery_failures: Family::default(),
            queue_depth: Family::default(),
            oldest_pending_age: Gauge::default(),
            held: Family::default(),
            rate_limited: Family::default(),
            delivery_latency: Family::new_with_constructor(latency_histogram),
            attempt_duration: Family::new_with_constructor(latency_histogram),
        };
        // Pre-create bounded series so they exist before the first event.
        for reason in REJECT_REASONS {
            let _ = metrics.webhooks_rejected.get_or_create(&ReasonLabels { reason });
        }
        for state in ["pending", "held", "limited"] {
            let _ = metrics.queue_depth.get_or_create(&StateLabels { state });
        }
        for channel in channels {
            let labels = ChannelLabels { channel };
            let _ = metrics.held.get_or_create(&labels);
            let _ = metrics.rate_limited.get_or_create(&labels);
            let _ = metrics.delivery_latency.get_or_create(&labels);
            let _ = metrics.attempt_duration.get_or_create(&labels);
            for outcome in DELIVERY_OUTCOMES {
                let _ = metrics.deliveries.get_or_create(&DeliveryLabels { channel, outcome });
            }
            for reason in super::channels::Reason::ALL {
                let _ = metrics.delivery_failures.get_or_create(&FailureLabels { channel, reason: reason.as_str() });
            }
        }
        registry.register(
            "checkit_bridge_webhooks_received",
            "Webhook requests received",
            metrics.webhooks_received.clone(),
        );
        registry.register(
            "checkit_bridge_webhooks_rejected",
            "Webhook requests refused, by reason",
            metrics.webhooks_rejected.clone(),
        );
        registry.register(
            "checkit_bridge_notifications_accepted",
            "Notifications committed to storage",
            metrics.notifications_accepted.clone(),
        );
        registry.register(
            "checkit_bridge_notifications_deduplicated",
            "Notifications ignored because the same one arrived within the dedup window",
            metrics.deduplicated.clone(),
        );
        registry.register(
            "checkit_bridge_deliveries",
            "Delivery attempts and decisions by channel and outcome",
            metrics.deliveries.clone(),
        );
        registry.register(
            "checkit_bridge_delivery_failures",
            "Failed delivery attempts by channel and reason",
            metrics.delivery_failures.clone(),
        );
        registry.register(
            "checkit_bridge_queue_depth",
            "Outbox messages not yet finished, by state",
            metrics.queue_depth.clone(),
        );
        registry.register_with_unit(
            "checkit_bridge_queue_oldest_pending_age",
            "Age of the oldest pending outbox message",
            Unit::Seconds,
            metrics.oldest_pending_age.clone(),
        );
        registry.register(
            "checkit_bridge_quiet_hours_held",
            "Messages held by a contact's quiet hours",
            metrics.held.clone(),
        );
        registry.register(
            "checkit_bridge_rate_limited",
            "Messages deferred by a rate limit",
            metrics.rate_limited.clone(),
        );
        registry.register_with_unit(
            "checkit_bridge_delivery_latency",
            "Time from webhook receipt to delivery, for messages not held, limited or delayed",
            Unit::Seconds,
            metrics.delivery_latency.clone(),
        );
        registry.register_with_unit(
            "checkit_bridge_delivery_attempt_duration",
            "Duration of one delivery attempt",
            Unit::Seconds,
            metrics.attempt_duration.clone(),
        );
        metrics
    }

    /// Counts a refused webhook.
    pub fn reject(&self, reason: &'static str) {
        self.webhooks_rejected.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Counts a failed delivery attempt.
    pub fn delivery_failure(&self, channel: &'static str, reason: super::channels::Reason) {
        self.delivery_failures.get_or_create(&FailureLabels { channel, reason: reason.as_str() }).inc();
    }

    /// Counts a delivery outcome.
    pub fn delivery(&self, channel: &'static str, outcome: &'static str) {
        self.deliveries.get_or_create(&DeliveryLabels { channel, outcome }).inc();
    }
}
