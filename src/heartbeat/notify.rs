//! Heartbeat alerts as notifications: one Alertmanager-shaped alert per
//! (check, alert kind), firing when it starts and resolved when a good ping
//! (or a pause) ends it, handed to the bridge's durable intake so routes,
//! quiet hours, rate limits and channels apply as to any other alert.

use super::Entry;
use super::config::Config;
use super::state::{AlertKind, Record};
use crate::bridge::payload::{Alert, LabelSet, Notification, Status, fingerprint};
use chrono::{DateTime, SecondsFormat, Utc};

/// Where heartbeat alerts go: the bridge, or the log when no bridge runs.
#[derive(Clone)]
pub enum Notifier {
    /// Committed to the bridge's store and delivered by its outbox.
    Bridge(crate::bridge::Submitter),
    /// No bridge configured: alerts are logged (and visible on the API and
    /// `/metrics`) only.
    Log,
}

impl Notifier {
    /// Submits one notification; `Ok` means it was durably accepted.
    pub async fn submit(&self, notification: Notification) -> Result<(), String> {
        match self {
            Notifier::Bridge(submitter) => {
                submitter.submit(notification).await.map(|_| ()).map_err(|err| err.to_string())
            }
            Notifier::Log => {
                for alert in &notification.alerts {
                    tracing::warn!(
                        alertname = alert.name(),
                        check = alert.labels.get("check").map(String::as_str).unwrap_or(""),
                        status = alert.status.as_str(),
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
) -> Notification {
    let status = if ended.is_some() { Status::Resolved } else { Status::Firing };
    let mut annotations = LabelSet::new();
    annotations.insert("summary".into(), summary);
    let alert = Alert {
        status,
        fingerprint: fingerprint(&labels),
        labels: labels.clone(),
        annotations: annotations.clone(),
        starts_at: Some(since),
        ends_at: ended,
        generator_url: String::new(),
        silence_url: None,
        dashboard_url: None,
        panel_url: None,
        image_url: None,
        value_string: None,
    };
    let check = labels.get("check").cloned().unwrap_or_default();
    let alertname = labels.get("alertname").cloned().unwrap_or_default();
    Notification {
        version: "4".into(),
        receiver: config.receiver.clone(),
        status,
        alerts: vec![alert],
        group_labels: [("alertname".to_string(), alertname.clone()), ("check".to_string(), check.clone())].into(),
        common_labels: labels,
        common_annotations: annotations,
        external_url: String::new(),
        group_key: format!("{{}}:{{alertname=\"{alertname}\", check=\"{check}\"}}"),
        truncated_alerts: 0,
        notification_reason: None,
        route_labels: LabelSet::new(),
        title: None,
        message: None,
    }
}

fn labels(name: &str, kind: AlertKind, extra: &LabelSet) -> LabelSet {
    let mut labels = extra.clone();
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
) -> Notification {
    let labels = labels(&entry.check.name, kind, &entry.check.labels);
    build(config, labels, summary(entry, record, kind), since, ended)
}

/// The resolution of `kind` for a check that a reload removed.
pub(crate) fn removed(
    config: &Config,
    name: &str,
    kind: AlertKind,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Notification {
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
        let extra: LabelSet = [("team".to_string(), "ops".to_string())].into();
        let firing = build(&config, labels("backup", AlertKind::Missing, &extra), "s".into(), since, None);
        let resolved = build(&config, labels("backup", AlertKind::Missing, &extra), "s".into(), since, Some(since));
        assert_eq!(firing.status, Status::Firing);
        assert_eq!(resolved.status, Status::Resolved);
        assert_eq!(firing.alerts[0].fingerprint, resolved.alerts[0].fingerprint);
        assert_eq!(firing.alerts[0].labels["alertname"], "HeartbeatMissing");
        assert_eq!(firing.alerts[0].labels["team"], "ops");
        assert_eq!(firing.receiver, "heartbeats");
    }
}
