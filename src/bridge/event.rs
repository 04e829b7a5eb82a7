//! The pipeline's one input type: an [`Event`] (something that fires or
//! resolves), submitted in a [`Batch`] that says how its source grouped them.
//!
//! Every source turns what it received into events: the Alertmanager/Grafana
//! webhook ([`Batch::from_webhook`]), scheduled checks ([`Batch::single`]).
//! The pipeline keeps a batch as one [`Notification`] (its stored form), so
//! routing, dedup, quiet hours, rate limits, rendering and history treat every
//! source alike.

use super::payload::{self, Alert, Encoded, Grafana, LabelSet, Notification, Status};
use chrono::{DateTime, Utc};

/// Who reported an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An Alertmanager (`version` `"4"`, `"3"` or none) or Grafana (`"1"`)
    /// webhook, with the version it sent.
    Webhook {
        /// The body's `version`.
        version: String,
    },
    /// One of checkit's own scheduled checks.
    Check,
}

impl Source {
    /// The stored notification's `version`: the webhook's, else the source's name.
    fn version(&self) -> &str {
        match self {
            Source::Webhook { version } => version,
            Source::Check => "check",
        }
    }
}

/// Links a source may attach to an event, shown by templates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Links {
    /// Where the event comes from (Prometheus' expression, a check's page).
    pub generator_url: String,
    /// Grafana's links and values, when it sent any.
    pub grafana: Option<Box<Grafana>>,
}

/// Something that fires or resolves, from any source.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Who reported it.
    pub source: Source,
    /// Firing or resolved.
    pub status: Status,
    /// What it is about (`alertname`, `instance`, …); routes match on these.
    pub labels: LabelSet,
    /// Free text for people (`summary`, `description`, …).
    pub annotations: LabelSet,
    /// When it started, if known.
    pub starts_at: Option<DateTime<Utc>>,
    /// When it ended; `None` while it fires.
    pub ends_at: Option<DateTime<Utc>>,
    /// Identity across repeats; computed from the labels (as Alertmanager
    /// does) when `None`.
    pub fingerprint: Option<String>,
    /// Links for templates.
    pub links: Links,
}

/// How a source grouped its events; every field may stay at its default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// The receiver the source addressed (Alertmanager's receiver name).
    pub receiver: String,
    /// The source's group key; when empty (and the source is not a webhook),
    /// one is made from the source and the events' fingerprints, so an
    /// identical repeat is deduplicated.
    pub key: String,
    /// Values of the grouping labels.
    pub labels: LabelSet,
    /// The group's status; `None`: firing when any event fires.
    pub status: Option<Status>,
    /// Labels shared by every event; `None`: computed.
    pub common_labels: Option<LabelSet>,
    /// Annotations shared by every event; `None`: computed.
    pub common_annotations: Option<LabelSet>,
    /// The source's own URL (Alertmanager's external URL).
    pub external_url: String,
    /// Events the source left out (Alertmanager's `max_alerts`).
    pub truncated: u64,
    /// Why the source sent this (Alertmanager 0.32+).
    pub reason: Option<String>,
    /// Labels set on the source's route (Alertmanager 0.34+).
    pub route_labels: LabelSet,
    /// A rendered title, when the source sends one (Grafana).
    pub title: Option<String>,
}

/// Events submitted together, in one [`super::Bridge::submit`].
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// How the source grouped them.
    pub group: Group,
    /// The events, in the source's order; all from one source.
    pub events: Vec<Event>,
    /// A webhook's notification, kept whole (`group` and `events` stay
    /// empty): turning 100,000 alerts into events and back held two copies
    /// of them at once (issue 13, defect 8).
    webhook: Option<(Source, Webhook)>,
}

impl Batch {
    /// One event on its own (a check changing state).
    pub fn single(event: Event) -> Batch {
        Batch { group: Group::default(), events: vec![event], webhook: None }
    }

    /// The events of a parsed Alertmanager/Grafana webhook body.
    pub fn from_webhook(notification: Notification) -> Batch {
        let source = Source::Webhook { version: notification.version.clone() };
        Batch { group: Group::default(), events: Vec::new(), webhook: Some((source, Webhook::Parsed(notification))) }
    }

    /// A webhook body already in its stored form ([`payload::parse_encoded`]).
    pub fn from_encoded(encoded: Encoded) -> Batch {
        let source = Source::Webhook { version: encoded.head().version.clone() };
        Batch { group: Group::default(), events: Vec::new(), webhook: Some((source, Webhook::Encoded(encoded))) }
    }

    /// The events of an Alertmanager-shaped `notification` from `source`,
    /// with its grouping kept (group key, receiver and reason take part in
    /// dedup, so a check's reminders stay distinct).
    pub fn from_notification(notification: Notification, source: Source) -> Batch {
        let events = notification
            .alerts
            .into_iter()
            .map(|alert| Event {
                source: source.clone(),
                status: alert.status,
                labels: alert.labels,
                annotations: alert.annotations,
                starts_at: alert.starts_at,
                ends_at: alert.ends_at,
                fingerprint: Some(alert.fingerprint),
                links: Links { generator_url: alert.generator_url, grafana: alert.grafana },
            })
            .collect();
        let group = Group {
            receiver: notification.receiver,
            key: notification.group_key,
            labels: notification.group_labels,
            status: Some(notification.status),
            common_labels: Some(notification.common_labels),
            common_annotations: Some(notification.common_annotations),
            external_url: notification.external_url,
            truncated: notification.truncated_alerts,
            reason: notification.notification_reason,
            route_labels: notification.route_labels,
            title: notification.title,
        };
        Batch { group, events, webhook: None }
    }

    /// The one source of every event; `None` for an empty batch.
    pub fn source(&self) -> Result<Option<&Source>, BatchError> {
        if let Some((source, _)) = &self.webhook {
            return Ok(Some(source));
        }
        let mut sources = self.events.iter().map(|event| &event.source);
        let first = sources.next();
        match first {
            Some(first) if sources.any(|other| other != first) => Err(BatchError::MixedSources),
            _ => Ok(first),
        }
    }

    /// The stored form: one notification with one alert per event.
    pub fn into_notification(self) -> Result<Notification, BatchError> {
        match self.webhook {
            Some((_, Webhook::Parsed(notification))) => return Ok(notification),
            Some((_, Webhook::Encoded(encoded))) => {
                return encoded.decode().map_err(|err| BatchError::Unreadable(err.to_string()));
            }
            None => {}
        }
        let source = self.source()?.cloned().unwrap_or(Source::Webhook { version: String::new() });
        let alerts: Vec<Alert> = self
            .events
            .into_iter()
            .map(|event| Alert {
                fingerprint: event.fingerprint.unwrap_or_else(|| payload::fingerprint(&event.labels)),
                status: event.status,
                labels: event.labels,
                annotations: event.annotations,
                starts_at: event.starts_at,
                ends_at: event.ends_at,
                generator_url: event.links.generator_url,
                grafana: event.links.grafana,
            })
            .collect();
        let group = self.group;
        let status = group.status.unwrap_or_else(|| {
            if alerts.iter().any(|alert| alert.status == Status::Firing) { Status::Firing } else { Status::Resolved }
        });
        // A webhook's key is kept as sent, even empty (Grafana's may be).
        let key = if group.key.is_empty() && !matches!(source, Source::Webhook { .. }) {
            let mut fingerprints: Vec<&str> = alerts.iter().map(|alert| alert.fingerprint.as_str()).collect();
            fingerprints.sort_unstable();
            format!("{}:{}", source.version(), fingerprints.join(","))
        } else {
            group.key
        };
        let common_labels = group.common_labels.unwrap_or_else(|| common(alerts.iter().map(|alert| &alert.labels)));
        let common_annotations =
            group.common_annotations.unwrap_or_else(|| common(alerts.iter().map(|alert| &alert.annotations)));
        Ok(Notification {
            version: source.version().to_string(),
            receiver: group.receiver,
            status,
            alerts,
            group_labels: group.labels,
            common_labels,
            common_annotations,
            external_url: group.external_url,
            group_key: key,
            truncated_alerts: group.truncated,
            notification_reason: group.reason,
            route_labels: group.route_labels,
            title: group.title,
            // Only the message API carries a message, and it commits directly.
            message: None,
        })
    }
}

/// A webhook's notification as the batch keeps it.
#[derive(Debug, Clone, PartialEq)]
enum Webhook {
    Parsed(Notification),
    Encoded(Encoded),
}

impl Batch {
    /// The stored form, which the pipeline routes and commits: a webhook
    /// parsed straight into it stays as it is.
    pub fn into_encoded(self) -> Result<Encoded, BatchError> {
        if let Some((_, Webhook::Encoded(encoded))) = self.webhook {
            return Ok(encoded);
        }
        Encoded::new(self.into_notification()?).map_err(|err| BatchError::Unreadable(err.to_string()))
    }
}

/// The pairs every set shares.
fn common<'a>(mut sets: impl Iterator<Item = &'a LabelSet>) -> LabelSet {
    let Some(first) = sets.next() else {
        return LabelSet::new();
    };
    let mut shared = first.clone();
    for set in sets {
        shared.retain(|name, value| set.get(name) == Some(value));
    }
    shared
}

/// Why a batch cannot be submitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// One batch holds events of different sources.
    #[error("one batch must hold events of one source")]
    MixedSources,
    /// The notification cannot be written or read in its stored form.
    #[error("cannot encode the notification: {0}")]
    Unreadable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(labels: &[(&str, &str)], status: Status) -> Event {
        Event {
            source: Source::Check,
            status,
            labels: labels.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect(),
            annotations: LabelSet::new(),
            starts_at: None,
            ends_at: None,
            fingerprint: None,
            links: Links::default(),
        }
    }

    #[test]
    fn every_captured_webhook_survives_the_trip_through_events() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/alertmanager");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).expect("fixtures") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|extension| extension != "json") {
                continue;
            }
            let Ok(notification) = payload::parse(&std::fs::read(&path).expect("read"), Utc::now()) else {
                continue;
            };
            let source = Source::Webhook { version: notification.version.clone() };
            let back = Batch::from_notification(notification.clone(), source).into_notification().expect("one source");
            assert_eq!(back, notification, "{}", path.display());
            let kept = Batch::from_webhook(notification.clone()).into_notification().expect("one source");
            assert_eq!(kept, notification, "{}", path.display());
            checked += 1;
        }
        assert!(checked >= 3, "only {checked} fixtures parsed");
    }

    #[test]
    fn a_single_event_gets_a_fingerprint_a_key_and_common_labels() {
        let notification =
            Batch::single(event(&[("alertname", "Down"), ("instance", "a")], Status::Firing)).into_notification();
        let notification = notification.expect("one source");
        let fingerprint = payload::fingerprint(&notification.alerts[0].labels);
        assert_eq!(notification.alerts[0].fingerprint, fingerprint);
        assert_eq!(notification.group_key, format!("check:{fingerprint}"));
        assert_eq!(notification.version, "check");
        assert_eq!(notification.status, Status::Firing);
        assert_eq!(notification.common_labels.get("instance").map(String::as_str), Some("a"));
    }

    #[test]
    fn status_and_common_labels_follow_the_events() {
        let batch = Batch {
            group: Group::default(),
            webhook: None,
            events: vec![
                event(&[("alertname", "Down"), ("instance", "a")], Status::Resolved),
                event(&[("alertname", "Down"), ("instance", "b")], Status::Resolved),
            ],
        };
        let notification = batch.into_notification().expect("one source");
        assert_eq!(notification.status, Status::Resolved);
        assert_eq!(notification.common_labels.keys().collect::<Vec<_>>(), ["alertname"]);
    }

    #[test]
    fn mixed_sources_are_refused() {
        let mut other = event(&[("alertname", "X")], Status::Firing);
        other.source = Source::Webhook { version: "4".into() };
        let batch = Batch {
            group: Group::default(),
            events: vec![event(&[("alertname", "X")], Status::Firing), other],
            webhook: None,
        };
        assert_eq!(batch.into_notification(), Err(BatchError::MixedSources));
    }
}
