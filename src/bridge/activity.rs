//! One info line per accepted notification and per delivery outcome, so an
//! operator can follow alerts through the bridge in the log alone. Lines name
//! the receiver, contact, channel and alert names; never an address, a
//! token or message text.

use super::payload::{Notification, Status};
use super::store::{AlertRef, NewDelivery};

/// Alert names shown in one log line; the rest are counted.
const SHOWN_NAMES: usize = 5;

/// Distinct alert names in order of appearance, `A, B (+3 more)`.
pub fn alert_names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    // A set beside the list: a notification may hold 100,000 names.
    let mut seen = std::collections::HashSet::new();
    let mut distinct: Vec<&str> = Vec::new();
    for name in names {
        if seen.insert(name) {
            distinct.push(name);
        }
    }
    let hidden = distinct.len().saturating_sub(SHOWN_NAMES);
    let mut text = distinct.into_iter().take(SHOWN_NAMES).collect::<Vec<_>>().join(", ");
    if hidden > 0 {
        text.push_str(&format!(" (+{hidden} more)"));
    }
    text
}

/// What an accepted notification's log line says, taken before the
/// notification moves into the store.
pub struct Accepted {
    receiver: String,
    status: &'static str,
    alerts: String,
    to: String,
}

impl Accepted {
    /// Summarises `notification` and whom `deliveries` address.
    pub fn of(notification: &Notification, deliveries: &[NewDelivery]) -> Accepted {
        let to = deliveries.iter().map(|delivery| format!("{}/{}", delivery.contact, delivery.channel));
        Accepted {
            receiver: notification.receiver.clone(),
            status: status(notification.status),
            alerts: alert_names(notification.alerts.iter().map(|alert| alert_name(&alert.labels))),
            to: to.collect::<Vec<_>>().join(", "),
        }
    }

    /// Logs the notification the store committed as `notification_id`.
    pub fn log(&self, notification_id: i64) {
        tracing::info!(
            notification = notification_id,
            receiver = %self.receiver,
            status = self.status,
            alerts = %self.alerts,
            to = %self.to,
            "Accepted a notification."
        );
    }
}

/// Logs a message the provider accepted.
pub fn sent(contact: &str, channel: &str, alerts: &[AlertRef], attempt: u32) {
    let names = alert_names(alerts.iter().map(|alert| alert.alertname.as_str()));
    tracing::info!(contact, channel, alerts = %names, attempt, "Delivered a message.");
}

/// Logs a failed attempt that will be retried (dead letters log a warning of their own).
pub fn failed(contact: &str, channel: &str, alerts: &[AlertRef], attempt: u32, error: &str) {
    let names = alert_names(alerts.iter().map(|alert| alert.alertname.as_str()));
    tracing::info!(contact, channel, alerts = %names, attempt, error, "Delivery attempt failed; will retry.");
}

fn alert_name(labels: &super::payload::LabelSet) -> &str {
    labels.get("alertname").map(String::as_str).unwrap_or("")
}

fn status(status: Status) -> &'static str {
    match status {
        Status::Firing => "firing",
        Status::Resolved => "resolved",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_bounded() {
        assert_eq!(alert_names(["A", "B", "A"]), "A, B");
        assert_eq!(alert_names(["1", "2", "3", "4", "5", "6", "7"]), "1, 2, 3, 4, 5 (+2 more)");
        assert_eq!(alert_names([]), "");
    }
}
