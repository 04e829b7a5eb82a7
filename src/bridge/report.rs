//! Reports: the bridge's side of the regular per-contact report — its
//! config (`bridge.reports:`), the period arithmetic in the report's time
//! zone, the report's content as templates see it (`message.report`), and
//! [`Desk`], the handle through which the report scheduler (`crate::reports`)
//! reads the delivery history and commits a report.
//!
//! A report is committed like a message from checkit to one contact, with the
//! dedup key `report:<contact>:<report>:<period>` that never lapses (kept for
//! [`KEY_KEEP_DAYS`]): the store's unique dedup key makes it one per period
//! and contact across restarts and replicas.

use super::Shared;
use super::channels::ChannelKind;
use super::config::Config;
use super::event::BatchError;
use super::matcher::Matchers;
use super::payload::{Encoded, Message};
use super::render::{Outgoing, View, ViewKind};
use super::store::{NewDelivery, NewNotification, SqlParam, StoreError, to_ms};
use super::submit::{SubmitError, Submitted};
use crate::config::Problems;
use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// How long a report's dedup key is kept: longer than any period, so a
/// restart never sends a period twice.
pub const KEY_KEEP_DAYS: i64 = 400;

/// How often a report is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "lowercase")]
pub enum Every {
    /// Each local day, for the day before.
    Daily,
    /// Each Monday, for the ISO week before.
    Weekly,
    /// On the 1st, for the month before.
    Monthly,
}

impl Every {
    /// The config and display name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The first local day of the period holding `day`; `None` only at the
    /// ends of the calendar (as for the others: dates come from requests).
    fn start_of(self, day: NaiveDate) -> Option<NaiveDate> {
        match self {
            Every::Daily => Some(day),
            Every::Weekly => day.checked_sub_days(chrono::Days::new(u64::from(day.weekday().num_days_from_monday()))),
            Every::Monthly => day.with_day(1),
        }
    }

    /// The first day of the period after the one starting on `start`.
    fn next(self, start: NaiveDate) -> Option<NaiveDate> {
        match self {
            Every::Daily => start.checked_add_days(chrono::Days::new(1)),
            Every::Weekly => start.checked_add_days(chrono::Days::new(7)),
            Every::Monthly => start.checked_add_months(Months::new(1)),
        }
    }

    /// The first day of the period before the one starting on `start`.
    fn previous(self, start: NaiveDate) -> Option<NaiveDate> {
        match self {
            Every::Daily => start.checked_sub_days(chrono::Days::new(1)),
            Every::Weekly => start.checked_sub_days(chrono::Days::new(7)),
            Every::Monthly => start.checked_sub_months(Months::new(1)),
        }
    }

    /// The period's name: `2026-12-05`, `2026-W49`, `2026-11`.
    fn label(self, start: NaiveDate) -> String {
        match self {
            Every::Daily => start.format("%Y-%m-%d").to_string(),
            Every::Weekly => {
                let week = start.iso_week();
                format!("{}-W{:02}", week.year(), week.week())
            }
            Every::Monthly => start.format("%Y-%m").to_string(),
        }
    }

    /// The first day of the period named `label`.
    fn parse_label(self, label: &str) -> Option<NaiveDate> {
        let start = match self {
            Every::Daily => NaiveDate::parse_from_str(label, "%Y-%m-%d").ok()?,
            Every::Weekly => {
                let (year, week) = label.split_once("-W")?;
                NaiveDate::from_isoywd_opt(year.parse().ok()?, week.parse().ok()?, chrono::Weekday::Mon)?
            }
            Every::Monthly => NaiveDate::parse_from_str(&format!("{label}-01"), "%Y-%m-%d").ok()?,
        };
        (self.label(start) == label).then_some(start)
    }
}

/// One report: who gets it, when, about which checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// Contacts who get it (each their own copy).
    #[serde(default)]
    pub contacts: Vec<String>,
    /// Groups whose members get it.
    #[serde(default)]
    pub groups: Vec<String>,
    /// `daily`, `weekly` (Mondays) or `monthly` (the 1st).
    pub every: Every,
    /// Local time it is sent, `HH:MM`.
    #[serde(default = "default_at")]
    pub at: String,
    /// IANA time zone of `at` and of the period boundaries.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Check names, or label selectors such as `team="payments"` (the check's
    /// name is the label `check`); empty = every check.
    #[serde(default)]
    pub checks: Vec<String>,
    /// List only checks with downtime, incidents or expiring certificates and
    /// domains, and send nothing when there are none.
    #[serde(default)]
    pub only_problems: bool,
    /// The contacts' channels it goes to; empty = email where a contact has
    /// one, else every channel of the contact.
    #[serde(default)]
    pub channels: Vec<ChannelKind>,
}

fn default_at() -> String {
    "08:00".into()
}

fn default_timezone() -> String {
    "UTC".into()
}

/// A check selector of `checks:`.
#[derive(Debug, Clone)]
pub enum Selector {
    /// A check's exact name.
    Name(String),
    /// Label matchers (the name as `check`).
    Labels(Matchers),
}

impl ReportConfig {
    /// The local send time.
    pub fn time(&self) -> Option<NaiveTime> {
        NaiveTime::parse_from_str(&self.at, "%H:%M").ok()
    }

    /// The time zone.
    pub fn zone(&self) -> Option<Tz> {
        self.timezone.parse().ok()
    }

    /// The check selectors (entries that do not parse are left out; validation reports them).
    pub fn selectors(&self) -> Vec<Selector> {
        self.checks
            .iter()
            .filter_map(|entry| match entry.contains(['=', '~', '{']) {
                true => Matchers::parse(entry).ok().map(Selector::Labels),
                false => Some(Selector::Name(entry.clone())),
            })
            .collect()
    }

    /// Whether a check named `name` with `labels` is reported on.
    pub fn selects(&self, name: &str, labels: &std::collections::BTreeMap<String, String>) -> bool {
        if self.checks.is_empty() {
            return true;
        }
        self.selectors().iter().any(|selector| match selector {
            Selector::Name(wanted) => wanted == name,
            Selector::Labels(matchers) => {
                let mut labels = labels.clone();
                labels.insert("check".into(), name.into());
                matchers.matches(&labels)
            }
        })
    }

    /// The distinct contacts it goes to, directly or through groups, sorted.
    pub fn recipients(&self, bridge: &Config) -> Vec<String> {
        let members = self.groups.iter().filter_map(|group| bridge.groups.get(group)).flatten();
        self.contacts.iter().chain(members).cloned().collect::<BTreeSet<_>>().into_iter().collect()
    }

    /// The channels of `contact` it goes to.
    pub fn channels_of(&self, contact: &super::config::Contact) -> Vec<ChannelKind> {
        if !self.channels.is_empty() {
            return contact.channels().filter(|kind| self.channels.contains(kind)).collect();
        }
        if contact.email.is_some() { vec![ChannelKind::Email] } else { contact.channels().collect() }
    }

    /// Records every problem below `path` (`bridge.reports.<name>`).
    pub fn validate(&self, bridge: &Config, path: &str, problems: &mut Problems) {
        if self.contacts.is_empty() && self.groups.is_empty() {
            problems.push(path, "report reaches nobody: set contacts or groups");
        }
        for (index, contact) in self.contacts.iter().enumerate() {
            if !bridge.contacts.contains_key(contact) {
                problems.push(format!("{path}.contacts[{index}]"), format!("unknown contact {contact:?}"));
            }
        }
        for (index, group) in self.groups.iter().enumerate() {
            if !bridge.groups.contains_key(group) {
                problems.push(format!("{path}.groups[{index}]"), format!("unknown group {group:?}"));
            }
        }
        if self.time().is_none() {
            problems.push(format!("{path}.at"), format!("invalid time {:?}: expected HH:MM (24-hour)", self.at));
        }
        if self.zone().is_none() {
            problems.push(format!("{path}.timezone"), format!("unknown IANA time zone {:?}", self.timezone));
        }
        for (index, entry) in self.checks.iter().enumerate() {
            if entry.contains(['=', '~', '{']) {
                if let Err(message) = Matchers::parse(entry) {
                    problems.push(format!("{path}.checks[{index}]"), message);
                }
            } else if entry.trim().is_empty() {
                problems.push(format!("{path}.checks[{index}]"), "must not be empty");
            }
        }
        for (index, kind) in self.channels.iter().enumerate() {
            if !bridge.channels.is_configured(*kind) {
                problems.push(
                    format!("{path}.channels[{index}]"),
                    format!("bridge.channels.{} must be configured to use this channel", kind.as_str()),
                );
            }
        }
        for name in self.recipients(bridge) {
            if let Some(contact) = bridge.contacts.get(&name) {
                if self.channels_of(contact).is_empty() {
                    problems
                        .push(path, format!("contact {name:?} has none of the channels {:?}", self.channels_names()));
                }
            }
        }
    }

    fn channels_names(&self) -> Vec<&'static str> {
        self.channels.iter().map(|kind| kind.as_str()).collect()
    }

    /// The period that `label` names, or the latest one due at `now` when
    /// `label` is `None`. `None` when the label does not name a period or the
    /// config is invalid.
    pub fn period(&self, label: Option<&str>, now: DateTime<Utc>) -> Option<Period> {
        let (zone, time) = (self.zone()?, self.time()?);
        let start = match label {
            Some(label) => self.every.parse_label(label)?,
            None => {
                // The period holding `now` is not over; the one before it is
                // due at this period's start plus `at`.
                let current = self.every.start_of(now.with_timezone(&zone).date_naive())?;
                let previous = self.every.previous(current)?;
                if local(zone, current, time)? <= now { previous } else { self.every.previous(previous)? }
            }
        };
        Period::new(self.every, zone, time, start)
    }
}

/// One period of a report, in UTC and as the contact reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// `2026-W49`.
    pub label: String,
    /// First instant (local midnight).
    pub from: DateTime<Utc>,
    /// First instant after it.
    pub to: DateTime<Utc>,
    /// The period before, for trends.
    pub previous_from: DateTime<Utc>,
    /// When its report is due (`to`'s local day at `at`).
    pub due: DateTime<Utc>,
    /// When the next period's report is due.
    pub next_due: DateTime<Utc>,
}

impl Period {
    fn new(every: Every, zone: Tz, time: NaiveTime, start: NaiveDate) -> Option<Period> {
        let end = every.next(start)?;
        Some(Period {
            label: every.label(start),
            from: local(zone, start, NaiveTime::MIN)?,
            to: local(zone, end, NaiveTime::MIN)?,
            previous_from: local(zone, every.previous(start)?, NaiveTime::MIN)?,
            due: local(zone, end, time)?,
            next_due: local(zone, every.next(end)?, time)?,
        })
    }
}

/// `day` at `time` in `zone`; a time in a DST gap moves an hour on, and an
/// ambiguous one takes its first occurrence.
fn local(zone: Tz, day: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    let naive = day.and_time(time);
    let later = naive.checked_add_signed(chrono::Duration::hours(1))?;
    zone.from_local_datetime(&naive)
        .earliest()
        .or_else(|| zone.from_local_datetime(&later).earliest())
        .map(|time| time.with_timezone(&Utc))
}

/// A report's content, as templates see it (`message.report`). Figures come
/// pre-formatted (`uptime_text`) beside their raw values.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Report {
    /// The report's name in the config.
    pub name: String,
    /// `daily`, `weekly`, `monthly`.
    pub every: String,
    /// `2026-W49`.
    pub period: String,
    /// The period's first instant.
    pub from: DateTime<Utc>,
    /// The first instant after it.
    pub to: DateTime<Utc>,
    /// `Mon 30 Nov 2026 – Sun 6 Dec 2026`, in the report's zone.
    pub range_text: String,
    /// The IANA zone times are shown in.
    pub timezone: String,
    /// Sent after its slot, once, because checkit was down at the time.
    pub late: bool,
    /// Only checks with problems are listed.
    pub only_problems: bool,
    /// Uptime over every listed check's runs, e.g. `99.95%`.
    pub uptime_text: String,
    /// Per check.
    pub checks: Vec<CheckLine>,
    /// Incidents overlapping the period, oldest first.
    pub incidents: Vec<IncidentLine>,
    /// The slowest checks by p95, slowest first (at most five).
    pub slowest: Vec<CheckLine>,
    /// Certificates and domains expiring within 30 days.
    pub expiring: Vec<ExpiryLine>,
    /// What was delivered to the contact in the period.
    pub deliveries: DeliveryCounts,
}

/// One check's figures.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CheckLine {
    /// The check's name.
    pub name: String,
    /// Uptime in the period, 0–100; `None` without runs.
    pub uptime: Option<f64>,
    /// `99.95%` or `no data`.
    pub uptime_text: String,
    /// Uptime in the period before.
    pub previous: Option<f64>,
    /// `99.90%` or `no data`.
    pub previous_text: String,
    /// `up`, `down`, `same`, or empty without both figures.
    pub trend: String,
    /// `↑`, `↓`, `=` or empty.
    pub trend_mark: String,
    /// Runs in the period (maintenance excluded).
    pub runs: u64,
    /// Incidents overlapping the period.
    pub incidents: u64,
    /// p95 duration in seconds (from the hourly roll-ups).
    pub p95_seconds: Option<f64>,
    /// `123 ms`, `1.25 s` or `no data`.
    pub p95_text: String,
}

/// One incident.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IncidentLine {
    /// The check.
    pub check: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Start in the report's zone, `Tue 1 Dec 14:05`.
    pub started_text: String,
    /// `1h 5m`; until the period's end while it was still open.
    pub duration_text: String,
    /// Seconds, as `duration_text`.
    pub duration_seconds: i64,
    /// Still open at the period's end.
    pub ongoing: bool,
    /// `connect: refused` (phase and reason).
    pub reason: String,
}

/// A certificate or domain registration expiring soon.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExpiryLine {
    /// The check whose last probe saw it.
    pub check: String,
    /// `certificate` or `domain`.
    pub what: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// `Sat 26 Dec 2026`, in the report's zone.
    pub expires_text: String,
    /// Whole days left (negative once expired).
    pub days_left: i64,
}

/// Delivery steps recorded for the contact in the period, by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeliveryCounts {
    /// Delivered.
    pub sent: u64,
    /// Held by quiet hours.
    pub held: u64,
    /// Deferred by a rate limit.
    pub rate_limited: u64,
    /// Given up.
    pub dead: u64,
    /// Failed attempts that were retried.
    pub failed: u64,
}

impl Report {
    /// The one-line subject.
    pub fn subject(&self) -> String {
        let every = match self.every.as_str() {
            "daily" => "Daily",
            "weekly" => "Weekly",
            _ => "Monthly",
        };
        let late = if self.late { " (late)" } else { "" };
        format!("{every} report {}{late}: {} up, {} incidents", self.period, self.uptime_text, self.incidents.len())
    }

    /// A few lines for templates that do not know reports (`message.body`).
    pub fn summary(&self) -> String {
        format!(
            "{} ({}): {} checks, uptime {}, {} incidents, {} expiring soon.",
            self.period,
            self.range_text,
            self.checks.len(),
            self.uptime_text,
            self.incidents.len(),
            self.expiring.len()
        )
    }

    /// The message a report travels as.
    pub fn message(&self) -> Message {
        Message {
            sender: format!("report:{}", self.name),
            subject: self.subject(),
            body: self.summary(),
            severity: "info".into(),
            report: Some(Box::new(self.clone())),
        }
    }

    /// An example, for the load-time test render of templates.
    pub fn sample() -> Report {
        let at = |text: &str| DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).unwrap_or_default();
        let line = |name: &str, uptime: f64| CheckLine {
            name: name.into(),
            uptime: Some(uptime),
            uptime_text: format!("{uptime:.2}%"),
            previous: Some(100.0),
            previous_text: "100.00%".into(),
            trend: "down".into(),
            trend_mark: "↓".into(),
            runs: 10080,
            incidents: 1,
            p95_seconds: Some(0.25),
            p95_text: "250 ms".into(),
        };
        Report {
            name: "weekly".into(),
            every: "weekly".into(),
            period: "2026-W48".into(),
            from: at("2026-11-23T00:00:00Z"),
            to: at("2026-11-30T00:00:00Z"),
            range_text: "Mon 23 Nov 2026 – Sun 29 Nov 2026".into(),
            timezone: "UTC".into(),
            late: false,
            only_problems: false,
            uptime_text: "99.90%".into(),
            checks: vec![line("api", 99.8)],
            incidents: vec![IncidentLine {
                check: "api".into(),
                started_at: at("2026-11-24T14:05:00Z"),
                started_text: "Tue 24 Nov 14:05".into(),
                duration_text: "20m".into(),
                duration_seconds: 1200,
                ongoing: false,
                reason: "connect: refused".into(),
            }],
            slowest: vec![line("api", 99.8)],
            expiring: vec![ExpiryLine {
                check: "api".into(),
                what: "certificate".into(),
                expires_at: at("2026-12-12T00:00:00Z"),
                expires_text: "Sat 12 Dec 2026".into(),
                days_left: 12,
            }],
            deliveries: DeliveryCounts { sent: 3, held: 1, rate_limited: 0, dead: 0, failed: 1 },
        }
    }
}

impl View {
    /// The view of a report for `contact` (a message whose `report` is set).
    pub fn of_report(report: &Report, contact: &str) -> View {
        let mut view = View::sample(ViewKind::Message);
        view.receiver = format!("report:{}", report.name);
        view.contact = contact.to_string();
        view.message = Some(report.message());
        view.alerts.clear();
        view.firing.clear();
        view.resolved.clear();
        view.still_firing.clear();
        view.group_labels.clear();
        view.common_labels.clear();
        view.common_annotations.clear();
        view.external_url.clear();
        view.acknowledge_url = None;
        view
    }
}

/// The report scheduler's handle on the bridge: config, delivery history,
/// commit and preview.
#[derive(Clone)]
pub struct Desk(pub(super) Arc<Shared>);

impl std::fmt::Debug for Desk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desk").finish_non_exhaustive()
    }
}

/// The dedup key of one report to one contact for one period.
pub fn key(report: &str, contact: &str, period: &str) -> String {
    format!("report:{contact}:{report}:{period}")
}

impl Desk {
    /// The running bridge config.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.0.runtime().config)
    }

    /// The bridge's clock.
    pub fn clock(&self) -> Arc<dyn super::clock::Clock> {
        Arc::clone(&self.0.clock)
    }

    /// Whether the report `key` names was committed already.
    pub async fn was_sent(&self, key: &str) -> Result<bool, StoreError> {
        let rows =
            self.0.store.select("SELECT 1 FROM dedup WHERE key = $1".into(), vec![SqlParam::Text(key.into())]).await?;
        Ok(!rows.is_empty())
    }

    /// Since when `report` reaches `contact`: the first time this was asked
    /// (stored under a key of its own, shared by replicas). Periods due
    /// before it are not sent, so a new report starts with its next slot
    /// instead of sending the latest past period at once.
    pub async fn since(&self, report: &str, contact: &str) -> Result<DateTime<Utc>, StoreError> {
        let since_key = key(report, contact, "since");
        let now = to_ms(self.0.clock.now());
        self.0
            .store
            .execute(vec![(
                "INSERT INTO dedup (key, seen_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING".into(),
                vec![SqlParam::Text(since_key.clone()), SqlParam::Int(now)],
            )])
            .await?;
        let rows = self
            .0
            .store
            .select("SELECT seen_at FROM dedup WHERE key = $1".into(), vec![SqlParam::Text(since_key)])
            .await?;
        Ok(super::store::from_ms(rows.first().and_then(|row| row.first()).map_or(now, |value| value.int())))
    }

    /// Delivery steps recorded for `contact` in `[from, to)`, by outcome.
    pub async fn delivery_counts(
        &self,
        contact: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<DeliveryCounts, StoreError> {
        let rows = self
            .0
            .store
            .select(
                "SELECT outcome, COUNT(*) FROM deliveries WHERE contact = $1 AND at >= $2 AND at < $3 GROUP BY outcome"
                    .into(),
                vec![SqlParam::Text(contact.into()), SqlParam::Int(to_ms(from)), SqlParam::Int(to_ms(to))],
            )
            .await?;
        let mut counts = DeliveryCounts::default();
        for row in rows {
            let count = u64::try_from(row.get(1).map(|value| value.int()).unwrap_or(0)).unwrap_or(0);
            match row.first().and_then(|value| value.text()) {
                Some("sent") => counts.sent += count,
                Some("held") => counts.held += count,
                Some("rate_limited") => counts.rate_limited += count,
                Some("dead") => counts.dead += count,
                Some("failed") => counts.failed += count,
                _ => {}
            }
        }
        Ok(counts)
    }

    /// Commits `report` for `contact` once: a second commit of the same
    /// report, contact and period (from any replica, at any time within
    /// [`KEY_KEEP_DAYS`]) is [`Submitted::Duplicate`] and sends nothing.
    pub async fn commit(
        &self,
        config: &ReportConfig,
        report: &Report,
        contact: &str,
    ) -> Result<Submitted, SubmitError> {
        let runtime = self.0.runtime();
        let now = self.0.clock.now();
        let channels = runtime.config.contacts.get(contact).map(|c| config.channels_of(c)).unwrap_or_default();
        let deliveries = channels
            .into_iter()
            .map(|kind| NewDelivery {
                contact: contact.to_string(),
                channel: kind.as_str().to_string(),
                due_at: now,
                delayed: false,
                fingerprints: None,
            })
            .collect();
        let new = NewNotification {
            received_at: now,
            notification: Encoded::new(super::messages::message_notification(report.message(), now))
                .map_err(|err| SubmitError::Batch(BatchError::Unreadable(err.to_string())))?,
            dedup_key: Some(key(&report.name, contact, &report.period)),
            dedup_since: DateTime::<Utc>::UNIX_EPOCH,
            deliveries,
            message: None,
        };
        super::submit::commit(&self.0, new).await
    }

    /// Renders `report` for `contact` on `channel` with the running
    /// templates, without sending it.
    pub fn render(
        &self,
        report: &Report,
        contact: &str,
        channel: ChannelKind,
    ) -> Result<Outgoing, super::render::Error> {
        self.0.runtime().templates.render_at(channel, &View::of_report(report, contact), self.0.clock.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(every: Every, at: &str, timezone: &str) -> ReportConfig {
        ReportConfig {
            contacts: vec!["alice".into()],
            groups: Vec::new(),
            every,
            at: at.into(),
            timezone: timezone.into(),
            checks: Vec::new(),
            only_problems: false,
            channels: Vec::new(),
        }
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn weekly_period_is_the_iso_week_before_monday_at_the_local_time() {
        let weekly = config(Every::Weekly, "08:00", "Europe/Berlin");
        // Monday 7 Dec 2026, 06:59 UTC = 07:59 Berlin: last week's report is not due yet.
        let before = weekly.period(None, utc("2026-12-07T06:59:00Z")).unwrap();
        assert_eq!(before.label, "2026-W48");
        let period = weekly.period(None, utc("2026-12-07T07:00:00Z")).unwrap();
        assert_eq!(period.label, "2026-W49");
        assert_eq!(period.from, utc("2026-11-29T23:00:00Z"));
        assert_eq!(period.to, utc("2026-12-06T23:00:00Z"));
        assert_eq!(period.previous_from, utc("2026-11-22T23:00:00Z"));
        assert_eq!(period.due, utc("2026-12-07T07:00:00Z"));
        assert_eq!(period.next_due, utc("2026-12-14T07:00:00Z"));
        assert_eq!(weekly.period(Some("2026-W49"), utc("2030-01-01T00:00:00Z")), Some(period));
        assert_eq!(weekly.period(Some("2026-W99"), utc("2030-01-01T00:00:00Z")), None);
        // The ends of the calendar are refused, not a panic.
        for (every, label) in
            [(Every::Daily, "262142-12-31"), (Every::Monthly, "-262143-01"), (Every::Weekly, "262142-W52")]
        {
            assert_eq!(config(every, "08:00", "UTC").period(Some(label), utc("2030-01-01T00:00:00Z")), None, "{label}");
        }
    }

    #[test]
    fn daily_and_monthly_periods_follow_local_days_across_dst() {
        let daily = config(Every::Daily, "02:30", "Europe/Berlin");
        // 29 Mar 2026: 02:30 does not exist in Berlin; it moves to 03:30 CEST.
        let period = daily.period(Some("2026-03-28"), utc("2026-04-01T00:00:00Z")).unwrap();
        assert_eq!(period.due, utc("2026-03-29T01:30:00Z"));
        assert_eq!(period.to - period.from, chrono::Duration::hours(24));
        let shorter = daily.period(Some("2026-03-29"), utc("2026-04-01T00:00:00Z")).unwrap();
        assert_eq!(shorter.to - shorter.from, chrono::Duration::hours(23));
        let monthly = config(Every::Monthly, "09:15", "UTC");
        let period = monthly.period(None, utc("2026-03-01T09:15:00Z")).unwrap();
        assert_eq!((period.label.as_str(), period.from), ("2026-02", utc("2026-02-01T00:00:00Z")));
        assert_eq!(period.previous_from, utc("2026-01-01T00:00:00Z"));
        assert_eq!(monthly.period(None, utc("2026-03-01T09:14:59Z")).unwrap().label, "2026-01");
    }

    #[test]
    fn selectors_take_names_and_label_matchers() {
        let mut report = config(Every::Daily, "08:00", "UTC");
        report.checks = vec!["db".into(), r#"team="payments""#.into()];
        let labels = std::collections::BTreeMap::from([("team".to_string(), "payments".to_string())]);
        assert!(report.selects("db", &Default::default()));
        assert!(report.selects("api", &labels));
        assert!(!report.selects("web", &Default::default()));
        report.checks = vec![r#"check=~"a.*""#.into()];
        assert!(report.selects("api", &Default::default()));
    }
}
#[cfg(test)]
mod rendering {
    use crate::bridge::channels::ChannelKind;
    use crate::bridge::render::{Templates, View};

    #[test]
    fn the_default_templates_render_the_full_and_the_short_form() {
        let templates = Templates::new(&Default::default()).expect("defaults compile");
        let view = View::of_report(&super::Report::sample(), "alice");
        let email = templates.render(ChannelKind::Email, &view).expect("email");
        assert_eq!(email.subject, "Weekly report 2026-W48: 99.90% up, 1 incidents");
        assert!(
            email.body.contains("\n\nIncidents (1):\n  Tue 24 Nov 14:05  api  20m  connect: refused\n"),
            "{}",
            email.body
        );
        assert!(email.body.contains("api: certificate expires Sat 12 Dec 2026 (12 days)"), "{}", email.body);
        assert!(email.html.as_deref().is_some_and(|html| {
            html.contains("<td style=\"padding: 3px 10px 3px 0; border-bottom: 1px solid #eee;\">api</td>")
        }));
        let chat = templates.render(ChannelKind::Telegram, &view).expect("telegram");
        assert_eq!(
            chat.body,
            "Weekly report 2026-W48: 99.90% up, 1 incidents\n\n📊 2026-W48: 99.90% up, 1 incident\n⚠️ api 99.80% ↓\n⏳ api: certificate in 12 days"
        );
    }
}
