//! One info line per accepted notification and per delivery outcome, so an
//! operator can follow alerts through the bridge in the log alone. Lines name
//! the receiver, contact, channel and alert names; never an address, a
//! token or message text.

use super::payload::{AlertList, Status};
use super::store::{AlertRef, NewDelivery};

/// Alert names shown in one log line; the rest are counted.
const SHOWN_NAMES: usize = 5;

/// Distinct alert names in order of appearance, `A, B (+3 more)`.
pub fn alert_names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut distinct = Names::default();
    names.into_iter().for_each(|name| distinct.add(name));
    distinct.text()
}

/// Distinct names as they come: the first few kept to show, the rest only
/// counted (a set beside them: a notification may hold 100,000 names).
#[derive(Default)]
struct Names {
    seen: std::collections::HashSet<String>,
    shown: Vec<String>,
}

impl Names {
    fn add(&mut self, name: &str) {
        if !self.seen.contains(name) {
            self.seen.insert(name.to_string());
            if self.shown.len() < SHOWN_NAMES {
                self.shown.push(name.to_string());
            }
        }
    }

    fn text(&self) -> String {
        let hidden = self.seen.len().saturating_sub(self.shown.len());
        let mut text = self.shown.join(", ");
        if hidden > 0 {
            text.push_str(&format!(" (+{hidden} more)"));
        }
        text
    }
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
    pub fn of<L: AlertList>(notification: &L, deliveries: &[NewDelivery]) -> Result<Accepted, L::Error> {
        let to = deliveries.iter().map(|delivery| format!("{}/{}", delivery.contact, delivery.channel));
        let mut names = Names::default();
        notification.each_alert(&mut |alert| names.add(alert_name(&alert.labels)))?;
        let head = notification.head();
        Ok(Accepted {
            receiver: head.receiver.clone(),
            status: status(head.status),
            alerts: names.text(),
            to: to.collect::<Vec<_>>().join(", "),
        })
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
