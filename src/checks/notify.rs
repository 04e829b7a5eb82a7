//! A check's transitions as notifications: `CheckDown` firing when it goes
//! down (and as a reminder every `repeat_interval`), resolved with the
//! outage's duration when it comes back. They enter the bridge like any
//! Alertmanager notification, so routes, contacts, quiet hours, rate limits,
//! dedup and delivery history apply unchanged.
//!
//! [`submit`] is the one place that hands an event to the notification
//! pipeline.

use super::config::Check;
use super::state::Incident;
use crate::bridge::event::{Batch, Source};
use crate::bridge::payload::{Alert, LabelSet, Notification, Status};
use crate::bridge::submit::Submitter;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// The `alertname` of every check notification.
pub const ALERTNAME: &str = "CheckDown";
/// The `receiver` of check notifications (shown in delivery history).
pub const RECEIVER: &str = "checkit-checks";

/// What is being announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The check went down.
    Down,
    /// Still down after `repeat_interval`; `n` counts reminders.
    Reminder(u32),
    /// The check is up again.
    Resolved,
}

/// Formats a duration as `1h2m3s` (seconds resolution).
pub fn human_duration(duration: chrono::Duration) -> String {
    let total = duration.num_seconds().max(0);
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, _) => format!("{minutes}m{seconds}s"),
        _ => format!("{hours}h{minutes}m{seconds}s"),
    }
}

/// The notification for `kind` of `incident` of `check`, built at `now`.
pub fn notification(check: &Check, incident: &Incident, kind: Kind, now: DateTime<Utc>) -> Notification {
    let mut labels = LabelSet::new();
    labels.extend(check.labels.iter().map(|(name, value)| (name.clone(), value.clone())));
    labels.insert("alertname".into(), ALERTNAME.into());
    labels.insert("check".into(), check.name.clone());
    labels.insert("target".into(), check.target.clone());
    labels.insert("module".into(), check.module.clone());
    labels.insert("severity".into(), check.severity.clone());
    let status = if kind == Kind::Resolved { Status::Resolved } else { Status::Firing };
    let mut annotations = LabelSet::new();
    let outage = human_duration(incident.duration(now));
    let summary = match kind {
        Kind::Down => format!("{} is down", check.name),
        Kind::Reminder(_) => format!("{} is still down (for {outage})", check.name),
        Kind::Resolved => format!("{} is up again after {outage}", check.name),
    };
    annotations.insert("summary".into(), summary);
    annotations.insert(
        "description".into(),
        format!(
            "The {} check of {} failed in phase {} ({}) since {}.",
            check.module,
            check.target,
            incident.phase,
            incident.reason,
            incident.started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    );
    annotations.insert("phase".into(), incident.phase.clone());
    annotations.insert("reason".into(), incident.reason.clone());
    if kind == Kind::Resolved {
        annotations.insert("outage_duration".into(), outage);
        annotations.insert("outage_seconds".into(), incident.duration(now).num_seconds().to_string());
    }
    let ends_at = incident.ended_at.filter(|_| kind == Kind::Resolved);
    // Part of the dedup key: each reminder is a new notification.
    let reason = match kind {
        Kind::Down => "firing".into(),
        Kind::Reminder(n) => format!("reminder {n}"),
        Kind::Resolved => "resolved".into(),
    };
    single(labels, annotations, status, (incident.started_at, ends_at), ("check", &check.name), reason)
}

/// A notification of one alert, grouped by the one label `group`.
fn single(
    labels: LabelSet,
    annotations: LabelSet,
    status: Status,
    (starts_at, ends_at): (DateTime<Utc>, Option<DateTime<Utc>>),
    group: (&str, &str),
    reason: String,
) -> Notification {
    let alert = Alert {
        starts_at: Some(starts_at),
        ends_at,
        ..Alert::local(status, labels.clone(), annotations.clone(), fingerprint(&labels))
    };
    Notification {
        version: "4".into(),
        receiver: RECEIVER.into(),
        status,
        alerts: vec![alert],
        group_labels: [(group.0.to_string(), group.1.to_string())].into_iter().collect(),
        common_labels: labels,
        common_annotations: annotations,
        external_url: String::new(),
        group_key: format!("{{}}:{{{}=\"{}\"}}", group.0, group.1),
        truncated_alerts: 0,
        notification_reason: Some(reason),
        route_labels: LabelSet::new(),
        title: None,
        message: None,
    }
}

/// The `alertname` of an agent that stopped reporting.
pub const AGENT_SILENT: &str = "AgentSilent";

/// `AgentSilent` for `agent`: firing since `since`, or resolved at `ended`.
pub fn agent_silent(
    agent: &super::config::Agent,
    since: DateTime<Utc>,
    ended: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Notification {
    let mut labels = LabelSet::new();
    labels.insert("alertname".into(), AGENT_SILENT.into());
    labels.insert("agent".into(), agent.name.clone());
    labels.insert("location".into(), agent.location.clone());
    labels.insert("severity".into(), "warning".into());
    let silent_for = human_duration(ended.unwrap_or(now) - since);
    let summary = match ended {
        None => format!(
            "agent {} ({}) has not reported since {}",
            agent.name,
            agent.location,
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        Some(_) => format!("agent {} ({}) reports again after {silent_for}", agent.name, agent.location),
    };
    let annotations: LabelSet = [
        ("summary".to_string(), summary),
        (
            "description".to_string(),
            format!(
                "Checks at location {} count this location as unknown, not failing, until it reports.",
                agent.location
            ),
        ),
    ]
    .into_iter()
    .collect();
    let (status, reason) = if ended.is_some() { (Status::Resolved, "resolved") } else { (Status::Firing, "firing") };
    single(labels, annotations, status, (since, ended), ("agent", &agent.name), reason.into())
}

/// 16 hex characters identifying a label set, like Alertmanager's.
fn fingerprint(labels: &LabelSet) -> String {
    let mut hasher = Sha256::new();
    for (name, value) in labels {
        hasher.update(name.as_bytes());
        hasher.update([0xff]);
        hasher.update(value.as_bytes());
        hasher.update([0xff]);
    }
    hex::encode(&hasher.finalize()[..8])
}

/// Hands `notification` to the notification pipeline as a batch of check
/// events; returns once durable.
pub async fn submit(pipeline: &Submitter, notification: Notification) -> Result<(), String> {
    let batch = Batch::from_notification(notification, Source::Check);
    pipeline.submit(batch).await.map(|_| ()).map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn resolved_notifications_carry_the_outage_and_the_cause() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let check = Check {
            name: "web".into(),
            kind: crate::checks::config::Kind::Probe,
            module: "http_2xx".into(),
            target: "http://127.0.0.1/".into(),
            interval: std::time::Duration::from_secs(60),
            labels: [("team".to_string(), "ops".to_string())].into(),
            paused: false,
            failures_before_down: 2,
            successes_before_up: 1,
            notify: true,
            repeat_interval: std::time::Duration::ZERO,
            severity: "critical".into(),
            maintenance: Vec::new(),
            locations: Vec::new(),
            down_when: 0,
        };
        let incident = Incident {
            id: Some(1),
            started_at: start,
            ended_at: Some(start + chrono::Duration::seconds(3723)),
            phase: "connect".into(),
            reason: "refused".into(),
            notified_at: Some(start),
        };
        let firing = notification(&check, &incident, Kind::Down, start);
        let resolved = notification(&check, &incident, Kind::Resolved, start + chrono::Duration::hours(2));
        let alert = &resolved.alerts[0];
        assert_eq!(alert.status, Status::Resolved);
        assert_eq!(alert.annotations.get("outage_duration").unwrap(), "1h2m3s");
        assert_eq!(alert.labels.get("team").unwrap(), "ops");
        assert_eq!(alert.labels.get("alertname").unwrap(), "CheckDown");
        assert_eq!(alert.fingerprint, firing.alerts[0].fingerprint, "one alert, firing then resolved");
        assert_eq!(firing.alerts[0].ends_at, None);
        assert_eq!(human_duration(chrono::Duration::seconds(59)), "59s");
    }
}
