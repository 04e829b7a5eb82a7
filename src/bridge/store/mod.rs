//! Durable state of the bridge: notifications, the dedup window, the latest
//! state of each alert, the outbox (one row per notification, contact and
//! channel), delivery lanes with leases, send times for rate limits and the
//! delivery history.
//!
//! One interface, two backends: embedded SQLite for a single process and
//! PostgreSQL for several replicas sharing state. Both run the same SQL
//! (written with `$n` placeholders) and the same versioned migrations.
//!
//! **Lanes.** Every (contact, channel) pair is a lane. A worker leases a
//! whole lane, so everything that must be serialised per person and channel
//! (rate-limit checks, catch-up and overflow merges) is, across replicas:
//! PostgreSQL claims lanes with `FOR UPDATE SKIP LOCKED`.

mod encode;
mod messages;
mod postgres;
mod schema;
pub(crate) mod sqlite;
mod summary;

pub use encode::Source;
pub use messages::{MessageCopy, MessagePage, MessageQuery, MessageRecord, MessageSort};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
pub(crate) use summary::Dialect;
pub use summary::{ListedAlert, Summary, SummaryCounts};

use super::payload::{Encoded, Notification, Status};
use crate::storage::Storage;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// A storage failure; the webhook answers 503 on any of these.
pub use crate::storage::StoreError;
pub(crate) use crate::storage::{SqlParam, SqlValue, Statement, column, from_ms, sqlite_sql, to_ms};

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RowState {
    /// Waiting for `due_at`: first attempt, delay or retry backoff.
    Pending,
    /// Held by quiet hours until `due_at`.
    Held,
    /// Over its rate limit until `due_at`.
    Limited,
    /// Delivered.
    Sent,
    /// Given up: permanent failure or too old.
    Dead,
    /// Folded into another row's catch-up or summary.
    Merged,
    /// Not needed any more (a delayed alert resolved first).
    Skipped,
}

impl RowState {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    fn parse(text: &str) -> Result<RowState, StoreError> {
        text.parse().map_err(|_| StoreError::Corrupt(format!("unknown row state {text:?}")))
    }
}

/// What a row will render as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One notification.
    Notification,
    /// The single message after quiet hours.
    CatchUp,
    /// The summary of messages over the rate limit.
    Overflow,
}

impl Mode {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    fn parse(text: &str) -> Result<Mode, StoreError> {
        text.parse().map_err(|_| StoreError::Corrupt(format!("unknown row mode {text:?}")))
    }
}

/// A notification to commit, with the outbox rows routing produced for it.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// When the webhook arrived.
    pub received_at: DateTime<Utc>,
    /// The notification in its stored form.
    pub notification: Encoded,
    /// The idempotency key, or `None` when dedup is off.
    pub dedup_key: Option<String>,
    /// A previous key seen before this instant no longer counts.
    pub dedup_since: DateTime<Utc>,
    /// One per (contact, channel).
    pub deliveries: Vec<NewDelivery>,
    /// Set when the notification is a message from the message API; stored
    /// with it for search.
    pub message: Option<NewMessage>,
}

/// The searchable record of a message from the message API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewMessage {
    /// The token's name.
    pub sender: String,
    /// The sender's idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// One line.
    pub subject: String,
    /// The text.
    pub body: String,
    /// As given (default `info`).
    pub severity: String,
    /// Contacts reached (groups expanded), sorted.
    pub recipients: Vec<String>,
    /// Channels asked for; empty = chosen by routes and contacts.
    pub channels: Vec<String>,
}

/// One outbox row to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// Contact name.
    pub contact: String,
    /// Channel label value (`email`).
    pub channel: String,
    /// First attempt not before this.
    pub due_at: DateTime<Utc>,
    /// Created by a route with `delay`: recheck that the alerts still fire.
    pub delayed: bool,
    /// The alerts of the notification routed to this contact; `None` = all.
    pub fingerprints: Option<Vec<String>>,
}

/// The result of [`Store::ingest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Committed, with its outbox rows.
    Accepted {
        /// The notification's ID.
        notification_id: i64,
        /// How many outbox rows were created.
        deliveries: usize,
    },
    /// The same notification was committed within the dedup window.
    Duplicate,
}

/// A (contact, channel) pair whose rows one worker handles at a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lane {
    /// Contact name.
    pub contact: String,
    /// Channel label value.
    pub channel: String,
}

/// An outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Row ID.
    pub id: i64,
    /// The notification it came from.
    pub notification_id: i64,
    /// Contact name.
    pub contact: String,
    /// Channel label value.
    pub channel: String,
    /// Life-cycle state.
    pub state: RowState,
    /// What it renders as.
    pub mode: Mode,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it is next looked at.
    pub due_at: DateTime<Utc>,
    /// Recheck that the alerts still fire before the first attempt.
    pub delayed: bool,
    /// Routed alerts; `None` = all of the notification's.
    pub fingerprints: Option<Vec<String>>,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the first attempt was made.
    pub first_attempt_at: Option<DateTime<Utc>>,
}

/// A committed notification.
#[derive(Debug, Clone)]
pub struct StoredNotification {
    /// ID.
    pub id: i64,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// The parsed body.
    pub notification: Notification,
}

/// The latest known state of one alert (by fingerprint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertState {
    /// Firing or resolved.
    pub status: Status,
    /// Its start, if known.
    pub starts_at: Option<DateTime<Utc>>,
}

/// A row's move to its next state, with what goes along with it.
#[derive(Debug, Clone)]
pub struct Transition {
    /// The row.
    pub row_id: i64,
    /// Its next state.
    pub state: RowState,
    /// When it is next looked at.
    pub due_at: DateTime<Utc>,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the first attempt was made.
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// The last failure, for dead letters.
    pub last_error: Option<String>,
    /// The history entry recording this step.
    pub event: Option<HistoryEvent>,
    /// A successful send, counted against rate limits.
    pub sent_at: Option<DateTime<Utc>>,
    /// Alerts the contact has now been told are firing (fingerprint, start).
    pub told_firing: Vec<(String, Option<DateTime<Utc>>)>,
    /// Alerts the contact has now been told have resolved.
    pub told_resolved: Vec<String>,
    /// A summary (by its leader row) whose every alert the contact has now
    /// been told of as it stands: recorded by the store, not listed here.
    pub told_summary: Option<i64>,
    /// A notification (by ID) whose every alert the contact has now been
    /// told of as the notification says: recorded by the store from its
    /// text, not listed here (it may hold 100,000 alerts).
    pub told_notification: Option<i64>,
}

impl Transition {
    /// A transition of `row` to `state` at `due_at`, keeping its counters.
    pub fn of(row: &OutboxRow, state: RowState, due_at: DateTime<Utc>) -> Transition {
        Transition {
            row_id: row.id,
            state,
            due_at,
            attempts: row.attempts,
            first_attempt_at: row.first_attempt_at,
            last_error: None,
            event: None,
            sent_at: None,
            told_firing: Vec::new(),
            told_resolved: Vec::new(),
            told_summary: None,
            told_notification: None,
        }
    }
}

/// What happened, as listed by `GET /api/v1/deliveries` (parsed with
/// `str::parse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Delivered.
    Sent,
    /// Attempt failed; will be retried.
    Failed,
    /// Given up (permanent failure or too old).
    Dead,
    /// Held by quiet hours.
    Held,
    /// Deferred by a rate limit.
    RateLimited,
    /// Not sent because it was no longer needed.
    Skipped,
}

impl Outcome {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// An alert as listed in history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRef {
    /// `alertname` label.
    pub alertname: String,
    /// Fingerprint.
    pub fingerprint: String,
    /// `firing` or `resolved`.
    pub status: Status,
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// The outbox row.
    pub outbox_id: i64,
    /// The notification behind the row.
    pub notification_id: i64,
    /// Contact name.
    pub contact: String,
    /// Channel label value.
    pub channel: String,
    /// What the message was.
    pub kind: Mode,
    /// What happened.
    pub outcome: Outcome,
    /// Attempt number (1-based) for sent/failed/dead, else the attempts so far.
    pub attempt: u32,
    /// The alerts in the message.
    pub alerts: Vec<AlertRef>,
    /// What the provider answered.
    pub provider_response: Option<String>,
    /// Why it failed or was not sent.
    pub error: Option<String>,
    /// How long the attempt took.
    pub duration_ms: Option<i64>,
}

/// A stored history entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Entry ID.
    pub id: i64,
    /// The entry.
    #[serde(flatten)]
    pub event: HistoryEvent,
}

/// Filters, order and page of a history query.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Only this contact.
    pub contact: Option<String>,
    /// Only this channel.
    pub channel: Option<String>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Only entries with an alert of this name.
    pub alertname: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Only this entry.
    pub id: Option<i64>,
    /// Only entries of this outbox row (every attempt of one message).
    pub outbox_id: Option<i64>,
    /// Case-insensitive text somewhere in the contact, channel, alert names,
    /// provider response or error.
    pub search: Option<String>,
    /// The column to sort by (ties broken by time, then entry ID).
    pub order: HistoryOrder,
    /// Ascending instead of descending.
    pub ascending: bool,
    /// Page size.
    pub limit: u32,
    /// Entries to skip.
    pub offset: u64,
}

/// The sort column of a history query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum HistoryOrder {
    /// Entry time.
    #[default]
    Time,
    /// Contact name.
    Contact,
    /// Channel.
    Channel,
    /// Outcome.
    Outcome,
}

impl HistoryOrder {
    /// The query-parameter name, which is also the column.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    fn column(self) -> &'static str {
        match self {
            HistoryOrder::Time => "at",
            other => other.as_str(),
        }
    }
}

/// One page of history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// Entries matching the filters, over all pages.
    pub total: u64,
    /// This page.
    pub items: Vec<HistoryEntry>,
}

/// Outbox size by state, for metrics and back-pressure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Rows waiting for an attempt.
    pub pending: u64,
    /// Rows held by quiet hours.
    pub held: u64,
    /// Rows over their rate limit.
    pub limited: u64,
    /// Creation time of the oldest pending row.
    pub oldest_pending: Option<DateTime<Utc>>,
}

impl QueueStats {
    /// Adds one `(state, count, oldest)` row of `sql::QUEUE_STATS`.
    pub(crate) fn add_row(&mut self, state: &str, count: i64, oldest_ms: Option<i64>) {
        let count = u64::try_from(count).unwrap_or(0);
        match state {
            "pending" => {
                self.pending = count;
                self.oldest_pending = oldest_ms.map(from_ms);
            }
            "held" => self.held = count,
            _ => self.limited = count,
        }
    }

    /// Every row not yet finished.
    pub fn depth(&self) -> u64 {
        self.pending + self.held + self.limited
    }
}

/// Cut-off times for [`Store::gc`].
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// History, finished rows, notifications and alert states older than this go.
    pub history_before: DateTime<Utc>,
    /// Dedup keys older than this go.
    pub dedup_before: DateTime<Utc>,
    /// Send times older than this go.
    pub sends_before: DateTime<Utc>,
}

/// A lane claim as both backends bind it (times in milliseconds): `owner`
/// leases until `lease_until` the earliest lane due by `due_by` whose lease
/// ran out before `lease_now`.
pub(crate) struct LaneClaim {
    owner: String,
    due_by: i64,
    lease_now: i64,
    lease_until: i64,
}

/// The store, SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub enum Store {
    /// Embedded SQLite.
    Sqlite(SqliteStore),
    /// PostgreSQL.
    Postgres(PostgresStore),
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Sqlite($store) => $call.await,
            Store::Postgres($store) => $call.await,
        }
    };
}

impl Store {
    /// The bridge's tables in `storage`, migrated.
    pub async fn open(storage: Storage) -> Result<Store, StoreError> {
        match storage {
            Storage::Sqlite(db) => Ok(Store::Sqlite(SqliteStore::new(db).await?)),
            Storage::Postgres(db) => Ok(Store::Postgres(PostgresStore::new(db).await?)),
        }
    }

    /// Commits a notification and its outbox rows atomically, unless its
    /// dedup key was seen since `dedup_since`.
    pub async fn ingest(&self, new: NewNotification) -> Result<Ingested, StoreError> {
        dispatch!(self, store => store.ingest(new))
    }

    /// Leases the lane with the earliest due row that nobody holds.
    pub async fn claim_lane(
        &self,
        owner: &str,
        due_by: DateTime<Utc>,
        lease_now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<Lane>, StoreError> {
        let claim = LaneClaim {
            owner: owner.to_string(),
            due_by: to_ms(due_by),
            lease_now: to_ms(lease_now),
            lease_until: to_ms(lease_until),
        };
        dispatch!(self, store => store.claim_lane(claim))
    }

    /// Ends the lease on `lane` and records when it is next due.
    pub async fn release_lane(&self, lane: &Lane, owner: &str) -> Result<(), StoreError> {
        dispatch!(self, store => store.release_lane(lane, owner))
    }

    /// The earliest time any unleased lane is due.
    pub async fn next_due(&self, lease_now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        dispatch!(self, store => store.next_due(lease_now))
    }

    /// Rows of `lane` that are due, oldest first.
    pub async fn due_rows(&self, lane: &Lane, due_by: DateTime<Utc>, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        let (contact, channel) = (lane.contact.as_str().into(), lane.channel.as_str().into());
        self.outbox_rows(sql::DUE_ROWS, vec![contact, channel, to_ms(due_by).into(), i64::from(limit).into()]).await
    }

    /// Every row of `lane` in `state`, due or not.
    pub async fn lane_rows(&self, lane: &Lane, state: RowState) -> Result<Vec<OutboxRow>, StoreError> {
        let params = vec![lane.contact.as_str().into(), lane.channel.as_str().into(), state.as_str().into()];
        self.outbox_rows(sql::LANE_ROWS, params).await
    }

    /// Rows merged into `leader`.
    pub async fn members(&self, leader: i64) -> Result<Vec<OutboxRow>, StoreError> {
        self.outbox_rows(sql::MEMBERS, vec![leader.into()]).await
    }

    /// The outbox rows `sql` (one of `sql::select_rows!`) selects, the same
    /// SQL on both backends.
    async fn outbox_rows(&self, sql: &'static str, params: Vec<SqlParam>) -> Result<Vec<OutboxRow>, StoreError> {
        self.storage().select(sql, params).await?.iter().map(|row| OutboxRow::read(row)).collect()
    }

    /// Folds `members` into `leader`, which becomes a pending `mode` message.
    pub async fn merge(
        &self,
        leader: i64,
        members: Vec<i64>,
        mode: Mode,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let now = to_ms(now);
        let mut statements: Vec<Statement> = Vec::new();
        for member in members.into_iter().filter(|member| *member != leader) {
            statements.push((sql::MERGE_MEMBER.into(), vec![leader.into(), now.into(), member.into()]));
            statements.push((sql::REPOINT_MEMBERS.into(), vec![leader.into(), member.into()]));
        }
        statements.push((sql::MERGE_LEADER.into(), vec![leader.into(), mode.as_str().into(), now.into()]));
        self.storage().transaction(statements).await?;
        Ok(())
    }

    /// Applies row transitions, each with its history entry, send record and
    /// told state, in one transaction.
    pub async fn apply(&self, transitions: Vec<Transition>, lane: &Lane, now: DateTime<Utc>) -> Result<(), StoreError> {
        if transitions.is_empty() {
            return Ok(());
        }
        dispatch!(self, store => store.apply(transitions, lane, to_ms(now)))
    }

    /// Notifications by ID (missing ones are left out).
    pub async fn notifications(&self, ids: Vec<i64>) -> Result<Vec<StoredNotification>, StoreError> {
        dispatch!(self, store => store.notifications(ids))
    }

    /// The latest known state of each fingerprint.
    pub async fn alert_states(&self, fingerprints: Vec<String>) -> Result<HashMap<String, AlertState>, StoreError> {
        dispatch!(self, store => store.alert_states(fingerprints))
    }

    /// Send times of `contact` (on `channel`, or on every channel) after `since`.
    pub async fn recent_sends(
        &self,
        contact: &str,
        channel: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let (sql, params) = match channel {
            Some(channel) => (sql::SENDS_CHANNEL, vec![contact.into(), channel.into(), to_ms(since).into()]),
            None => (sql::SENDS_CONTACT, vec![contact.into(), to_ms(since).into()]),
        };
        Ok(self.storage().select(sql, params).await?.iter().map(|row| from_ms(column(row, 0).int())).collect())
    }

    /// Which of `fingerprints` `contact` has been told are firing.
    pub async fn told(&self, contact: &str, fingerprints: Vec<String>) -> Result<HashSet<String>, StoreError> {
        dispatch!(self, store => store.told(contact, fingerprints))
    }

    /// Outbox size by state.
    pub async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        dispatch!(self, store => store.queue_stats())
    }

    /// One page of history.
    pub async fn history(&self, query: HistoryQuery) -> Result<HistoryPage, StoreError> {
        let built = HistorySql::build(&query, self.dialect());
        let storage = self.storage();
        let total =
            storage.select(built.count, built.params.clone()).await?.first().map_or(0, |row| column(row, 0).int());
        let rows = storage.select(built.page, built.params).await?;
        let items = rows.iter().map(|row| HistoryEntry::read(row)).collect::<Result<_, _>>()?;
        Ok(HistoryPage { total: u64::try_from(total).unwrap_or(0), items })
    }

    /// Unfinished rows (pending, held, limited), soonest due first, at most `limit`.
    pub async fn open_rows(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        self.outbox_rows(sql::OPEN_ROWS, vec![i64::from(limit).into()]).await
    }

    /// Deletes what retention no longer needs.
    pub async fn gc(&self, retention: Retention) -> Result<(), StoreError> {
        dispatch!(self, store => store.gc(retention))
    }

    /// Runs one query built at run time (`$n` placeholders) and returns its
    /// rows; for the areas (messages, acknowledgements) that keep their SQL
    /// next to their code instead of in each backend.
    pub(crate) async fn select(&self, sql: String, params: Vec<SqlParam>) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        self.storage().select(sql, params).await
    }

    /// Runs statements built at run time in one transaction; returns the
    /// rows each changed.
    pub(crate) async fn execute(&self, statements: Vec<(String, Vec<SqlParam>)>) -> Result<Vec<u64>, StoreError> {
        let statements = statements.into_iter().map(|(sql, params)| (sql.into(), params)).collect();
        let done = self.storage().transaction(statements).await?;
        Ok(done.into_iter().map(|done| done.changed).collect())
    }

    /// The storage the bridge's tables live in.
    pub fn storage(&self) -> Storage {
        match self {
            Store::Sqlite(store) => Storage::Sqlite(store.db.clone()),
            Store::Postgres(store) => Storage::Postgres(store.db.clone()),
        }
    }
}

/// Encodes the fingerprint subset of a row.
pub(crate) fn encode_fingerprints(fingerprints: &Option<Vec<String>>) -> Option<String> {
    fingerprints.as_ref().map(|list| serde_json::to_string(list).unwrap_or_else(|_| "[]".into()))
}

/// Decodes the fingerprint subset of a row.
pub(crate) fn decode_fingerprints(text: Option<String>) -> Result<Option<Vec<String>>, StoreError> {
    text.map(|text| serde_json::from_str(&text).map_err(|err| StoreError::Corrupt(format!("fingerprints: {err}"))))
        .transpose()
}

/// `|name|name|`, searched with `|name|` to filter history by alert name.
pub(crate) fn alertnames(alerts: &[AlertRef]) -> String {
    let mut names: Vec<&str> = alerts.iter().map(|alert| alert.alertname.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    format!("|{}|", names.join("|"))
}

impl OutboxRow {
    /// Reads a row of `sql::select_rows!` (the outbox columns, in order).
    fn read(row: &[SqlValue]) -> Result<OutboxRow, StoreError> {
        Ok(OutboxRow {
            id: column(row, 0).int(),
            notification_id: column(row, 1).int(),
            contact: column(row, 2).string(),
            channel: column(row, 3).string(),
            state: RowState::parse(&column(row, 4).string())?,
            mode: Mode::parse(&column(row, 5).string())?,
            created_at: from_ms(column(row, 6).int()),
            due_at: from_ms(column(row, 7).int()),
            delayed: column(row, 8).int() != 0,
            fingerprints: decode_fingerprints(column(row, 9).opt_string())?,
            attempts: u32::try_from(column(row, 10).int()).unwrap_or(u32::MAX),
            first_attempt_at: column(row, 11).opt_int().map(from_ms),
        })
    }
}

/// SQL shared by both backends.
pub(crate) mod sql {
    pub const DEDUP: &str = "INSERT INTO dedup (key, seen_at) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET seen_at = excluded.seen_at WHERE dedup.seen_at < $3 \
         RETURNING key";
    pub const INSERT_NOTIFICATION: &str = "INSERT INTO notifications \
         (received_at, receiver, group_key, status, payload) VALUES ($1, $2, $3, $4, $5) RETURNING id";
    /// SQLite: the row with room for its text (a zero-filled BLOB of `$5`
    /// bytes), which is then written in place.
    pub const INSERT_NOTIFICATION_SPACE: &str = "INSERT INTO notifications \
         (received_at, receiver, group_key, status, payload) VALUES ($1, $2, $3, $4, zeroblob($5)) RETURNING id";
    pub const UPSERT_ALERT: &str = "INSERT INTO alerts (fingerprint, status, starts_at, received_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (fingerprint) DO UPDATE SET status = excluded.status, \
         starts_at = excluded.starts_at, received_at = excluded.received_at \
         WHERE alerts.received_at <= excluded.received_at";
    pub const INSERT_MESSAGE: &str = "INSERT INTO messages (id, created_at, sender, idempotency_key, subject, \
         body, severity, recipients, channels) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    pub const INSERT_OUTBOX: &str = "INSERT INTO outbox (notification_id, contact, channel, state, mode, \
         created_at, due_at, delayed, fingerprints, attempts, updated_at) \
         VALUES ($1, $2, $3, 'pending', 'notification', $4, $5, $6, $7, 0, $4)";
    pub const UPSERT_LANE: &str = "INSERT INTO lanes (contact, channel, next_due_at) VALUES ($1, $2, $3) \
         ON CONFLICT (contact, channel) DO UPDATE SET next_due_at = CASE \
         WHEN lanes.next_due_at IS NULL OR excluded.next_due_at < lanes.next_due_at \
         THEN excluded.next_due_at ELSE lanes.next_due_at END";
    pub const RELEASE_LANE: &str = "UPDATE lanes SET lease_owner = NULL, lease_until = NULL, \
         next_due_at = (SELECT MIN(due_at) FROM outbox WHERE contact = $1 AND channel = $2 \
         AND state IN ('pending', 'held', 'limited')) \
         WHERE contact = $1 AND channel = $2 AND lease_owner = $3";
    pub const NEXT_DUE: &str = "SELECT MIN(next_due_at) FROM lanes WHERE lease_until IS NULL OR lease_until < $1";
    pub const MERGE_MEMBER: &str =
        "UPDATE outbox SET state = 'merged', merged_into = $1, updated_at = $2 WHERE id = $3";
    pub const REPOINT_MEMBERS: &str = "UPDATE outbox SET merged_into = $1 WHERE merged_into = $2";
    pub const MERGE_LEADER: &str = "UPDATE outbox SET mode = $2, state = 'pending', updated_at = $3 WHERE id = $1";
    pub const APPLY: &str = "UPDATE outbox SET state = $2, due_at = $3, attempts = $4, \
         first_attempt_at = $5, last_error = $6, updated_at = $7 WHERE id = $1";
    pub const INSERT_SEND: &str = "INSERT INTO sends (contact, channel, sent_at) VALUES ($1, $2, $3)";
    pub const TOLD_FIRING: &str = "INSERT INTO told (contact, fingerprint, starts_at, told_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (contact, fingerprint) DO UPDATE \
         SET starts_at = excluded.starts_at, told_at = excluded.told_at";
    pub const TOLD_RESOLVED: &str = "DELETE FROM told WHERE contact = $1 AND fingerprint = $2";
    pub const INSERT_EVENT: &str = "INSERT INTO deliveries (at, outbox_id, notification_id, contact, \
         channel, kind, outcome, attempt, alerts, alertnames, provider_response, error, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
    pub const NOTIFICATION: &str = "SELECT id, received_at, payload FROM notifications WHERE id = $1";
    pub const ALERT_STATE: &str = "SELECT status, starts_at FROM alerts WHERE fingerprint = $1";
    pub const SENDS_CHANNEL: &str = "SELECT sent_at FROM sends WHERE contact = $1 AND channel = $2 AND sent_at > $3";
    pub const SENDS_CONTACT: &str = "SELECT sent_at FROM sends WHERE contact = $1 AND sent_at > $2";
    pub const TOLD: &str = "SELECT 1 FROM told WHERE contact = $1 AND fingerprint = $2";
    /// The outbox columns [`OutboxRow::read`](super::OutboxRow) reads, then `$rest`.
    macro_rules! select_rows {
        ($rest:literal) => {
            concat!(
                "SELECT id, notification_id, contact, channel, state, mode, created_at, due_at, delayed, \
                 fingerprints, attempts, first_attempt_at FROM outbox ",
                $rest
            )
        };
    }
    /// A lane's due rows, oldest first; binds contact, channel, due-by and limit.
    pub const DUE_ROWS: &str = select_rows!(
        "WHERE contact = $1 AND channel = $2 AND state IN ('pending', 'held', 'limited') \
         AND due_at <= $3 ORDER BY due_at, id LIMIT $4"
    );
    /// A lane's rows in one state; binds contact, channel and state.
    pub const LANE_ROWS: &str = select_rows!("WHERE contact = $1 AND channel = $2 AND state = $3 ORDER BY id");
    /// The rows merged into a leader; binds the leader.
    pub const MEMBERS: &str = select_rows!("WHERE merged_into = $1 ORDER BY id");
    /// Unfinished rows, soonest due first; binds the limit.
    pub const OPEN_ROWS: &str =
        select_rows!("WHERE state IN ('pending', 'held', 'limited') ORDER BY due_at, id LIMIT $1");
    pub const QUEUE_STATS: &str = "SELECT state, COUNT(*), MIN(created_at) FROM outbox \
         WHERE state IN ('pending', 'held', 'limited') GROUP BY state";
    /// Retention deletes; each binds the one cut-off it names.
    pub const GC: [(&str, Option<super::GcCut>); 12] = [
        ("DELETE FROM deliveries WHERE at < $1", Some(super::GcCut::History)),
        (
            "DELETE FROM outbox WHERE state IN ('sent', 'dead', 'merged', 'skipped') AND updated_at < $1",
            Some(super::GcCut::History),
        ),
        (
            "DELETE FROM notifications WHERE received_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM outbox WHERE outbox.notification_id = notifications.id)",
            Some(super::GcCut::History),
        ),
        ("DELETE FROM alerts WHERE received_at < $1", Some(super::GcCut::History)),
        ("DELETE FROM told WHERE told_at < $1", Some(super::GcCut::History)),
        ("DELETE FROM messages WHERE created_at < $1", Some(super::GcCut::History)),
        ("DELETE FROM acknowledgements WHERE created_at < $1 AND resolved_at IS NOT NULL", Some(super::GcCut::History)),
        // Message idempotency keys live as long as the messages they name.
        ("DELETE FROM dedup WHERE seen_at < $1 AND key LIKE 'message:%'", Some(super::GcCut::History)),
        (
            "DELETE FROM dedup WHERE seen_at < $1 AND key NOT LIKE 'message:%' AND key NOT LIKE 'report:%'",
            Some(super::GcCut::Dedup),
        ),
        // A report's key outlives any period, so no restart sends a period twice.
        ("DELETE FROM dedup WHERE seen_at < $1 AND key LIKE 'report:%'", Some(super::GcCut::Reports)),
        ("DELETE FROM sends WHERE sent_at < $1", Some(super::GcCut::Sends)),
        ("DELETE FROM lanes WHERE next_due_at IS NULL AND lease_owner IS NULL", None),
    ];
}

/// Which cut-off of [`Retention`] a GC statement binds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum GcCut {
    History,
    Dedup,
    Sends,
    Reports,
}

impl Retention {
    pub(crate) fn cut(&self, cut: GcCut) -> i64 {
        to_ms(match cut {
            GcCut::History => self.history_before,
            GcCut::Dedup => self.dedup_before,
            GcCut::Sends => self.sends_before,
            GcCut::Reports => {
                self.history_before.min(self.dedup_before - chrono::Duration::days(super::report::KEY_KEEP_DAYS))
            }
        })
    }
}

/// A history query as SQL with `$n` placeholders and its parameters.
pub(crate) struct HistorySql {
    pub count: String,
    pub page: String,
    pub params: Vec<SqlParam>,
}

pub(crate) const HISTORY_COLUMNS: &str = "id, at, outbox_id, notification_id, contact, channel, kind, \
     outcome, attempt, alerts, provider_response, error, duration_ms";

impl HistorySql {
    pub(crate) fn build(query: &HistoryQuery, dialect: Dialect) -> HistorySql {
        let alertname_test = |n: usize| match dialect {
            Dialect::Sqlite => format!("instr(alertnames, ${n}) > 0"),
            Dialect::Postgres => format!("strpos(alertnames, ${n}) > 0"),
        };
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        let mut add = |condition: &dyn Fn(usize) -> String, param: SqlParam| {
            params.push(param);
            conditions.push(condition(params.len()));
        };
        if let Some(contact) = &query.contact {
            add(&|n| format!("contact = ${n}"), SqlParam::Text(contact.clone()));
        }
        if let Some(channel) = &query.channel {
            add(&|n| format!("channel = ${n}"), SqlParam::Text(channel.clone()));
        }
        if let Some(outcome) = query.outcome {
            add(&|n| format!("outcome = ${n}"), SqlParam::Text(outcome.as_str().into()));
        }
        if let Some(alertname) = &query.alertname {
            add(&alertname_test, SqlParam::Text(format!("|{alertname}|")));
        }
        if let Some(since) = query.since {
            add(&|n| format!("at >= ${n}"), SqlParam::Int(to_ms(since)));
        }
        if let Some(until) = query.until {
            add(&|n| format!("at < ${n}"), SqlParam::Int(to_ms(until)));
        }
        if let Some(id) = query.id {
            add(&|n| format!("id = ${n}"), SqlParam::Int(id));
        }
        if let Some(outbox_id) = query.outbox_id {
            add(&|n| format!("outbox_id = ${n}"), SqlParam::Int(outbox_id));
        }
        if let Some(search) = query.search.as_deref().filter(|search| !search.is_empty()) {
            // LIKE with an explicit escape character behaves the same in
            // SQLite and PostgreSQL; lower() on both sides makes it
            // case-insensitive in both.
            let escaped = search.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            add(
                &|n| {
                    format!(
                        "lower(contact || '|' || channel || '|' || alertnames || '|' || \
                         coalesce(provider_response, '') || '|' || coalesce(error, '')) LIKE ${n} ESCAPE '\\'"
                    )
                },
                SqlParam::Text(format!("%{escaped}%")),
            );
        }
        let filter = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
        let direction = if query.ascending { "ASC" } else { "DESC" };
        let column = query.order.column();
        let order = if column == "at" {
            format!("at {direction}, id {direction}")
        } else {
            format!("{column} {direction}, at DESC, id DESC")
        };
        let count = format!("SELECT COUNT(*) FROM deliveries{filter}");
        let page = format!(
            "SELECT {HISTORY_COLUMNS} FROM deliveries{filter} ORDER BY {order} LIMIT {} OFFSET {}",
            query.limit, query.offset
        );
        HistorySql { count, page, params }
    }
}

impl HistoryEntry {
    /// Reads a row selected as [`HISTORY_COLUMNS`].
    pub(crate) fn read(row: &[SqlValue]) -> Result<HistoryEntry, StoreError> {
        let (kind, outcome, alerts) = (column(row, 6).string(), column(row, 7).string(), column(row, 9).string());
        Ok(HistoryEntry {
            id: column(row, 0).int(),
            event: HistoryEvent {
                at: from_ms(column(row, 1).int()),
                outbox_id: column(row, 2).int(),
                notification_id: column(row, 3).int(),
                contact: column(row, 4).string(),
                channel: column(row, 5).string(),
                kind: Mode::parse(&kind)?,
                outcome: outcome.parse().map_err(|_| StoreError::Corrupt(format!("unknown outcome {outcome:?}")))?,
                attempt: u32::try_from(column(row, 8).int()).unwrap_or(0),
                alerts: serde_json::from_str(&alerts)
                    .map_err(|err| StoreError::Corrupt(format!("history alerts: {err}")))?,
                provider_response: column(row, 10).opt_string(),
                error: column(row, 11).opt_string(),
                duration_ms: column(row, 12).opt_int(),
            },
        })
    }
}
