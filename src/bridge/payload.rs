//! The webhook body: Alertmanager `version: "4"` and Grafana `version: "1"`.
//!
//! Parsing follows the parser rules of the bridge reference (§1.7): only
//! `alerts` is required, unknown fields are ignored, the regex-escaped
//! receiver is unescaped, the zero `endsAt` becomes `None`, a missing alert
//! status is inferred and a missing fingerprint is computed the way
//! Alertmanager computes it (FNV-1a over the sorted labels).

use chrono::{DateTime, Utc};
use litemap::LiteMap;
use serde::{Deserialize, Deserializer, Serialize};
use serde_with::{Map, Same};

/// Label or annotation names to values, sorted by name: a vector of pairs
/// (one allocation of 48 bytes a pair) rather than a `BTreeMap` (a node of
/// over 500 bytes even for one pair), since a 100,000-alert body holds
/// 200,000 of them (issue 13, defect 8).
pub type LabelSet = litemap::LiteMap<String, String>;

/// Whether an alert (or a whole notification) is firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// At least one alert fires.
    Firing,
    /// Every alert has resolved.
    Resolved,
}

impl Status {
    /// `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One webhook POST, normalised. This is also the form kept in storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// `"4"` (Alertmanager), `"1"` (Grafana), or `""` when the sender omitted it.
    pub version: String,
    /// The receiver name, unescaped.
    pub receiver: String,
    /// `firing` when any alert fires.
    pub status: Status,
    /// The alerts of the group, in payload order.
    pub alerts: Vec<Alert>,
    /// Values of the `group_by` labels.
    pub group_labels: LabelSet,
    /// Labels shared by every alert of the payload.
    pub common_labels: LabelSet,
    /// Annotations shared by every alert of the payload.
    pub common_annotations: LabelSet,
    /// Alertmanager's (or Grafana's) external URL.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// The aggregation group key; may be opaque (Grafana) or empty.
    pub group_key: String,
    /// Alerts dropped by `max_alerts`.
    pub truncated_alerts: u64,
    /// Alertmanager 0.32+: why this notification was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_reason: Option<String>,
    /// Alertmanager 0.34+: labels set on the route.
    pub route_labels: LabelSet,
    /// Grafana: the rendered title, when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Set for a message from the message API (never from a webhook body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
}

/// A message from the message API, as stored with its notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The token's name.
    pub sender: String,
    /// One line.
    pub subject: String,
    /// The text.
    pub body: String,
    /// As given (default `info`).
    pub severity: String,
    /// Set when the message is a report (`bridge.reports`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Box<super::report::Report>>,
}

/// One alert of a notification.
///
/// Kept small: a 100,000-alert body holds 100,000 of these at once (issue 13,
/// defect 8), so Grafana's five links, almost always absent, share one box.
/// Stored as JSON without its absent or empty fields ([`Alert`]'s
/// `Serialize`); older stored rows with `null`s read back the same.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawAlert")]
pub struct Alert {
    /// Firing or resolved.
    pub status: Status,
    /// The full label set.
    pub labels: LabelSet,
    /// Annotations.
    pub annotations: LabelSet,
    /// When the alert started, if known.
    pub starts_at: Option<DateTime<Utc>>,
    /// When it ended; `None` while it fires.
    pub ends_at: Option<DateTime<Utc>>,
    /// Link to the expression.
    pub generator_url: String,
    /// 16 hex characters identifying the label set.
    pub fingerprint: String,
    /// Grafana's links and values, when it sent any.
    pub grafana: Option<Box<Grafana>>,
}

/// What Grafana adds to an alert.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Grafana {
    /// Link to silence the alert.
    #[serde(rename = "silenceURL", default, skip_serializing_if = "Option::is_none")]
    pub silence_url: Option<String>,
    /// Dashboard link.
    #[serde(rename = "dashboardURL", default, skip_serializing_if = "Option::is_none")]
    pub dashboard_url: Option<String>,
    /// Panel link.
    #[serde(rename = "panelURL", default, skip_serializing_if = "Option::is_none")]
    pub panel_url: Option<String>,
    /// Panel image.
    #[serde(rename = "imageURL", default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// `B=22, C=1`.
    #[serde(rename = "valueString", default, skip_serializing_if = "Option::is_none")]
    pub value_string: Option<String>,
}

impl Grafana {
    /// The non-empty values, boxed; `None` when there are none.
    fn boxed(self) -> Option<Box<Grafana>> {
        let keep = |value: Option<String>| value.filter(|value| !value.is_empty());
        let grafana = Grafana {
            silence_url: keep(self.silence_url),
            dashboard_url: keep(self.dashboard_url),
            panel_url: keep(self.panel_url),
            image_url: keep(self.image_url),
            value_string: keep(self.value_string),
        };
        (grafana != Grafana::default()).then(|| Box::new(grafana))
    }
}

impl Serialize for Alert {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The stored form: absent and empty fields left out.
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Compact<'a> {
            status: Status,
            #[serde(skip_serializing_if = "LiteMap::is_empty")]
            labels: &'a LabelSet,
            #[serde(skip_serializing_if = "LiteMap::is_empty")]
            annotations: &'a LabelSet,
            #[serde(skip_serializing_if = "Option::is_none")]
            starts_at: Option<DateTime<Utc>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            ends_at: Option<DateTime<Utc>>,
            #[serde(rename = "generatorURL", skip_serializing_if = "str::is_empty")]
            generator_url: &'a str,
            fingerprint: &'a str,
            #[serde(flatten, skip_serializing_if = "Option::is_none")]
            grafana: Option<&'a Grafana>,
        }
        Compact {
            status: self.status,
            labels: &self.labels,
            annotations: &self.annotations,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            generator_url: &self.generator_url,
            fingerprint: &self.fingerprint,
            grafana: self.grafana.as_deref(),
        }
        .serialize(serializer)
    }
}

/// A stored alert reads back through the webhook's own reader: what the
/// store wrote (by this version, or with `null`s by older ones) is a webhook
/// alert already normalised, so normalising it again changes nothing.
impl TryFrom<RawAlert> for Alert {
    type Error = PayloadError;
    fn try_from(raw: RawAlert) -> Result<Alert, PayloadError> {
        raw.normalise(0).map(|(alert, _)| alert)
    }
}

impl Alert {
    /// An alert raised by checkit itself (a check, a message, a test): no
    /// generator URL and none of Grafana's fields.
    pub fn local(status: Status, labels: LabelSet, annotations: LabelSet, fingerprint: String) -> Alert {
        Alert {
            status,
            labels,
            annotations,
            starts_at: None,
            ends_at: None,
            generator_url: String::new(),
            fingerprint,
            grafana: None,
        }
    }

    /// The `alertname` label, or `""`.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map(String::as_str).unwrap_or("")
    }
}

/// Why a body was refused; [`PayloadError::reason`] is a bounded metric label.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON, or not the webhook shape.
    #[error("invalid webhook body: {0}")]
    Json(#[from] serde_json::Error),
    /// A `version` other than "4" or "1" (or the older "3").
    #[error("unsupported payload version {0:?}: expected \"4\" (Alertmanager) or \"1\" (Grafana)")]
    UnsupportedVersion(String),
    /// A `status` other than firing or resolved.
    #[error("unknown status {value:?} at {field}: expected \"firing\" or \"resolved\"")]
    Status {
        /// Where: `status` or `alerts[3].status`.
        field: String,
        /// What was sent.
        value: String,
    },
    /// A timestamp that is not RFC 3339.
    #[error("invalid timestamp {value:?} at {field}: expected RFC 3339")]
    Time {
        /// Where: `alerts[0].startsAt`.
        field: String,
        /// What was sent.
        value: String,
    },
}

impl PayloadError {
    /// The bounded rejection reason for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            PayloadError::UnsupportedVersion(_) => "unsupported_version",
            PayloadError::Json(_) | PayloadError::Status { .. } | PayloadError::Time { .. } => "malformed",
        }
    }
}

/// Parses a webhook body received at `received_at` (used to infer a missing
/// alert status from `endsAt`).
pub fn parse(body: &[u8], received_at: DateTime<Utc>) -> Result<Notification, PayloadError> {
    let Object(raw): Object<RawNotification<Folded<Alerts>>> = serde_json::from_slice(body)?;
    let (mut head, top_status, Folded { fold: Alerts { mut alerts, undecided }, error, .. }) = head(raw)?;
    if let Some(error) = error {
        return Err(error);
    }
    alerts.shrink_to_fit();
    for index in undecided {
        if let Some(alert) = alerts.get_mut(index) {
            alert.status = inferred_status(alert.ends_at, top_status, received_at);
        }
    }
    head.status = top_status.unwrap_or_else(|| {
        if alerts.iter().any(|alert| alert.status == Status::Firing) { Status::Firing } else { Status::Resolved }
    });
    head.alerts = alerts;
    Ok(head)
}

/// Parses a webhook body received at `received_at` straight into its stored
/// form, as [`parse`] would read it: the alerts are normalised and written
/// one at a time, so a 100,000-alert body is never held as 100,000 parsed
/// alerts (issue 13, defect 8). The body is read twice: once to check it
/// and learn the notification's status (which may follow the alerts and
/// decides the status of alerts that leave theirs out), once to write it.
pub fn parse_encoded(body: &[u8], received_at: DateTime<Utc>) -> Result<Encoded, PayloadError> {
    let Object(raw): Object<RawNotification<Folded<Checked>>> = serde_json::from_slice(body)?;
    let (mut head, top_status, checked) = head(raw)?;
    if let Some(error) = checked.error {
        return Err(error);
    }
    let fires = checked.fold.fires(received_at);
    head.status = top_status.unwrap_or(if fires { Status::Firing } else { Status::Resolved });
    let (prefix, suffix) = Encoded::frame(&head)?;
    // The stored form adds a status and a fingerprint (51 bytes) to alerts
    // that lack them: room for that, so the buffer does not grow by doubling
    // and copying. What stays unused is never touched, so it is never
    // resident, and is given back below.
    let room = body.len().saturating_add(checked.count.saturating_mul(64));
    let mut json = Vec::with_capacity(prefix.len() + room + suffix.len());
    json.extend_from_slice(prefix.as_bytes());
    let mut writer = Writer { json, top_status, received_at, count: 0 };
    read_alerts_field(serde_json::de::SliceRead::new(body), WriteAlerts(&mut writer))?;
    let Writer { mut json, count, .. } = writer;
    json.extend_from_slice(suffix.as_bytes());
    json.shrink_to_fit();
    let json = String::from_utf8(json).map_err(|err| PayloadError::Json(serde::de::Error::custom(err)))?;
    Ok(Encoded { head, json, count })
}

/// The notification without its alerts, checked, and the body's own status.
fn head<A>(raw: RawNotification<A>) -> Result<(Notification, Option<Status>, A), PayloadError> {
    let version = match raw.version {
        None => String::new(),
        Some(Scalar(text)) => text,
    };
    if !matches!(version.as_str(), "" | "1" | "3" | "4") {
        return Err(PayloadError::UnsupportedVersion(version));
    }
    let top_status = match raw.status.as_deref() {
        None | Some("") => None,
        Some(text) => {
            Some(text.parse().map_err(|_| PayloadError::Status { field: "status".into(), value: text.into() })?)
        }
    };
    let receiver = raw.receiver.unwrap_or_default();
    // Grafana does not escape the receiver; Alertmanager applies regexp.QuoteMeta.
    let receiver = if version == "1" { receiver } else { unescape_receiver(&receiver) };
    let head = Notification {
        version,
        receiver,
        status: top_status.unwrap_or(Status::Firing),
        alerts: Vec::new(),
        group_labels: raw.group_labels.0,
        common_labels: raw.common_labels.0,
        common_annotations: raw.common_annotations.0,
        external_url: raw.external_url.unwrap_or_default(),
        group_key: raw.group_key.unwrap_or_default(),
        truncated_alerts: raw.truncated_alerts.unwrap_or(0),
        notification_reason: raw.notification_reason.filter(|reason| !reason.is_empty()),
        route_labels: raw.route_labels.0,
        title: raw.title,
        message: None,
    };
    Ok((head, top_status, raw.alerts))
}

/// The status of an alert that left its out: an end in the past means
/// resolved, else the body's status decides.
fn inferred_status(ends_at: Option<DateTime<Utc>>, top_status: Option<Status>, received_at: DateTime<Utc>) -> Status {
    match (ends_at, top_status) {
        (Some(ends_at), _) if ends_at <= received_at => Status::Resolved,
        (_, Some(Status::Resolved)) => Status::Resolved,
        _ => Status::Firing,
    }
}

/// Undoes Go's `regexp.QuoteMeta`, which Alertmanager applies to the receiver name.
pub fn unescape_receiver(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let mut chars = escaped.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&next) = chars.peek() {
                if r"\.+*?()|[]{}^$".contains(next) {
                    out.push(next);
                    chars.next();
                    continue;
                }
            }
        }
        out.push(c);
    }
    out
}

/// Alertmanager's fingerprint of a label set (prometheus/common
/// `labelSetToFingerprint`: FNV-1a 64 over sorted name, 0xff, value, 0xff),
/// as 16 hex characters. Written by hand: it is ten lines and must match
/// Alertmanager bit for bit.
pub fn fingerprint(labels: &LabelSet) -> String {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    if labels.is_empty() {
        return format!("{OFFSET:016x}");
    }
    let mut hash = OFFSET;
    let mut add = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[0xff]);
        add(value.as_bytes());
        add(&[0xff]);
    }
    format!("{hash:016x}")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawNotification<A> {
    #[serde(default)]
    version: Option<Scalar>,
    #[serde(default)]
    group_key: Option<String>,
    #[serde(default)]
    truncated_alerts: Option<u64>,
    #[serde(default)]
    receiver: Option<String>,
    #[serde(default)]
    status: Option<String>,
    alerts: A,
    #[serde(default)]
    group_labels: Labels,
    #[serde(default)]
    common_labels: Labels,
    #[serde(default)]
    common_annotations: Labels,
    #[serde(default, rename = "externalURL")]
    external_url: Option<String>,
    #[serde(default, rename = "notification_reason")]
    notification_reason: Option<String>,
    #[serde(default)]
    route_labels: Labels,
    #[serde(default)]
    title: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAlert {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    annotations: Labels,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
    #[serde(default, rename = "silenceURL")]
    silence_url: Option<String>,
    #[serde(default, rename = "dashboardURL")]
    dashboard_url: Option<String>,
    #[serde(default, rename = "panelURL")]
    panel_url: Option<String>,
    #[serde(default, rename = "imageURL")]
    image_url: Option<String>,
    #[serde(default)]
    value_string: Option<String>,
}

impl RawAlert {
    /// The alert, and whether its status was left out (then it is inferred
    /// once the whole body is read).
    fn normalise(self, index: usize) -> Result<(Alert, bool), PayloadError> {
        let starts_at = parse_time(self.starts_at.as_deref(), index, "startsAt")?;
        let ends_at = parse_time(self.ends_at.as_deref(), index, "endsAt")?;
        let status =
            match self.status.as_deref() {
                Some(text) if !text.is_empty() => Some(text.parse().map_err(|_| PayloadError::Status {
                    field: format!("alerts[{index}].status"),
                    value: text.into(),
                })?),
                _ => None,
            };
        let labels = self.labels.0;
        let fingerprint = match self.fingerprint {
            Some(fingerprint) if !fingerprint.is_empty() => fingerprint,
            _ => fingerprint(&labels),
        };
        let grafana = Grafana {
            silence_url: self.silence_url,
            dashboard_url: self.dashboard_url,
            panel_url: self.panel_url,
            image_url: self.image_url,
            value_string: self.value_string,
        };
        let alert = Alert {
            status: status.unwrap_or(Status::Firing),
            labels,
            annotations: self.annotations.0,
            starts_at,
            ends_at,
            generator_url: self.generator_url.unwrap_or_default(),
            fingerprint,
            grafana: grafana.boxed(),
        };
        Ok((alert, status.is_none()))
    }
}

/// What one pass over the `alerts` array keeps of each normalised alert.
trait AlertFold: Default {
    /// Takes alert number `index`; `undecided` when it left out its status.
    fn take(&mut self, index: usize, alert: Alert, undecided: bool);
}

/// The `alerts` array read alert by alert, each normalised as soon as it is
/// read and handed to `F`: a 100,000-alert body never holds its raw alerts
/// and the normalised ones at once (issue 13, defect 8).
struct Folded<F> {
    fold: F,
    /// Alerts in the array.
    count: usize,
    /// The first alert that cannot be normalised; the rest are only checked
    /// for shape.
    error: Option<PayloadError>,
}

impl<'de, F: AlertFold> Deserialize<'de> for Folded<F> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<F>(std::marker::PhantomData<F>);
        impl<'de, F: AlertFold> serde::de::Visitor<'de> for Visitor<F> {
            type Value = Folded<F>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of alerts")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Folded<F>, A::Error> {
                let mut folded = Folded { fold: F::default(), count: 0, error: None };
                while let Some(Object(raw)) = seq.next_element::<Object<RawAlert>>()? {
                    if folded.error.is_none() {
                        match raw.normalise(folded.count) {
                            Ok((alert, undecided)) => folded.fold.take(folded.count, alert, undecided),
                            Err(err) => folded.error = Some(err),
                        }
                    }
                    folded.count += 1;
                }
                Ok(folded)
            }
        }
        deserializer.deserialize_seq(Visitor(std::marker::PhantomData))
    }
}

/// Every alert, for [`parse`].
#[derive(Default)]
struct Alerts {
    alerts: Vec<Alert>,
    /// Alerts that left out their status.
    undecided: Vec<usize>,
}

impl AlertFold for Alerts {
    fn take(&mut self, index: usize, alert: Alert, undecided: bool) {
        if undecided {
            self.undecided.push(index);
        }
        self.alerts.push(alert);
    }
}

/// What the first pass of [`parse_encoded`] learns of the alerts, which it
/// does not keep.
#[derive(Default)]
struct Checked {
    /// An alert says it fires.
    firing: bool,
    /// An alert without a status has no end.
    undecided_open: bool,
    /// The latest end of an alert without a status.
    undecided_end: Option<DateTime<Utc>>,
}

impl Checked {
    /// Whether any alert fires, for a body that does not say.
    fn fires(&self, received_at: DateTime<Utc>) -> bool {
        self.firing || self.undecided_open || self.undecided_end.is_some_and(|end| end > received_at)
    }
}

impl AlertFold for Checked {
    fn take(&mut self, _index: usize, alert: Alert, undecided: bool) {
        match (undecided, alert.ends_at) {
            (true, None) => self.undecided_open = true,
            (true, Some(end)) => self.undecided_end = self.undecided_end.max(Some(end)),
            (false, _) => self.firing |= alert.status == Status::Firing,
        }
    }
}

/// The second pass of [`parse_encoded`]: writes each alert of the body's
/// `alerts` as stored, skipping everything else.
struct Writer {
    json: Vec<u8>,
    top_status: Option<Status>,
    received_at: DateTime<Utc>,
    count: usize,
}

/// Reads the JSON object from `source`, handing its `alerts` value to
/// `seed` and skipping everything else.
fn read_alerts_field<'de, R: serde_json::de::Read<'de>, S: serde::de::DeserializeSeed<'de, Value = ()>>(
    source: R,
    seed: S,
) -> Result<(), serde_json::Error> {
    struct Field<S>(Option<S>);
    impl<'de, S: serde::de::DeserializeSeed<'de, Value = ()>> serde::de::Visitor<'de> for Field<S> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a notification")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                match self.0.take() {
                    Some(seed) if key == "alerts" => map.next_value_seed(seed)?,
                    seed => {
                        self.0 = seed;
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        }
    }
    serde::Deserializer::deserialize_map(&mut serde_json::Deserializer::new(source), Field(Some(seed)))
}

struct WriteAlerts<'w>(&'w mut Writer);

impl<'de> serde::de::DeserializeSeed<'de> for WriteAlerts<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for WriteAlerts<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of alerts")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let writer = self.0;
        while let Some(Object(raw)) = seq.next_element::<Object<RawAlert>>()? {
            let (mut alert, undecided) = raw.normalise(writer.count).map_err(serde::de::Error::custom)?;
            if undecided {
                alert.status = inferred_status(alert.ends_at, writer.top_status, writer.received_at);
            }
            if writer.count > 0 {
                writer.json.push(b',');
            }
            serde_json::to_writer(&mut writer.json, &alert).map_err(serde::de::Error::custom)?;
            writer.count += 1;
        }
        Ok(())
    }
}

/// A notification in its stored form: the JSON text the store keeps, with
/// the fields of the notification itself beside it. This is the form a
/// webhook goes through the pipeline in: routing, dedup and the store read
/// its alerts from the text one at a time ([`Encoded::each`]), so a large
/// notification is held once, compactly (about the size of its body).
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The notification without its alerts.
    head: Notification,
    /// The whole notification as stored, alerts included.
    json: String,
    /// How many alerts.
    count: usize,
}

impl Encoded {
    /// The stored form of `notification`, in a buffer of exactly its size.
    pub fn new(mut notification: Notification) -> Result<Encoded, serde_json::Error> {
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
        let mut size = Count(0);
        serde_json::to_writer(&mut size, &notification)?;
        let mut json = Vec::with_capacity(size.0);
        serde_json::to_writer(&mut json, &notification)?;
        let json = String::from_utf8(json).map_err(serde::ser::Error::custom)?;
        let count = notification.alerts.len();
        notification.alerts = Vec::new();
        Ok(Encoded { head: notification, json, count })
    }

    /// The stored text before and after the alerts of `head`.
    fn frame(head: &Notification) -> Result<(String, String), serde_json::Error> {
        const EMPTY: &str = r#""alerts":[]"#;
        let text = serde_json::to_string(head)?;
        // The first match is the field: the fields before it are a string
        // (where a quote is escaped) and a status.
        let at = text.find(EMPTY).ok_or_else(|| serde::ser::Error::custom("no alerts field"))?;
        let split = at + EMPTY.len() - 1;
        Ok((text[..split].to_string(), text[split..].to_string()))
    }

    /// The notification without its alerts (`alerts` is empty).
    pub fn head(&self) -> &Notification {
        &self.head
    }

    /// How many alerts it holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when it holds no alert.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The stored JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// The notification without its alerts, and the stored text.
    pub fn into_parts(self) -> (Notification, String) {
        (self.head, self.json)
    }

    /// Calls `each` with every alert, in order, parsed one at a time.
    pub fn each(&self, mut each: impl FnMut(Alert)) -> Result<(), serde_json::Error> {
        each_stored_alert(&self.json, |alert| {
            each(alert);
            Ok::<(), std::convert::Infallible>(())
        })
        .map_err(|stopped| match stopped {
            Stopped::Json(err) => err,
            Stopped::By(never) => match never {},
        })
    }

    /// The whole notification, alerts parsed.
    pub fn decode(&self) -> Result<Notification, serde_json::Error> {
        serde_json::from_str(&self.json)
    }
}

/// Why [`each_stored_alert`] stopped early.
#[derive(Debug)]
pub enum Stopped<E> {
    /// The text is not a stored notification.
    Json(serde_json::Error),
    /// The callback failed.
    By(E),
}

/// Calls `each` with every alert of the stored notification `json` (as
/// `T`: a whole [`Alert`], or the part of one a caller needs), in order,
/// reading one at a time; stops at the first error.
pub fn each_stored_alert<'de, T: Deserialize<'de>, E>(
    json: &'de str,
    each: impl FnMut(T) -> Result<(), E>,
) -> Result<(), Stopped<E>> {
    each_alert_from(serde_json::de::StrRead::new(json), each)
}

/// [`each_stored_alert`] for a stored notification read from `reader` (a
/// database's handle on it, which never holds it whole).
pub fn each_stored_alert_in<T: serde::de::DeserializeOwned, E>(
    reader: impl std::io::Read,
    each: impl FnMut(T) -> Result<(), E>,
) -> Result<(), Stopped<E>> {
    each_alert_from(serde_json::de::IoRead::new(reader), each)
}

fn each_alert_from<'de, R: serde_json::de::Read<'de>, T: Deserialize<'de>, E>(
    source: R,
    each: impl FnMut(T) -> Result<(), E>,
) -> Result<(), Stopped<E>> {
    struct Reader<T, E, F> {
        each: F,
        stopped: Option<E>,
        alert: std::marker::PhantomData<fn(T)>,
    }
    struct ReadAlerts<'r, T, E, F>(&'r mut Reader<T, E, F>);
    impl<'de, T: Deserialize<'de>, E, F: FnMut(T) -> Result<(), E>> serde::de::DeserializeSeed<'de>
        for ReadAlerts<'_, T, E, F>
    {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_seq(self)
        }
    }
    impl<'de, T: Deserialize<'de>, E, F: FnMut(T) -> Result<(), E>> serde::de::Visitor<'de> for ReadAlerts<'_, T, E, F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array of alerts")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(alert) = seq.next_element::<T>()? {
                if let Err(err) = (self.0.each)(alert) {
                    self.0.stopped = Some(err);
                    return Err(serde::de::Error::custom("stopped by the caller"));
                }
            }
            Ok(())
        }
    }
    let mut reader = Reader { each, stopped: None, alert: std::marker::PhantomData };
    let read = read_alerts_field(source, ReadAlerts(&mut reader));
    match (reader.stopped, read) {
        (Some(err), _) => Err(Stopped::By(err)),
        (None, Err(err)) => Err(Stopped::Json(err)),
        (None, Ok(())) => Ok(()),
    }
}

/// A notification's alerts, visited one at a time: parsed ([`Notification`],
/// which cannot fail) or in their stored form ([`Encoded`]). Routing, dedup
/// and the intake log read either.
pub trait AlertList {
    /// Why the alerts cannot be read.
    type Error;
    /// The notification's own fields (its alerts may be left out).
    fn head(&self) -> &Notification;
    /// How many alerts.
    fn alert_count(&self) -> usize;
    /// Calls `each` with every alert, in order.
    fn each_alert(&self, each: &mut dyn FnMut(&Alert)) -> Result<(), Self::Error>;
}

impl AlertList for Notification {
    type Error = std::convert::Infallible;
    fn head(&self) -> &Notification {
        self
    }
    fn alert_count(&self) -> usize {
        self.alerts.len()
    }
    fn each_alert(&self, each: &mut dyn FnMut(&Alert)) -> Result<(), Self::Error> {
        self.alerts.iter().for_each(each);
        Ok(())
    }
}

impl AlertList for Encoded {
    type Error = serde_json::Error;
    fn head(&self) -> &Notification {
        &self.head
    }
    fn alert_count(&self) -> usize {
        self.count
    }
    fn each_alert(&self, each: &mut dyn FnMut(&Alert)) -> Result<(), Self::Error> {
        self.each(|alert| each(&alert))
    }
}

/// RFC 3339 with any fraction and offset; Go's zero time (year 1) is `None`.
fn parse_time(text: Option<&str>, index: usize, field: &str) -> Result<Option<DateTime<Utc>>, PayloadError> {
    let Some(text) = text.filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    let parsed = DateTime::parse_from_rfc3339(text)
        .map_err(|_| PayloadError::Time { field: format!("alerts[{index}].{field}"), value: text.into() })?;
    let parsed = parsed.with_timezone(&Utc);
    Ok((chrono::Datelike::year(&parsed) > 1).then_some(parsed))
}

/// A version sent as a string or (by some senders) a number.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => Ok(Scalar(text)),
            serde_json::Value::Number(number) => Ok(Scalar(number.to_string())),
            other => Err(serde::de::Error::custom(format!("expected a string, found {other}"))),
        }
    }
}

/// A label map that tolerates `null` (empty) and non-string scalar values
/// (turned into their JSON text), which some third-party senders produce.
#[derive(Default)]
struct Labels(LabelSet);

/// A `T` that must be written as a JSON object: serde's derived structs also
/// take an array of the fields in order, so `[null,…,[{}]]` or `"alerts":[[]]`
/// would otherwise pass as a webhook.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Object)
            }
        }
        deserializer.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Pairs are collected in the order sent as they are read (serde_with's
        // `Map`: no intermediate map of JSON values), then sorted once; a
        // repeated name keeps its last value.
        let raw: Option<Vec<(String, LabelValue)>> =
            serde_with::As::<Option<Map<Same, Same>>>::deserialize(deserializer)?;
        let mut pairs = Vec::new();
        for (name, value) in raw.unwrap_or_default() {
            let text = match value {
                LabelValue::Null => None,
                LabelValue::Text(text) => Some(text),
                LabelValue::Other => {
                    return Err(serde::de::Error::custom(format!("label {name:?} must be a string")));
                }
            };
            pairs.push((name, text));
        }
        // A repeated name keeps its last value (`null` removes it), as with a map.
        let labels: litemap::LiteMap<String, Option<String>> = pairs.into_iter().collect();
        let pairs: Vec<(String, String)> =
            labels.into_tuple_vec().into_iter().filter_map(|(name, value)| value.map(|value| (name, value))).collect();
        // Still sorted and unique: the pairs of a `LiteMap`, filtered.
        Ok(Labels(exact(pairs)))
    }
}

/// A label set from sorted, unique `pairs`, in an allocation of exactly
/// their size (a vector grown pair by pair keeps room for four).
fn exact(mut pairs: Vec<(String, String)>) -> LabelSet {
    pairs.shrink_to_fit();
    LabelSet::from_sorted_store_unchecked(pairs)
}

/// A label value as sent: text (numbers and booleans as their JSON text),
/// `null`, or something that is not a label value.
enum LabelValue {
    Null,
    Text(String),
    Other,
}

impl<'de> Deserialize<'de> for LabelValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = LabelValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a label value")
            }
            fn visit_unit<E>(self) -> Result<LabelValue, E> {
                Ok(LabelValue::Null)
            }
            fn visit_none<E>(self) -> Result<LabelValue, E> {
                Ok(LabelValue::Null)
            }
            fn visit_str<E>(self, text: &str) -> Result<LabelValue, E> {
                Ok(LabelValue::Text(text.to_string()))
            }
            fn visit_string<E>(self, text: String) -> Result<LabelValue, E> {
                Ok(LabelValue::Text(text))
            }
            fn visit_bool<E>(self, value: bool) -> Result<LabelValue, E> {
                Ok(LabelValue::Text(value.to_string()))
            }
            fn visit_i64<E>(self, value: i64) -> Result<LabelValue, E> {
                Ok(LabelValue::Text(value.to_string()))
            }
            fn visit_u64<E>(self, value: u64) -> Result<LabelValue, E> {
                Ok(LabelValue::Text(value.to_string()))
            }
            fn visit_f64<E>(self, value: f64) -> Result<LabelValue, E> {
                // The JSON text of the number, as `serde_json::Value` prints it.
                Ok(LabelValue::Text(serde_json::Value::from(value).to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<LabelValue, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(LabelValue::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<LabelValue, A::Error> {
                while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(LabelValue::Other)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/alertmanager");

    fn sample(name: &str) -> Notification {
        let body = std::fs::read(format!("{SAMPLES}/{name}")).unwrap();
        parse(&body, Utc.with_ymd_and_hms(2026, 11, 22, 18, 0, 0).unwrap()).unwrap()
    }

    #[test]
    fn alertmanager_mixed_payload_keeps_every_field() {
        let notification = sample("am-0.25-mixed-firing-resolved.json");
        assert_eq!(notification.version, "4");
        assert_eq!(notification.receiver, "hook");
        assert_eq!(notification.status, Status::Firing);
        assert_eq!(notification.group_key, "{}:{alertname=\"HighLatency\"}");
        assert_eq!(notification.alerts.len(), 2);
        let resolved = &notification.alerts[0];
        assert_eq!(resolved.status, Status::Resolved);
        assert_eq!(resolved.fingerprint, "8cb9ba740429b172");
        assert_eq!(resolved.ends_at, Some(Utc.with_ymd_and_hms(2026, 11, 22, 17, 12, 14).unwrap()));
        let firing = &notification.alerts[1];
        assert_eq!(firing.status, Status::Firing);
        assert_eq!(firing.ends_at, None, "zero endsAt means not ended");
        assert_eq!(firing.name(), "HighLatency");
        assert_eq!(notification.external_url, "http://alertmanager.example:9093");
    }

    #[test]
    fn computed_fingerprints_match_alertmanager() {
        for name in [
            "am-0.25-mixed-firing-resolved.json",
            "am-0.25-firing-2alerts.json",
            "am-0.25-max_alerts-truncated.json",
            "am-0.25-receiver-name-escaped.json",
        ] {
            for alert in sample(name).alerts {
                assert_eq!(fingerprint(&alert.labels), alert.fingerprint, "{name}");
            }
        }
    }

    #[test]
    fn receiver_is_unescaped_and_nanoseconds_parse() {
        let notification = sample("am-0.25-receiver-name-escaped.json");
        assert_eq!(notification.receiver, "team.ops-pager");
        let starts_at = notification.alerts[0].starts_at.unwrap();
        assert_eq!(starts_at.timestamp_subsec_nanos(), 784_138_472);
        assert_eq!(unescape_receiver(r"a\.b\\c\*"), r"a.b\c*");
    }

    #[test]
    fn truncated_payload_reports_dropped_alerts() {
        let notification = sample("am-0.25-max_alerts-truncated.json");
        assert_eq!(notification.truncated_alerts, 2);
        assert_eq!(notification.alerts.len(), 2);
        assert_eq!(notification.alerts[0].generator_url, "");
    }

    #[test]
    fn old_format_alerts_get_inferred_status_and_fingerprint() {
        let notification = sample("ext-prometheus-msteams-prom_post_request.json");
        let alert = &notification.alerts[0];
        assert_eq!(alert.status, Status::Firing);
        assert_eq!(alert.fingerprint, fingerprint(&alert.labels));
        assert_eq!(alert.fingerprint.len(), 16);
        assert_eq!(
            alert.starts_at.unwrap(),
            Utc.with_ymd_and_hms(2018, 3, 7, 11, 33, 21).unwrap() + chrono::Duration::nanoseconds(873_077_559)
        );
        assert_eq!(notification.truncated_alerts, 0);
    }

    #[test]
    fn third_party_samples_parse() {
        let calert = sample("ext-calert-mock_payload.json");
        assert_eq!(calert.version, "");
        assert_eq!(calert.group_key, "");
        assert_eq!(calert.alerts.len(), 31);
        let bot = sample("ext-alertmanager-bot-firing.json");
        assert_eq!(bot.alerts[0].status, Status::Firing, "explicit status wins");
        let bot_resolved = sample("ext-alertmanager-bot-resolved.json");
        assert_eq!(bot_resolved.status, Status::Resolved);
        let goalert = sample("ext-goalert-example.json");
        assert_eq!(goalert.group_key, "{}:{}");
        assert!(goalert.group_labels.is_empty());
    }

    #[test]
    fn grafana_payload_is_accepted_with_its_extras() {
        let notification = sample("ext-grafana-unified-alerting-sample.json");
        assert_eq!(notification.version, "1");
        assert_eq!(notification.receiver, "My Super Webhook");
        assert_eq!(notification.title.as_deref(), Some("[FIRING:2]  (blue)"));
        let first = &notification.alerts[0];
        let grafana = first.grafana.as_deref().unwrap();
        assert!(grafana.silence_url.as_deref().unwrap().contains("silence"));
        assert_eq!(
            first.starts_at.unwrap(),
            Utc.with_ymd_and_hms(2021, 10, 12, 7, 51, 3).unwrap() + chrono::Duration::microseconds(157_076)
        );
        assert_eq!(notification.alerts[1].grafana.as_ref().and_then(|grafana| grafana.dashboard_url.clone()), None);
    }

    #[test]
    fn newer_alertmanager_fields_and_drift_are_tolerated() {
        let body = br#"{"receiver":"r","status":"firing","alerts":[{"status":"firing",
            "labels":{"alertname":"A","n":5,"gone":null},"annotations":null,
            "startsAt":"2026-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"x",
            "brandNewField":{"nested":true}}],
            "notification_reason":"first notification","routeLabels":{},"version":4,
            "groupKey":"k","truncatedAlerts":0,"somethingElse":[1,2]}"#;
        let notification = parse(body, Utc::now()).unwrap();
        assert_eq!(notification.notification_reason.as_deref(), Some("first notification"));
        assert_eq!(notification.version, "4");
        assert_eq!(notification.alerts[0].labels.get("n").unwrap(), "5");
        assert!(!notification.alerts[0].labels.contains_key("gone"));
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        let now = Utc::now();
        for (body, reason, text) in [
            (&b"not json"[..], "malformed", "invalid webhook body"),
            (br#"{"receiver":"r"}"#, "malformed", "missing field `alerts`"),
            (br#"{"version":"5","alerts":[]}"#, "unsupported_version", "unsupported payload version \"5\""),
            (br#"{"status":"pending","alerts":[]}"#, "malformed", "unknown status \"pending\" at status"),
            (br#"{"alerts":[{"status":"weird"}]}"#, "malformed", "alerts[0].status"),
            (br#"{"alerts":[{"startsAt":"yesterday"}]}"#, "malformed", "alerts[0].startsAt"),
            (br#"{"alerts":{}}"#, "malformed", "invalid type"),
        ] {
            let err = parse(body, now).unwrap_err();
            assert_eq!(err.reason(), reason, "{err}");
            assert!(err.to_string().contains(text), "{err} should mention {text}");
        }
    }

    #[test]
    fn label_sets_take_one_exact_allocation() {
        // 100,000 alerts hold 200,000 label sets (issue 13, defect 8): each is
        // one vector of exactly its pairs, not a map node of 11 slots.
        let body = br#"{"alerts":[{"labels":{"i":"1"},"annotations":{"b":"2","a":1,"c":null}}]}"#;
        let alert = parse(body, Utc::now()).unwrap().alerts.remove(0);
        assert!(std::mem::size_of::<LabelSet>() <= 3 * std::mem::size_of::<usize>());
        let labels = alert.labels.into_tuple_vec();
        assert_eq!((labels.len(), labels.capacity()), (1, 1));
        let annotations = alert.annotations.into_tuple_vec();
        assert_eq!(annotations, [("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())]);
        assert_eq!(annotations.capacity(), 2);
    }

    #[test]
    fn bodies_parse_straight_into_the_stored_form_as_they_parse_whole() {
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 18, 0, 0).unwrap();
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        for entry in std::fs::read_dir(SAMPLES).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|extension| extension == "json") {
                bodies.push(std::fs::read(path).unwrap());
            }
        }
        assert!(bodies.len() >= 3);
        for body in [
            &br#"{"alerts":[{"labels":{"a":"1"},"endsAt":"2026-11-22T17:00:00Z"},{"labels":{"a":"2"}}],"status":"resolved"}"#[..],
            br#"{"alerts":[{"labels":{"a":"1"},"endsAt":"2026-11-22T19:00:00Z"}]}"#,
            br#"{"alerts":[{"labels":{"a":"1"},"endsAt":"2026-11-22T17:00:00Z"}]}"#,
            br#"{"alerts":[{"status":"weird"},{"startsAt":"yesterday"}],"version":"5"}"#,
            br#"{"alerts":[{"startsAt":"yesterday"}],"status":"pending"}"#,
            br#"{"alerts":[{"startsAt":"yesterday"}]}"#,
            br#"{"alerts":[[]]}"#,
            br#"{"alerts":[{"labels":{"a":[1]}}]}"#,
            br#"{"alerts":[],"alerts":[]}"#,
        ] {
            bodies.push(body.to_vec());
        }
        for body in bodies {
            let text = String::from_utf8_lossy(&body);
            match (parse(&body, now), parse_encoded(&body, now)) {
                (Ok(whole), Ok(encoded)) => {
                    assert_eq!(encoded.decode().unwrap(), whole, "{text}");
                    assert_eq!(encoded, Encoded::new(whole).unwrap(), "{text}");
                }
                (Err(whole), Err(encoded)) => assert_eq!(encoded.to_string(), whole.to_string(), "{text}"),
                (whole, encoded) => panic!("{text}: {whole:?} but {encoded:?}"),
            }
        }
    }

    #[test]
    fn status_is_inferred_when_missing() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let body = br#"{"alerts":[
            {"labels":{"a":"1"},"endsAt":"2026-01-01T11:00:00Z"},
            {"labels":{"a":"2"},"endsAt":"2026-01-01T13:00:00Z"},
            {"labels":{"a":"3"}}]}"#;
        let notification = parse(body, now).unwrap();
        let statuses: Vec<Status> = notification.alerts.iter().map(|a| a.status).collect();
        assert_eq!(statuses, [Status::Resolved, Status::Firing, Status::Firing]);
        assert_eq!(notification.status, Status::Firing);
    }
}
