//! The bridge's tables on the embedded SQLite backend ([`Sqlite`]: one
//! writer thread with group commit, pooled readers).
//!
//! **Architecture invariant:** one process per database file. Leases are
//! therefore cleared at open: whatever held them died with the last process.

use super::{
    AlertState, Dialect, Ingested, Lane, LaneClaim, NewNotification, QueueStats, Retention, StoreError,
    StoredNotification, Transition, alertnames, encode, encode_fingerprints, from_ms, schema, sql, sqlite_sql, to_ms,
};
use crate::bridge::payload::Status;
use crate::storage::sqlite::Sqlite;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The bridge's SQLite store; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) db: Sqlite,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates a database file of its own at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::new(Sqlite::open(path).await?).await
    }

    /// The bridge's tables in `db`, migrated, with every lease cleared.
    pub async fn new(db: Sqlite) -> Result<SqliteStore, StoreError> {
        db.migrate(&schema::AREA).await?;
        db.write(|connection| Ok(connection.execute("UPDATE lanes SET lease_owner = NULL, lease_until = NULL", [])?))
            .await?;
        Ok(SqliteStore { db })
    }

    /// Runs `work` in the writer's next transaction and returns once committed.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.db.write(work).await
    }

    /// Runs `work` on a read connection on the blocking pool.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.db.read(work).await
    }

    pub(super) async fn ingest(&self, new: NewNotification) -> Result<Ingested, StoreError> {
        let received_at = to_ms(new.received_at);
        self.write(move |connection| {
            if let Some(key) = &new.dedup_key {
                let fresh = connection
                    .prepare_cached(&sqlite_sql(sql::DEDUP))?
                    .query_row(params![key, received_at, to_ms(new.dedup_since)], |_| Ok(()))
                    .optional()?;
                if fresh.is_none() {
                    return Ok(Ingested::Duplicate);
                }
            }
            let (notification, payload) = new.notification.into_parts();
            // The alerts' states first: they are read from the text, which
            // is freed below as soon as SQLite holds its own copy.
            let mut upsert_alert = connection.prepare_cached(&sqlite_sql(sql::UPSERT_ALERT))?;
            encode::for_each_alert(&payload, |alert| {
                upsert_alert.execute(params![
                    alert.fingerprint,
                    alert.status.as_str(),
                    alert.starts_at.map(to_ms),
                    received_at
                ])?;
                Ok(())
            })?;
            let notification_id = insert_notification(connection, received_at, &notification, payload)?;
            if let Some(message) = &new.message {
                connection.prepare_cached(&sqlite_sql(sql::INSERT_MESSAGE))?.execute(params![
                    notification_id,
                    received_at,
                    message.sender,
                    message.idempotency_key,
                    message.subject,
                    message.body,
                    message.severity,
                    super::messages::joined(&message.recipients),
                    super::messages::joined(&message.channels)
                ])?;
            }
            let mut insert_outbox = connection.prepare_cached(&sqlite_sql(sql::INSERT_OUTBOX))?;
            let mut upsert_lane = connection.prepare_cached(&sqlite_sql(sql::UPSERT_LANE))?;
            for delivery in &new.deliveries {
                let due_at = to_ms(delivery.due_at);
                insert_outbox.execute(params![
                    notification_id,
                    delivery.contact,
                    delivery.channel,
                    received_at,
                    due_at,
                    i64::from(delivery.delayed),
                    encode_fingerprints(&delivery.fingerprints)
                ])?;
                upsert_lane.execute(params![delivery.contact, delivery.channel, due_at])?;
            }
            Ok(Ingested::Accepted { notification_id, deliveries: new.deliveries.len() })
        })
        .await
    }

    pub(super) async fn claim_lane(&self, claim: LaneClaim) -> Result<Option<Lane>, StoreError> {
        self.write(move |connection| {
            Ok(connection
                .prepare_cached(
                    "UPDATE lanes SET lease_owner = ?1, lease_until = ?2 WHERE (contact, channel) = \
                     (SELECT contact, channel FROM lanes WHERE next_due_at <= ?3 \
                     AND (lease_until IS NULL OR lease_until < ?4) ORDER BY next_due_at LIMIT 1) \
                     RETURNING contact, channel",
                )?
                .query_row(params![claim.owner, claim.lease_until, claim.due_by, claim.lease_now], |row| {
                    Ok(Lane { contact: row.get(0)?, channel: row.get(1)? })
                })
                .optional()?)
        })
        .await
    }

    pub(super) async fn release_lane(&self, lane: &Lane, owner: &str) -> Result<(), StoreError> {
        let lane = lane.clone();
        let owner = owner.to_string();
        self.write(move |connection| {
            connection.prepare_cached(&sqlite_sql(sql::RELEASE_LANE))?.execute(params![
                lane.contact,
                lane.channel,
                owner
            ])?;
            Ok(())
        })
        .await
    }

    pub(super) async fn next_due(&self, lease_now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.read(move |connection| {
            let next: Option<i64> = connection
                .prepare_cached(&sqlite_sql(sql::NEXT_DUE))?
                .query_row(params![to_ms(lease_now)], |row| row.get(0))?;
            Ok(next.map(from_ms))
        })
        .await
    }

    pub(super) async fn apply(&self, transitions: Vec<Transition>, lane: &Lane, now: i64) -> Result<(), StoreError> {
        let lane = lane.clone();
        let mut encoded = Vec::with_capacity(transitions.len());
        for transition in transitions {
            let event = transition
                .event
                .as_ref()
                .map(|event| -> Result<_, StoreError> {
                    let alerts = serde_json::to_string(&event.alerts)
                        .map_err(|err| StoreError::Corrupt(format!("cannot encode alerts: {err}")))?;
                    Ok((alerts, alertnames(&event.alerts)))
                })
                .transpose()?;
            encoded.push((transition, event));
        }
        self.write(move |connection| {
            for (transition, encoded_event) in &encoded {
                apply_one(connection, transition, encoded_event.as_ref(), &lane, now)?;
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn notifications(&self, ids: Vec<i64>) -> Result<Vec<StoredNotification>, StoreError> {
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(&sqlite_sql(sql::NOTIFICATION))?;
            let mut found = Vec::with_capacity(ids.len());
            for id in ids {
                // Parsed from SQLite's own buffer: a large notification's
                // text is not copied once more.
                let mut rows = statement.query(params![id])?;
                if let Some(row) = rows.next()? {
                    let received_at: i64 = row.get(1)?;
                    let notification = serde_json::from_str(stored_text(row, id)?)
                        .map_err(|err| StoreError::Corrupt(format!("notification {id}: {err}")))?;
                    found.push(StoredNotification { id, received_at: from_ms(received_at), notification });
                }
            }
            Ok(found)
        })
        .await
    }

    pub(super) async fn read_notification<T: Send + 'static>(
        &self,
        id: i64,
        read: impl FnOnce(DateTime<Utc>, &mut dyn encode::Source) -> T + Send + 'static,
    ) -> Result<Option<T>, StoreError> {
        self.read(move |connection| {
            let received_at: Option<i64> = connection
                .prepare_cached("SELECT received_at FROM notifications WHERE id = ?1")?
                .query_row(params![id], |row| row.get(0))
                .optional()?;
            let (Some(received_at), Some(mut source)) = (received_at, open_text(connection, id)?) else {
                return Ok(None);
            };
            Ok(Some(read(from_ms(received_at), &mut source)))
        })
        .await
    }

    pub(super) async fn alert_states(
        &self,
        fingerprints: Vec<String>,
    ) -> Result<HashMap<String, AlertState>, StoreError> {
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(&sqlite_sql(sql::ALERT_STATE))?;
            let mut states = HashMap::new();
            for fingerprint in fingerprints {
                let row: Option<(String, Option<i64>)> =
                    statement.query_row(params![fingerprint], |row| Ok((row.get(0)?, row.get(1)?))).optional()?;
                if let Some((status, starts_at)) = row {
                    let status = if status == "resolved" { Status::Resolved } else { Status::Firing };
                    states.insert(fingerprint, AlertState { status, starts_at: starts_at.map(from_ms) });
                }
            }
            Ok(states)
        })
        .await
    }

    pub(super) async fn told(&self, contact: &str, fingerprints: Vec<String>) -> Result<HashSet<String>, StoreError> {
        let contact = contact.to_string();
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(&sqlite_sql(sql::TOLD))?;
            let mut told = HashSet::new();
            for fingerprint in fingerprints {
                if statement.exists(params![contact, fingerprint])? {
                    told.insert(fingerprint);
                }
            }
            Ok(told)
        })
        .await
    }

    pub(super) async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        self.read(|connection| {
            let mut stats = QueueStats::default();
            let mut statement = connection.prepare_cached(sql::QUEUE_STATS)?;
            let rows = statement.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, Option<i64>>(2)?))
            })?;
            for row in rows {
                let (state, count, oldest) = row?;
                stats.add_row(&state, count, oldest);
            }
            Ok(stats)
        })
        .await
    }

    pub(super) async fn gc(&self, retention: Retention) -> Result<(), StoreError> {
        self.write(move |connection| {
            for (statement, cut) in sql::GC {
                let mut statement = connection.prepare_cached(&sqlite_sql(statement))?;
                match cut {
                    Some(cut) => statement.execute(params![retention.cut(cut)])?,
                    None => statement.execute([])?,
                };
            }
            Ok(())
        })
        .await
    }
}

/// Inserts the notification row; returns its ID. The text is written into
/// a zero-filled BLOB of its size, piece by piece through SQLite's pages
/// (incremental BLOB I/O): binding it as a value made SQLite hold two
/// copies of it (the value, then the row), for a large notification the
/// largest part of its intake (issue 13, defect 8). Readers take text or
/// BLOB ([`stored_text`]; the summary's SQL casts it to text).
fn insert_notification(
    connection: &Connection,
    received_at: i64,
    notification: &crate::bridge::payload::Notification,
    payload: String,
) -> Result<i64, StoreError> {
    let size = i64::try_from(payload.len()).map_err(|_| StoreError::Corrupt("notification too large".into()))?;
    let id: i64 = connection.prepare_cached(&sqlite_sql(sql::INSERT_NOTIFICATION_SPACE))?.query_row(
        params![received_at, notification.receiver, notification.group_key, notification.status.as_str(), size],
        |row| row.get(0),
    )?;
    let mut blob = connection.blob_open("main", "notifications", "payload", id, false)?;
    std::io::Write::write_all(&mut blob, payload.as_bytes())
        .map_err(|err| StoreError::Unavailable(format!("cannot write notification {id}: {err}")))?;
    Ok(id)
}

/// A reader of notification `id`'s stored text: a page at a time through
/// SQLite's BLOB handle (the text is never held whole); a copy for a text
/// value SQLite will not open that way. `None` when the row is gone.
fn open_text(connection: &Connection, id: i64) -> Result<Option<Box<dyn encode::Source + '_>>, StoreError> {
    if let Ok(blob) = connection.blob_open("main", "notifications", "payload", id, true) {
        return Ok(Some(Box::new(std::io::BufReader::with_capacity(64 << 10, blob))));
    }
    let mut select = connection.prepare_cached(&sqlite_sql(sql::NOTIFICATION))?;
    let mut rows = select.query(params![id])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    Ok(Some(Box::new(std::io::Cursor::new(stored_text(row, id)?.as_bytes().to_vec()))))
}

/// The stored text of notification `id` in `row` (of `sql::NOTIFICATION`):
/// text, or the BLOB [`insert_notification`] writes.
fn stored_text<'r>(row: &'r rusqlite::Row<'_>, id: i64) -> Result<&'r str, StoreError> {
    let corrupt = |what: &dyn std::fmt::Display| StoreError::Corrupt(format!("notification {id}: {what}"));
    match row.get_ref(2)? {
        rusqlite::types::ValueRef::Text(bytes) | rusqlite::types::ValueRef::Blob(bytes) => {
            std::str::from_utf8(bytes).map_err(|err| corrupt(&err))
        }
        other => Err(corrupt(&format!("a stored notification of type {:?}", other.data_type()))),
    }
}

fn apply_one(
    connection: &Connection,
    transition: &Transition,
    encoded_event: Option<&(String, String)>,
    lane: &Lane,
    now: i64,
) -> Result<(), StoreError> {
    connection.prepare_cached(&sqlite_sql(sql::APPLY))?.execute(params![
        transition.row_id,
        transition.state.as_str(),
        to_ms(transition.due_at),
        i64::from(transition.attempts),
        transition.first_attempt_at.map(to_ms),
        transition.last_error,
        now
    ])?;
    if let (Some(event), Some((alerts, names))) = (&transition.event, encoded_event) {
        connection.prepare_cached(&sqlite_sql(sql::INSERT_EVENT))?.execute(params![
            to_ms(event.at),
            event.outbox_id,
            event.notification_id,
            event.contact,
            event.channel,
            event.kind.as_str(),
            event.outcome.as_str(),
            i64::from(event.attempt),
            alerts,
            names,
            event.provider_response,
            event.error,
            event.duration_ms
        ])?;
    }
    if let Some(sent_at) = transition.sent_at {
        connection.prepare_cached(&sqlite_sql(sql::INSERT_SEND))?.execute(params![
            lane.contact,
            lane.channel,
            to_ms(sent_at)
        ])?;
    }
    let mut told_firing = connection.prepare_cached(&sqlite_sql(sql::TOLD_FIRING))?;
    for (fingerprint, starts_at) in &transition.told_firing {
        told_firing.execute(params![lane.contact, fingerprint, starts_at.map(to_ms), now])?;
    }
    let mut told_resolved = connection.prepare_cached(&sqlite_sql(sql::TOLD_RESOLVED))?;
    for fingerprint in &transition.told_resolved {
        told_resolved.execute(params![lane.contact, fingerprint])?;
    }
    if let Some(id) = transition.told_notification {
        if let Some(source) = open_text(connection, id)? {
            encode::told_by(
                source,
                |fingerprint, starts_at| {
                    told_firing.execute(params![lane.contact, fingerprint, starts_at, now])?;
                    Ok(())
                },
                |fingerprint| {
                    told_resolved.execute(params![lane.contact, fingerprint])?;
                    Ok(())
                },
            )?;
        }
    }
    if let Some(leader) = transition.told_summary {
        connection.prepare_cached(&sqlite_sql(&Dialect::Sqlite.told_firing_sql()))?.execute(params![
            leader,
            lane.contact,
            now
        ])?;
        connection
            .prepare_cached(&sqlite_sql(&Dialect::Sqlite.told_resolved_sql()))?
            .execute(params![leader, lane.contact])?;
    }
    Ok(())
}
