//! Pure decisions of the delivery planner: what a message says (one
//! notification, a catch-up after quiet hours, an overflow summary), whether a
//! delayed message is still worth sending, and how long to back off.
//!
//! **Architecture invariant:** nothing here does I/O or reads the clock; the
//! outbox worker passes `now` and the stored state in.

use super::payload::{Alert, LabelSet, Message, Status, Stopped, each_stored_alert_in};
use super::render::{AlertView, Counts, View, ViewKind};
use super::store::Source;
use super::store::{AlertRef, AlertState, Mode, StoredNotification, Summary};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Most alerts listed in one history entry.
const HISTORY_ALERTS: usize = 500;
/// Most alerts in each list of a message (notification, catch-up or
/// overflow summary): a storm of thousands must not become a multi-megabyte
/// message, nor a view of every alert's labels in memory. The view's
/// `counts` and `suppressed_count` still count them all.
pub const LIST_LIMIT: usize = 200;

/// The alerts of one message, gathered from the notification(s) behind it.
#[derive(Debug, Clone)]
pub struct Content {
    /// Receiver of the first notification.
    pub receiver: String,
    /// `group_by` labels shared by every notification.
    pub group_labels: LabelSet,
    /// Labels shared by every alert.
    pub common_labels: LabelSet,
    /// Annotations shared by every alert.
    pub common_annotations: LabelSet,
    /// Alertmanager link of the latest notification.
    pub external_url: String,
    /// The latest version of each alert, in first-seen order.
    pub alerts: Vec<Alert>,
    /// Beside each alert: whether it was seen firing in any of the notifications.
    pub fired: Vec<bool>,
    /// When the latest notification arrived.
    pub received_at: DateTime<Utc>,
    /// The message, when this is one message from the message API.
    pub message: Option<Message>,
    /// For a summary read from the store ([`Content::summary`]) or one
    /// notification read from its text ([`Content::stored`]): the exact
    /// sizes of its lists, of which `alerts` holds only the listed part.
    pub totals: Option<Counts>,
    /// For one notification read from its text: its ID. What reads every
    /// alert (what the contact was told, the quiet-hours bypass, states)
    /// reads the text again from the store; only the listed alerts are held.
    stored: Option<i64>,
}

/// What a sent message told the contact.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Told {
    /// Alerts told as firing: fingerprint and start.
    pub firing: Vec<(String, Option<DateTime<Utc>>)>,
    /// Alerts told as resolved.
    pub resolved: Vec<String>,
}

/// One notification and the fingerprints routed to the contact (`None` = all).
pub type Part = (StoredNotification, Option<Vec<String>>);

/// Gathers `parts` (oldest first) into one message's content. The parts are
/// consumed: a notification of 100,000 alerts is moved, not copied, and its
/// fingerprints are looked up without copies of them.
pub fn collect(parts: Vec<Part>) -> Content {
    let mut alerts: Vec<Alert> = Vec::new();
    let mut group_labels: Option<LabelSet> = None;
    let single_whole = matches!(parts.as_slice(), [(_, None)]);
    let single = parts.len() == 1;
    let mut receiver = None;
    let mut external_url = String::new();
    let mut received_at = DateTime::<Utc>::default();
    let mut message = None;
    let mut whole_common = None;
    for (stored, subset) in parts {
        let notification = stored.notification;
        group_labels = Some(match group_labels {
            None => notification.group_labels,
            Some(labels) => intersect(&labels, &notification.group_labels),
        });
        receiver.get_or_insert(notification.receiver);
        external_url = notification.external_url;
        received_at = stored.received_at;
        if single {
            message = notification.message;
        }
        if single_whole {
            whole_common = Some((notification.common_labels, notification.common_annotations));
        }
        match subset {
            None if alerts.is_empty() => alerts = notification.alerts,
            None => alerts.extend(notification.alerts),
            Some(subset) => {
                let subset: HashSet<String> = subset.into_iter().collect();
                alerts.extend(notification.alerts.into_iter().filter(|alert| subset.contains(&alert.fingerprint)));
            }
        }
    }
    let (alerts, fired) = latest_versions(alerts);
    let (common_labels, common_annotations) = whole_common.unwrap_or_else(|| {
        (common(alerts.iter().map(|alert| &alert.labels)), common(alerts.iter().map(|alert| &alert.annotations)))
    });
    Content {
        receiver: receiver.unwrap_or_default(),
        group_labels: group_labels.unwrap_or_default(),
        common_labels,
        common_annotations,
        external_url,
        alerts,
        fired,
        received_at,
        message,
        totals: None,
        stored: None,
    }
}

/// One alert per fingerprint: the latest version, at the place of the first;
/// beside each, whether any version of it fired.
fn latest_versions(mut alerts: Vec<Alert>) -> (Vec<Alert>, Vec<bool>) {
    let mut fired = vec![false; alerts.len()];
    // (place of the first version, a later version), in order.
    let mut later = Vec::new();
    {
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(alerts.len());
        for (position, alert) in alerts.iter().enumerate() {
            let at = *first.entry(alert.fingerprint.as_str()).or_insert(position);
            if alert.status == Status::Firing {
                fired[at] = true;
            }
            if at != position {
                later.push((at, position));
            }
        }
    }
    if later.is_empty() {
        return (alerts, fired);
    }
    let mut gone = vec![false; alerts.len()];
    for (at, position) in later {
        alerts.swap(at, position);
        gone[position] = true;
    }
    let mut position = 0;
    alerts.retain(|_| {
        position += 1;
        !gone[position - 1]
    });
    let mut position = 0;
    fired.retain(|_| {
        position += 1;
        !gone[position - 1]
    });
    (alerts, fired)
}

impl Content {
    /// The content of a catch-up or overflow summary as the store read it:
    /// only the alerts its lists show, with the exact counts beside them.
    pub fn summary(summary: Summary) -> Content {
        let fired = summary.listed.iter().map(|listed| listed.fired).collect();
        let counts = summary.counts;
        Content {
            receiver: summary.receiver,
            group_labels: summary.group_labels,
            common_labels: summary.common_labels,
            common_annotations: summary.common_annotations,
            external_url: summary.external_url,
            alerts: summary.listed.into_iter().map(|listed| listed.alert).collect(),
            fired,
            received_at: summary.received_at,
            message: None,
            totals: Some(Counts {
                alerts: counts.alerts,
                firing: counts.fired,
                resolved: counts.resolved,
                still_firing: counts.still_firing,
            }),
            stored: None,
        }
    }

    /// The content of one whole notification (`id`), read from its stored
    /// `json` one alert at a time: it keeps the alerts its message and
    /// history list (the first `HISTORY_ALERTS`, and the first
    /// [`LIST_LIMIT`] firing and resolved) and the exact counts; what reads
    /// every alert reads the text again ([`Content::stored_notification`]).
    /// A notification of 100,000 alerts is never held parsed, nor its text
    /// (issue 13, defect 8). `None` when two alerts share a fingerprint:
    /// [`collect`] decides which version counts. Not for a delayed first
    /// attempt, which drops alerts ([`Content::keep_still_relevant`]).
    pub fn stored(
        received_at: DateTime<Utc>,
        json: &mut dyn Source,
        id: i64,
    ) -> Result<Option<Content>, serde_json::Error> {
        /// What the message needs of the notification itself.
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Head {
            #[serde(default)]
            receiver: String,
            #[serde(default)]
            group_labels: LabelSet,
            #[serde(default)]
            common_labels: LabelSet,
            #[serde(default)]
            common_annotations: LabelSet,
            #[serde(default, rename = "externalURL")]
            external_url: String,
            #[serde(default)]
            message: Option<Message>,
        }
        let head: Head = serde_json::from_reader(&mut *json)?;
        json.seek(std::io::SeekFrom::Start(0)).map_err(serde_json::Error::io)?;
        let hasher = std::collections::hash_map::RandomState::new();
        let mut seen = HashSet::new();
        let mut listed = Vec::new();
        let (mut alerts, mut firing, mut resolved) = (0usize, 0usize, 0usize);
        let read = each_stored_alert_in(&mut *json, |alert: Alert| {
            // A hash per fingerprint; a repeat (or a collision) leaves the
            // choice of versions to `collect`.
            if !seen.insert(std::hash::BuildHasher::hash_one(&hasher, &alert.fingerprint)) {
                return Err(());
            }
            let first_of_its_status = match alert.status {
                Status::Firing => firing < LIST_LIMIT,
                Status::Resolved => resolved < LIST_LIMIT,
            };
            match alert.status {
                Status::Firing => firing += 1,
                Status::Resolved => resolved += 1,
            }
            if alerts < HISTORY_ALERTS || first_of_its_status {
                listed.push(alert);
            }
            alerts += 1;
            Ok(())
        });
        match read {
            Ok(()) => {}
            Err(Stopped::By(())) => return Ok(None),
            Err(Stopped::Json(err)) => return Err(err),
        }
        let count = |n: usize| n as u64;
        Ok(Some(Content {
            receiver: head.receiver,
            group_labels: head.group_labels,
            common_labels: head.common_labels,
            common_annotations: head.common_annotations,
            external_url: head.external_url,
            fired: listed.iter().map(|alert| alert.status == Status::Firing).collect(),
            alerts: listed,
            received_at,
            message: head.message,
            totals: Some(Counts {
                alerts: count(alerts),
                firing: count(firing),
                resolved: count(resolved),
                still_firing: count(firing),
            }),
            stored: Some(id),
        }))
    }

    /// True for a catch-up or overflow summary the store summed up: what it
    /// told is recorded by the store too.
    pub fn is_summary(&self) -> bool {
        self.totals.is_some() && self.stored.is_none()
    }

    /// The notification this content was read from without holding all its
    /// alerts ([`Content::stored`]): what reads every alert reads its text
    /// ([`fingerprints_in`], [`any_alert_in`]), and the store records what
    /// the contact was told from it.
    pub fn stored_notification(&self) -> Option<i64> {
        self.stored
    }

    /// Keeps what a delayed message should still say: alerts that still fire,
    /// and resolutions of alerts the contact was told about. False when
    /// nothing is left.
    pub fn keep_still_relevant(&mut self, states: &HashMap<String, AlertState>, told: &HashSet<String>) -> bool {
        let keep: Vec<bool> = self
            .alerts
            .iter()
            .map(|alert| match alert.status {
                Status::Firing => states.get(&alert.fingerprint).is_none_or(|state| state.status == Status::Firing),
                Status::Resolved => told.contains(&alert.fingerprint),
            })
            .collect();
        let mut position = 0;
        self.alerts.retain(|_| {
            position += 1;
            keep[position - 1]
        });
        let mut position = 0;
        self.fired.retain(|_| {
            position += 1;
            keep[position - 1]
        });
        !self.alerts.is_empty()
    }

    /// Fingerprints of every alert held (all of them, unless
    /// [`Content::stored_notification`]).
    pub fn fingerprints(&self) -> Vec<String> {
        self.alerts.iter().map(|a| a.fingerprint.clone()).collect()
    }

    /// The alerts as listed in history (capped).
    pub fn alert_refs(&self) -> Vec<AlertRef> {
        self.alerts
            .iter()
            .take(HISTORY_ALERTS)
            .map(|alert| AlertRef {
                alertname: alert.name().to_string(),
                fingerprint: alert.fingerprint.clone(),
                status: alert.status,
            })
            .collect()
    }

    /// True when the labels of an alert held satisfy `test` (quiet-hours
    /// bypass; all of them, unless [`Content::stored_notification`]).
    pub fn any_alert(&self, test: impl Fn(&LabelSet) -> bool) -> bool {
        self.alerts.iter().any(|alert| test(&alert.labels))
    }

    /// The current status of `alert`: the stored latest state, else its own.
    fn current(&self, alert: &Alert, states: &HashMap<String, AlertState>) -> Status {
        states.get(&alert.fingerprint).map(|state| state.status).unwrap_or(alert.status)
    }

    /// What the contact is told by this message; the fingerprints are moved
    /// out of the content.
    pub fn into_told(self, mode: Mode, states: &HashMap<String, AlertState>) -> Told {
        let mut firing = Vec::new();
        let mut resolved = Vec::new();
        for alert in self.alerts {
            let status = match mode {
                Mode::Notification => alert.status,
                Mode::CatchUp | Mode::Overflow => {
                    states.get(&alert.fingerprint).map(|state| state.status).unwrap_or(alert.status)
                }
            };
            match status {
                Status::Firing => firing.push((alert.fingerprint, alert.starts_at)),
                Status::Resolved => resolved.push(alert.fingerprint),
            }
        }
        Told { firing, resolved }
    }

    /// The template view of this content for `contact`.
    ///
    /// For one notification, `firing`/`resolved` are as the notification says
    /// and `still_firing` repeats `firing`. For a catch-up or an overflow
    /// summary, `firing` lists what fired meanwhile, `still_firing` what fires
    /// now and `resolved` what has resolved since.
    pub fn view(&self, mode: Mode, states: &HashMap<String, AlertState>, contact: &str, now: DateTime<Utc>) -> View {
        let alert_view = |alert: &Alert| alert_view(alert, self.received_at, now);
        let listed = LIST_LIMIT;
        let all: Vec<AlertView> = self.alerts.iter().take(listed).map(alert_view).collect();
        // Each list is counted whole and cut to `listed` only for display.
        let listed_and_counted = |keep: &dyn Fn(usize, &Alert) -> bool| -> (Vec<AlertView>, u64) {
            let mut count = 0u64;
            let mut shown = Vec::new();
            let alerts = self.alerts.iter().enumerate().filter(|(position, alert)| keep(*position, alert));
            for (_, alert) in alerts {
                count += 1;
                if shown.len() < listed {
                    shown.push(alert_view(alert));
                }
            }
            (shown, count)
        };
        let (kind, (firing, firing_count), (resolved, resolved_count), (still_firing, still_firing_count)) = match mode
        {
            Mode::Notification => {
                let firing = listed_and_counted(&|_, alert| alert.status == Status::Firing);
                let resolved = listed_and_counted(&|_, alert| alert.status == Status::Resolved);
                (ViewKind::Notification, firing.clone(), resolved, firing)
            }
            Mode::CatchUp | Mode::Overflow => {
                let firing = listed_and_counted(&|position, _| self.fired.get(position).copied().unwrap_or(false));
                let resolved = listed_and_counted(&|_, alert| self.current(alert, states) == Status::Resolved);
                let still_firing = listed_and_counted(&|_, alert| self.current(alert, states) == Status::Firing);
                let kind = if mode == Mode::CatchUp { ViewKind::CatchUp } else { ViewKind::Overflow };
                (kind, firing, resolved, still_firing)
            }
        };
        let counts = self.totals.unwrap_or(Counts {
            alerts: self.alerts.len() as u64,
            firing: firing_count,
            resolved: resolved_count,
            still_firing: still_firing_count,
        });
        // A report held alone by quiet hours keeps its content in the catch-up
        // (it is its own summary); other messages only in their own delivery.
        let message = self.message.clone().filter(|message| mode == Mode::Notification || message.report.is_some());
        let kind = if message.is_some() { ViewKind::Message } else { kind };
        let status = if still_firing.is_empty() { Status::Resolved } else { Status::Firing };
        View {
            kind,
            status: status.as_str().to_string(),
            receiver: self.receiver.clone(),
            group_labels: sorted(&self.group_labels),
            common_labels: sorted(&self.common_labels),
            common_annotations: sorted(&self.common_annotations),
            external_url: self.external_url.clone(),
            suppressed_count: if mode == Mode::Overflow { counts.alerts } else { 0 },
            counts,
            alerts: all,
            firing,
            resolved,
            still_firing,
            contact: contact.to_string(),
            message,
            acknowledge_url: None,
        }
    }
}

/// Fingerprints of every alert of the stored notification `json`.
pub fn fingerprints_in(json: impl std::io::Read) -> Result<Vec<String>, serde_json::Error> {
    let mut fingerprints = Vec::new();
    each_alert_in(json, |alert| fingerprints.push(alert.fingerprint))?;
    Ok(fingerprints)
}

/// True when the labels of an alert of the stored notification `json`
/// satisfy `test`.
pub fn any_alert_in(json: impl std::io::Read, test: impl Fn(&LabelSet) -> bool) -> Result<bool, serde_json::Error> {
    let mut any = false;
    each_alert_in(json, |alert| any = any || test(&alert.labels))?;
    Ok(any)
}

fn each_alert_in(json: impl std::io::Read, mut each: impl FnMut(Alert)) -> Result<(), serde_json::Error> {
    each_stored_alert_in(json, |alert| {
        each(alert);
        Ok::<(), std::convert::Infallible>(())
    })
    .map_err(|stopped| match stopped {
        Stopped::Json(err) => err,
        Stopped::By(never) => match never {},
    })
}

/// Templates' copy of a label set (views are few: bounded by the display limit).
fn sorted(labels: &LabelSet) -> std::collections::BTreeMap<String, String> {
    labels.iter().map(|(name, value)| (name.clone(), value.clone())).collect()
}

fn alert_view(alert: &Alert, received_at: DateTime<Utc>, now: DateTime<Utc>) -> AlertView {
    let firing_for = alert.starts_at.map(|starts_at| {
        let until = match alert.status {
            Status::Resolved => alert.ends_at.unwrap_or(now),
            Status::Firing => now,
        };
        humanize((until - starts_at).to_std().unwrap_or_default())
    });
    AlertView {
        status: alert.status.as_str().to_string(),
        labels: sorted(&alert.labels),
        annotations: sorted(&alert.annotations),
        starts_at: alert.starts_at.unwrap_or(received_at),
        ends_at: alert.ends_at,
        fingerprint: alert.fingerprint.clone(),
        generator_url: alert.generator_url.clone(),
        firing_for,
    }
}

fn intersect(a: &LabelSet, b: &LabelSet) -> LabelSet {
    a.iter()
        .filter(|(name, value)| b.get(*name) == Some(value))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

fn common<'a>(mut sets: impl Iterator<Item = &'a LabelSet>) -> LabelSet {
    let Some(first) = sets.next() else {
        return LabelSet::new();
    };
    sets.fold(first.clone(), |shared, next| intersect(&shared, next))
}

/// A duration for people: the two largest units, `3d 4h`, `1h 5m`, `42s`.
pub fn humanize(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let units =
        [(seconds / 86_400, "d"), ((seconds / 3600) % 24, "h"), ((seconds / 60) % 60, "m"), (seconds % 60, "s")];
    let parts: Vec<String> = units
        .iter()
        .skip_while(|(value, _)| *value == 0)
        .take(2)
        .filter(|(value, _)| *value > 0)
        .map(|(value, unit)| format!("{value}{unit}"))
        .collect();
    if parts.is_empty() { "0s".into() } else { parts.join(" ") }
}

/// The wait before the next attempt after `attempts` failed ones: exponential
/// from `initial`, capped at `max`, scaled by `jitter` (drawn from 0.5..1.5 by
/// the caller), and never shorter than the provider's `retry_after`.
pub fn backoff(
    attempts: u32,
    initial: Duration,
    max: Duration,
    jitter: f64,
    retry_after: Option<Duration>,
) -> Duration {
    let exponent = attempts.saturating_sub(1).min(30);
    let base = initial.saturating_mul(1u32 << exponent).min(max);
    let jittered = base.mul_f64(jitter.clamp(0.5, 1.5)).min(max);
    jittered.max(retry_after.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::payload::parse;
    use chrono::TimeZone;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, minute, 0).unwrap()
    }

    #[test]
    fn a_report_held_alone_keeps_its_content_in_the_catch_up() {
        let report = crate::bridge::report::Report::sample();
        let notification = crate::bridge::messages::message_notification(report.message(), at(0));
        let stored = StoredNotification { id: 1, received_at: at(0), notification };
        let content = collect(vec![(stored, None)]);
        let view = content.view(Mode::CatchUp, &HashMap::new(), "alice", at(30));
        assert_eq!(view.kind, ViewKind::Message);
        assert_eq!(
            view.message.and_then(|message| message.report).map(|report| report.period),
            Some("2026-W48".into())
        );
    }

    fn stored(id: i64, minute: u32, alerts: &[(&str, &str, &str)]) -> StoredNotification {
        let alerts: Vec<String> = alerts
            .iter()
            .map(|(name, fingerprint, status)| {
                let ends = if *status == "resolved" {
                    format!("2026-01-01T12:{minute:02}:00Z")
                } else {
                    "0001-01-01T00:00:00Z".into()
                };
                format!(
                    r#"{{"status":"{status}","labels":{{"alertname":"{name}","team":"ops"}},
                    "startsAt":"2026-01-01T11:00:00Z","endsAt":"{ends}","fingerprint":"{fingerprint}"}}"#
                )
            })
            .collect();
        let body = format!(
            r#"{{"receiver":"r","groupLabels":{{"team":"ops"}},"commonLabels":{{"team":"ops"}},"alerts":[{}]}}"#,
            alerts.join(",")
        );
        StoredNotification { id, received_at: at(minute), notification: parse(body.as_bytes(), at(minute)).unwrap() }
    }

    #[test]
    fn humanize_shows_the_two_largest_units() {
        for (seconds, text) in
            [(0, "0s"), (42, "42s"), (65, "1m 5s"), (3_900, "1h 5m"), (3_600, "1h"), (90_061, "1d 1h")]
        {
            assert_eq!(humanize(Duration::from_secs(seconds)), text);
        }
    }

    #[test]
    fn backoff_grows_caps_jitters_and_honours_retry_after() {
        let initial = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        assert_eq!(backoff(1, initial, max, 1.0, None), Duration::from_secs(1));
        assert_eq!(backoff(4, initial, max, 1.0, None), Duration::from_secs(8));
        assert_eq!(backoff(40, initial, max, 1.0, None), max);
        assert_eq!(backoff(4, initial, max, 0.5, None), Duration::from_secs(4));
        assert_eq!(backoff(40, initial, max, 1.5, None), max);
        assert_eq!(backoff(1, initial, max, 1.0, Some(Duration::from_secs(30))), Duration::from_secs(30));
    }

    #[test]
    fn a_notification_view_lists_firing_and_resolved_with_durations() {
        let notification = stored(1, 30, &[("Disk", "a", "resolved"), ("Cpu", "b", "firing")]);
        let content = collect(vec![(notification.clone(), None)]);
        let view = content.view(Mode::Notification, &HashMap::new(), "alice", at(40));
        assert_eq!(view.kind, ViewKind::Notification);
        assert_eq!(view.status, "firing");
        assert_eq!(view.resolved.len(), 1);
        assert_eq!(view.resolved[0].firing_for.as_deref(), Some("1h 30m"), "11:00 to 12:30");
        assert_eq!(view.firing[0].firing_for.as_deref(), Some("1h 40m"), "11:00 to now");
        assert_eq!(view.common_labels.get("team").map(String::as_str), Some("ops"));
        assert_eq!(view.suppressed_count, 0);
        assert_eq!(view.contact, "alice");
    }

    #[test]
    fn a_subset_recomputes_common_labels() {
        let notification = stored(1, 0, &[("Disk", "a", "firing"), ("Cpu", "b", "firing")]);
        let subset = vec!["b".to_string()];
        let content = collect(vec![(notification, Some(subset))]);
        assert_eq!(content.alerts.len(), 1);
        assert_eq!(content.common_labels.get("alertname").map(String::as_str), Some("Cpu"));
    }

    #[test]
    fn a_catch_up_tells_what_fired_what_still_fires_and_what_resolved() {
        let first = stored(1, 0, &[("Disk", "a", "firing"), ("Cpu", "b", "firing")]);
        let second = stored(2, 10, &[("Disk", "a", "resolved"), ("Cpu", "b", "firing")]);
        let third = stored(3, 20, &[("Mem", "c", "firing")]);
        let content = collect(vec![(first, None), (second, None), (third, None)]);
        let mut states = HashMap::new();
        states.insert("c".to_string(), AlertState { status: Status::Resolved, starts_at: None });
        let view = content.view(Mode::CatchUp, &states, "alice", at(30));
        let names =
            |alerts: &[AlertView]| -> Vec<String> { alerts.iter().map(|a| a.labels["alertname"].clone()).collect() };
        assert_eq!(view.kind, ViewKind::CatchUp);
        assert_eq!(names(&view.firing), ["Disk", "Cpu", "Mem"]);
        assert_eq!(names(&view.still_firing), ["Cpu"]);
        assert_eq!(names(&view.resolved), ["Disk", "Mem"]);
        assert_eq!(view.status, "firing");
        let overflow = content.view(Mode::Overflow, &states, "alice", at(30));
        assert_eq!(overflow.kind, ViewKind::Overflow);
        assert_eq!(overflow.suppressed_count, 3);
        let told = content.clone().into_told(Mode::CatchUp, &states);
        assert_eq!(told.firing.len(), 1);
        assert_eq!(told.resolved, ["a", "c"]);
    }

    #[test]
    fn summaries_list_a_bounded_number_of_alerts_but_count_them_all() {
        let alerts: Vec<(String, String)> = (0..LIST_LIMIT + 50).map(|i| (format!("A{i}"), format!("f{i}"))).collect();
        let refs: Vec<(&str, &str, &str)> =
            alerts.iter().map(|(name, fingerprint)| (name.as_str(), fingerprint.as_str(), "firing")).collect();
        let notification = stored(1, 0, &refs);
        let content = collect(vec![(notification.clone(), None)]);
        let view = content.view(Mode::Overflow, &HashMap::new(), "alice", at(1));
        assert_eq!(view.suppressed_count, (LIST_LIMIT + 50) as u64);
        assert_eq!(view.alerts.len(), LIST_LIMIT);
        assert_eq!(view.still_firing.len(), LIST_LIMIT);
        let exact = LIST_LIMIT as u64 + 50;
        assert_eq!(view.counts, Counts { alerts: exact, firing: exact, resolved: 0, still_firing: exact });
        let single = content.view(Mode::Notification, &HashMap::new(), "alice", at(1));
        assert_eq!(single.alerts.len(), LIST_LIMIT, "a large notification is listed up to the limit too");
        assert_eq!(single.counts.firing, exact, "and counted whole");
    }

    #[test]
    fn a_notification_read_from_its_text_says_and_tells_what_the_parsed_one_does() {
        let alerts: Vec<(String, String, &str)> = (0..HISTORY_ALERTS + 300)
            .map(|i| (format!("A{i}"), format!("f{i}"), if i % 3 == 0 { "resolved" } else { "firing" }))
            .collect();
        let refs: Vec<(&str, &str, &str)> =
            alerts.iter().map(|(name, fingerprint, status)| (name.as_str(), fingerprint.as_str(), *status)).collect();
        let notification = stored(1, 30, &refs);
        let json = crate::bridge::payload::Encoded::new(notification.notification.clone()).unwrap().json().to_string();
        let parsed = collect(vec![(notification.clone(), None)]);
        let text = |json: &str| std::io::Cursor::new(json.as_bytes().to_vec());
        let read = Content::stored(at(30), &mut text(&json), 1).unwrap().expect("no repeated fingerprint");
        assert!(read.alerts.len() < parsed.alerts.len(), "only the listed alerts are held");
        assert_eq!(read.stored_notification(), Some(1));
        let states = HashMap::new();
        let (parsed_view, read_view) = (
            parsed.view(Mode::Notification, &states, "alice", at(40)),
            read.view(Mode::Notification, &states, "alice", at(40)),
        );
        assert_eq!(format!("{read_view:?}"), format!("{parsed_view:?}"));
        assert_eq!(read.alert_refs(), parsed.alert_refs());
        assert_eq!(fingerprints_in(text(&json)).unwrap(), parsed.fingerprints());
        let last = |labels: &LabelSet| labels.get("alertname").is_some_and(|name| name == "A799");
        assert!(any_alert_in(text(&json), last).unwrap() && parsed.any_alert(last));
        assert!(!read.is_summary());
        // A repeated fingerprint leaves the choice of versions to `collect`.
        let repeated = stored(2, 30, &[("Disk", "a", "firing"), ("Disk", "a", "resolved")]);
        let json = crate::bridge::payload::Encoded::new(repeated.notification).unwrap().json().to_string();
        assert!(Content::stored(at(30), &mut text(&json), 2).unwrap().is_none());
    }

    #[test]
    fn delayed_content_keeps_only_what_still_matters() {
        let notification = stored(
            1,
            0,
            &[("Disk", "a", "firing"), ("Cpu", "b", "firing"), ("Mem", "c", "resolved"), ("Net", "d", "resolved")],
        );
        let mut content = collect(vec![(notification.clone(), None)]);
        let mut states = HashMap::new();
        states.insert("a".to_string(), AlertState { status: Status::Resolved, starts_at: None });
        let told: HashSet<String> = ["c".to_string()].into();
        assert!(content.keep_still_relevant(&states, &told));
        assert_eq!(content.fingerprints(), ["b", "c"]);
        let mut gone = collect(vec![(notification, Some(vec!["a".to_string()]))]);
        assert!(!gone.keep_still_relevant(&states, &told));
    }
}
