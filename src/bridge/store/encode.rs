//! The alert states recorded with a notification, read from its stored
//! text one alert at a time (issue 13, defect 8: a 100,000-alert webhook is
//! never held as parsed alerts while the database copies its text).

use super::{Store, StoreError};
use crate::bridge::payload::{Status, Stopped, each_stored_alert, each_stored_alert_in};
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// What the `alerts` and `told` tables record of one alert.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AlertRow {
    /// Its fingerprint.
    pub fingerprint: String,
    /// Firing or resolved.
    pub status: Status,
    /// Its start, if known.
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
}

/// Calls `each` with every alert of the stored notification `json`, in
/// order, reading one alert at a time; stops at the first error.
pub(crate) fn for_each_alert(
    json: &str,
    each: impl FnMut(AlertRow) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    each_stored_alert(json, each).map_err(|stopped| match stopped {
        Stopped::By(err) => err,
        Stopped::Json(err) => StoreError::Corrupt(format!("stored notification: {err}")),
    })
}

/// A stored notification's text, read in order (and from the start again if
/// need be) from the database's handle on it: SQLite's BLOB handle reads it
/// a page at a time, so a 100,000-alert notification is never held whole.
pub trait Source: std::io::Read + std::io::Seek {}

impl<S: std::io::Read + std::io::Seek> Source for S {}

impl Store {
    /// Calls `read` with when notification `id` arrived and a reader of its
    /// stored text; `None` when it is gone.
    pub async fn read_notification<T: Send + 'static>(
        &self,
        id: i64,
        read: impl FnOnce(DateTime<Utc>, &mut dyn Source) -> T + Send + 'static,
    ) -> Result<Option<T>, StoreError> {
        match self {
            Store::Sqlite(store) => store.read_notification(id, read).await,
            Store::Postgres(store) => store.read_notification(id, read).await,
        }
    }
}

/// What the contact is told by notification `json` as it says it: every
/// firing alert (with its start) and every resolved one, in order.
pub(crate) fn told_by(
    json: impl std::io::Read,
    mut firing: impl FnMut(&str, Option<i64>) -> Result<(), StoreError>,
    mut resolved: impl FnMut(&str) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    each_stored_alert_in(json, |alert: AlertRow| match alert.status {
        Status::Firing => firing(&alert.fingerprint, alert.starts_at.map(super::to_ms)),
        Status::Resolved => resolved(&alert.fingerprint),
    })
    .map_err(|stopped| match stopped {
        Stopped::By(err) => err,
        Stopped::Json(err) => StoreError::Corrupt(format!("stored notification: {err}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::payload::{Encoded, parse, parse_encoded};

    #[test]
    fn the_stored_form_leaves_out_what_is_absent_and_reads_back_the_same() {
        let body = br#"{"receiver":"r","status":"firing","alerts":[
            {"status":"firing","labels":{"alertname":"A"},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"f\"1"},
            {"labels":{"alertname":"B"},"silenceURL":"http://grafana/silence","valueString":""}]}"#;
        let notification = parse(body, Utc::now()).unwrap();
        let encoded = Encoded::new(notification.clone()).unwrap();
        let json = encoded.json();
        assert_eq!(encoded.len(), 2);
        assert_eq!(encoded, parse_encoded(body, Utc::now()).unwrap(), "parsed straight to the stored form");
        assert!(!json.contains("null"), "{json}");
        assert!(!json.contains("annotations") && !json.contains("valueString"), "{json}");
        assert!(json.contains(r#""silenceURL":"http://grafana/silence""#), "{json}");
        assert_eq!(encoded.decode().unwrap(), notification);
        let mut rows = Vec::new();
        for_each_alert(json, |row| {
            rows.push((row.fingerprint, row.status, row.starts_at));
            Ok(())
        })
        .unwrap();
        let expected: Vec<_> = notification
            .alerts
            .iter()
            .map(|alert| (alert.fingerprint.clone(), alert.status, alert.starts_at))
            .collect();
        assert_eq!(rows, expected);
    }

    #[test]
    fn rows_stored_with_nulls_by_older_versions_still_read() {
        let json = r#"{"version":"4","receiver":"r","status":"firing","alerts":[{"status":"firing",
            "labels":{"a":"1"},"annotations":{},"startsAt":null,"endsAt":null,"generatorURL":"",
            "fingerprint":"f1","silenceURL":null,"dashboardURL":null,"panelURL":null,"imageURL":null,
            "valueString":null}],"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"",
            "groupKey":"","truncatedAlerts":0,"notificationReason":null,"routeLabels":{},"title":null}"#;
        let notification: crate::bridge::payload::Notification = serde_json::from_str(json).unwrap();
        assert_eq!(notification.alerts[0].grafana, None);
        assert_eq!(notification.alerts[0].fingerprint, "f1");
        let mut count = 0;
        for_each_alert(json, |row| {
            assert_eq!((row.fingerprint.as_str(), row.starts_at), ("f1", None));
            count += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(count, 1);
    }
}
