//! Heartbeat alerts as notifications: one Alertmanager-shaped alert per
//! (check, alert kind), firing when it starts and resolved when a good ping
//! (or a pause) ends it, handed to the bridge's durable intake so routes,
//! quiet hours, rate limits and channels apply as to any other alert.

use super::Entry;
use super::config::Config;
use super::state::{AlertKind, Record};
use crate::bridge::event::{Batch, Event, Group, Links, Source};
use crate::bridge::payload::{LabelSet, Status};
use chrono::{DateTime, SecondsFormat, Utc};

/// Where heartbeat alerts go: the bridge, or the log when no bridge runs.
#[derive(Clone)]
pub enum Notifier {
    /// Committed to the bridge's store and delivered by its outbox.
    Bridge(crate::bridge::submit::Submitter),
    /// No bridge configured: alerts are logged (and visible on the API and
    /// `/metrics`) only.
    Log,
}

impl Notifier {
    /// Submits one batch; `Ok` means it was durably accepted (or already
    /// was). On an error nothing was stored and the caller retries.
    pub async fn submit(&self, batch: Batch) -> Result<(), String> {
        match self {
            Notifier::Bridge(submitter) => submitter.submit(batch).await.map(|_| ()).map_err(|err| err.to_string()),
            Notifier::Log => {
                for event in &batch.events {
                    let label = |name: &str| event.labels.get(name).cloned().unwrap_or_default();
                    tracing::warn!(
                        alertname = label("alertname"),
                        check = label("check"),
                        status = event.status.as_str(),
                        "Heartbeat alert (no bridge configured to deliver it)."
                    );
                }
                Ok(())
            }
        }
    }
}

fn when(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn summary(entry: &Entry, record: &Record, kind: AlertKind) -> String {
    let name = &entry.check.name;
    match kind {
        AlertKind::Missing => match (record.open_runs.first(), record.last_ping) {
            (Some(run), _) => format!("{name}: the run started at {} has not finished", when(run.started_at)),
            (None, Some(last)) => format!("{name}: no ping since {}", when(last)),
            (None, None) => format!("{name}: never pinged"),
        },
        AlertKind::Failed => match record.failed_at {
            Some(at) => format!("{name}: the run reported failure at {}", when(at)),
            None => format!("{name}: the run reported failure"),
        },
        AlertKind::TooOften => format!("{name}: ran again sooner than its min_interval"),
    }
}

fn build(
    config: &Config,
    labels: LabelSet,
    summary: String,
    since: DateTime<Utc>,
    ended: Option<DateTime<Utc>>,
) -> Batch {
    let status = if ended.is_some() { Status::Resolved } else { Status::Firing };
    let group_labels = ["alertname", "check"]
        .into_iter()
        .filter_map(|name| labels.get(name).map(|value| (name.to_string(), value.clone())))
        .collect();
    let event = Event {
        source: Source::Check,
        status,
        labels,
        annotations: [("summary".to_string(), summary)].into_iter().collect(),
        starts_at: Some(since),
        ends_at: ended,
        fingerprint: None,
        links: Links::default(),
    };
    let mut batch = Batch::single(event);
    batch.group = Group { receiver: config.receiver.clone(), labels: group_labels, ..Group::default() };
    batch
}

fn labels<'a>(name: &str, kind: AlertKind, extra: impl IntoIterator<Item = (&'a String, &'a String)>) -> LabelSet {
    let mut labels: LabelSet = extra.into_iter().map(|(name, value)| (name.clone(), value.clone())).collect();
    labels.insert("alertname".into(), kind.alertname().into());
    labels.insert("check".into(), name.into());
    labels
}

/// The notification for `kind` of `entry`: firing since `since`, or resolved
/// at `ended`.
pub(crate) fn notification(
    config: &Config,
    entry: &Entry,
    record: &Record,
    kind: AlertKind,
    since: DateTime<Utc>,
    ended: Option<DateTime<Utc>>,
) -> Batch {
    let labels = labels(&entry.check.name, kind, &entry.check.labels);
    build(config, labels, summary(entry, record, kind), since, ended)
}

/// The resolution of `kind` for a check that a reload removed.
pub(crate) fn removed(config: &Config, name: &str, kind: AlertKind, since: DateTime<Utc>, now: DateTime<Utc>) -> Batch {
    let labels = labels(name, kind, &LabelSet::new());
    build(config, labels, format!("{name}: removed from the config"), since, Some(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn firing_and_resolved_share_the_fingerprint() {
        let config = Config::default();
        let since = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let extra: LabelSet = [("team".to_string(), "ops".to_string())].into_iter().collect();
        let firing = build(&config, labels("backup", AlertKind::Missing, &extra), "s".into(), since, None);
        let resolved = build(&config, labels("backup", AlertKind::Missing, &extra), "s".into(), since, Some(since));
        let (firing, resolved) = (firing.into_notification().unwrap(), resolved.into_notification().unwrap());
        assert_eq!(firing.status, Status::Firing);
        assert_eq!(resolved.status, Status::Resolved);
        assert_eq!(firing.alerts[0].fingerprint, resolved.alerts[0].fingerprint);
        assert_eq!(firing.alerts[0].labels.get("alertname").unwrap(), "HeartbeatMissing");
        assert_eq!(firing.alerts[0].labels.get("team").unwrap(), "ops");
        assert_eq!(firing.receiver, "heartbeats");
        assert_eq!(firing.group_labels.len(), 2);
    }
}
