//! The stored JSON of a notification, written and read back without holding
//! more than that text (issue 13, defect 8: a 100,000-alert webhook).
//!
//! The text is written in a buffer of exactly its size (a string grown by
//! doubling keeps up to twice that and copies on the way), and the alert
//! states recorded with it are read from the text one alert at a time, so
//! that the parsed alerts are freed before the database copies the text.

use super::StoreError;
use crate::bridge::payload::{Notification, Status};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// The JSON of `notification`, as stored: compact, no `null` fields.
pub(crate) fn notification_json(notification: &Notification) -> Result<String, StoreError> {
    /// Counts what would be written.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(bytes.len());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let failed = |err: serde_json::Error| StoreError::Corrupt(format!("cannot encode notification: {err}"));
    let mut count = Count(0);
    serde_json::to_writer(&mut count, notification).map_err(failed)?;
    let mut bytes = Vec::with_capacity(count.0);
    serde_json::to_writer(&mut bytes, notification).map_err(failed)?;
    String::from_utf8(bytes).map_err(|err| StoreError::Corrupt(format!("cannot encode notification: {err}")))
}

/// What the `alerts` table records of one alert.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AlertRow<'a> {
    /// Its fingerprint.
    #[serde(borrow)]
    pub fingerprint: Cow<'a, str>,
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
    each: impl FnMut(AlertRow<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    struct Notification<F> {
        each: F,
        failed: Option<StoreError>,
    }
    impl<'de, F: FnMut(AlertRow<'_>) -> Result<(), StoreError>> Visitor<'de> for &mut Notification<F> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a stored notification")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                if key == "alerts" {
                    map.next_value_seed(Alerts(&mut *self))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }
    struct Alerts<'s, F>(&'s mut Notification<F>);
    impl<'de, F: FnMut(AlertRow<'_>) -> Result<(), StoreError>> DeserializeSeed<'de> for Alerts<'_, F> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_seq(self)
        }
    }
    impl<'de, F: FnMut(AlertRow<'_>) -> Result<(), StoreError>> Visitor<'de> for Alerts<'_, F> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of alerts")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(alert) = seq.next_element::<AlertRow<'de>>()? {
                if let Err(err) = (self.0.each)(alert) {
                    self.0.failed = Some(err);
                    return Err(serde::de::Error::custom("stopped"));
                }
            }
            Ok(())
        }
    }
    let mut visitor = Notification { each, failed: None };
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let read = serde::Deserializer::deserialize_map(&mut deserializer, &mut visitor);
    match (visitor.failed, read) {
        (Some(err), _) => Err(err),
        (None, Err(err)) => Err(StoreError::Corrupt(format!("stored notification: {err}"))),
        (None, Ok(())) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::payload::parse;

    #[test]
    fn the_stored_form_leaves_out_what_is_absent_and_reads_back_the_same() {
        let body = br#"{"receiver":"r","status":"firing","alerts":[
            {"status":"firing","labels":{"alertname":"A"},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"f\"1"},
            {"labels":{"alertname":"B"},"silenceURL":"http://grafana/silence","valueString":""}]}"#;
        let notification = parse(body, Utc::now()).unwrap();
        let json = notification_json(&notification).unwrap();
        assert_eq!(json.capacity(), json.len());
        assert!(!json.contains("null"), "{json}");
        assert!(!json.contains("annotations") && !json.contains("valueString"), "{json}");
        assert!(json.contains(r#""silenceURL":"http://grafana/silence""#), "{json}");
        let back: crate::bridge::payload::Notification = serde_json::from_str(&json).unwrap();
        assert_eq!(back, notification);
        let mut rows = Vec::new();
        for_each_alert(&json, |row| {
            rows.push((row.fingerprint.into_owned(), row.status, row.starts_at));
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
            assert_eq!((row.fingerprint.as_ref(), row.starts_at), ("f1", None));
            count += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(count, 1);
    }
}
