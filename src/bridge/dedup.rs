//! The idempotency key of a notification.
//!
//! Two Alertmanager peers, or one Alertmanager retrying, send byte-different
//! but equivalent bodies (timestamps of the POST, order). The key covers what
//! makes a notification *the same*: receiver, group key, status, the reason
//! (0.32+), and every alert's fingerprint, status, start and end. A repeat
//! after `repeat_interval` has the same key, which is why the dedup window
//! must stay shorter than the shortest `repeat_interval`.

use super::payload::AlertList;
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// The hex SHA-256 idempotency key of `notification`.
pub fn key<L: AlertList>(notification: &L) -> Result<String, L::Error> {
    // Every alert's line in one text, sorted by place: no string per alert
    // (a notification may hold 100,000).
    let mut text = String::new();
    let mut lines: Vec<(usize, usize)> = Vec::with_capacity(notification.alert_count());
    notification.each_alert(&mut |alert| {
        let start = text.len();
        // Writing to a String cannot fail.
        let _ = write!(
            text,
            "{}\u{0}{}\u{0}{}\u{0}{}",
            alert.fingerprint,
            alert.status.as_str(),
            alert.starts_at.map(|t| t.timestamp_millis()).unwrap_or(0),
            alert.ends_at.map(|t| t.timestamp_millis()).unwrap_or(0),
        );
        lines.push((start, text.len()));
    })?;
    let line = |&(start, end): &(usize, usize)| text.get(start..end).unwrap_or_default();
    lines.sort_unstable_by(|a, b| line(a).cmp(line(b)));
    let head = notification.head();
    let mut hasher = Sha256::new();
    for part in
        ["v1", &head.receiver, &head.group_key, head.status.as_str(), head.notification_reason.as_deref().unwrap_or("")]
    {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    for place in &lines {
        hasher.update(line(place).as_bytes());
        hasher.update([b'\n']);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::payload::{Notification, Status, parse};
    use chrono::Utc;

    fn notification(body: &str) -> Notification {
        parse(body.as_bytes(), Utc::now()).unwrap()
    }

    const BODY: &str = r#"{"receiver":"r","status":"firing","groupKey":"g","alerts":[
        {"status":"firing","labels":{"a":"1"},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"f1"},
        {"status":"firing","labels":{"a":"2"},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"f2"}]}"#;

    #[test]
    fn equivalent_notifications_share_a_key() {
        let original = notification(BODY);
        let mut reordered = original.clone();
        reordered.alerts.reverse();
        reordered.external_url = "http://other-peer:9093".into();
        reordered.common_annotations.insert("x".into(), "y".into());
        assert_eq!(key(&original).unwrap(), key(&reordered).unwrap());
        let stored = crate::bridge::payload::Encoded::new(original.clone()).unwrap();
        assert_eq!(key(&stored).unwrap(), key(&original).unwrap(), "the stored form has the same key");
    }

    #[test]
    fn the_key_is_the_one_earlier_versions_computed() {
        // The key as computed before alerts could be read one at a time: a
        // restart onto this version still recognises a repeat.
        let notification = notification(BODY);
        let mut lines: Vec<String> = notification
            .alerts
            .iter()
            .map(|alert| {
                format!(
                    "{}\u{0}{}\u{0}{}\u{0}{}",
                    alert.fingerprint,
                    alert.status.as_str(),
                    alert.starts_at.map(|t| t.timestamp_millis()).unwrap_or(0),
                    alert.ends_at.map(|t| t.timestamp_millis()).unwrap_or(0),
                )
            })
            .collect();
        lines.sort_unstable();
        let mut hasher = Sha256::new();
        for part in ["v1", "r", "g", "firing", ""] {
            hasher.update(part.as_bytes());
            hasher.update([0u8]);
        }
        for line in &lines {
            hasher.update(line.as_bytes());
            hasher.update([b'\n']);
        }
        assert_eq!(key(&notification).unwrap(), hex::encode(hasher.finalize()));
    }

    #[test]
    fn any_change_in_what_is_said_changes_the_key() {
        let original = notification(BODY);
        let mut changes: Vec<Notification> = Vec::new();
        let mut resolved = original.clone();
        resolved.alerts[0].status = Status::Resolved;
        resolved.alerts[0].ends_at = Some(Utc::now());
        changes.push(resolved);
        let mut other_receiver = original.clone();
        other_receiver.receiver = "s".into();
        changes.push(other_receiver);
        let mut other_group = original.clone();
        other_group.group_key = "h".into();
        changes.push(other_group);
        let mut fewer = original.clone();
        fewer.alerts.pop();
        changes.push(fewer);
        let mut restarted = original.clone();
        restarted.alerts[1].starts_at = Some(Utc::now());
        changes.push(restarted);
        let mut reason = original.clone();
        reason.notification_reason = Some("repeat interval elapsed".into());
        changes.push(reason);
        for changed in changes {
            assert_ne!(key(&original).unwrap(), key(&changed).unwrap(), "{changed:?}");
        }
    }
}
