//! Durable heartbeat data in SQLite: every ping (with the first 10,000 bytes
//! of its body) and each check's [`Record`] as JSON, written in one
//! transaction per ping so a restart finds the state the last answer told.
//!
//! One connection behind a mutex, used on the blocking pool: heartbeats are
//! few and small, and the group commit of the bridge's store is not needed
//! here. Migrations are versioned and only ever appended.

use super::state::{Kind, Record};
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A storage failure; pings are answered 503 on any of these.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The store cannot be reached (a task or lock failed).
    #[error("{0}")]
    Unavailable(String),
    /// A stored record could not be decoded.
    #[error("corrupt stored state: {0}")]
    Corrupt(#[from] serde_json::Error),
}

/// `(version, SQL)` in order.
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "
CREATE TABLE heartbeat_pings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    check_name TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    exit_status INTEGER,
    rid TEXT,
    duration_ms INTEGER,
    source TEXT NOT NULL,
    method TEXT NOT NULL,
    remote_addr TEXT,
    user_agent TEXT,
    body TEXT NOT NULL,
    body_truncated INTEGER NOT NULL
);
CREATE INDEX heartbeat_pings_check ON heartbeat_pings (check_name, id);
CREATE TABLE heartbeat_state (
    check_name TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
",
)];

/// One ping as stored and listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ping {
    /// When it arrived.
    pub at: DateTime<Utc>,
    /// What it said.
    pub kind: Kind,
    /// The exit status, when sent as `/ping/<uuid>/<status>`.
    pub exit_status: Option<u8>,
    /// The run id from `?rid=`.
    pub rid: Option<String>,
    /// The run's duration, when it ended a started run (or a result said so).
    pub duration_seconds: Option<f64>,
    /// `uuid`, `slug` or `results`: how the check was addressed.
    pub source: &'static str,
    /// The HTTP method.
    pub method: String,
    /// The client's address.
    pub remote_addr: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// The first 10,000 bytes of the body (lossy UTF-8), or a result's message.
    pub body: String,
    /// Whether the body was longer than what is kept.
    pub body_truncated: bool,
}

fn source_name(text: &str) -> &'static str {
    match text {
        "uuid" => "uuid",
        "slug" => "slug",
        "results" => "results",
        _ => "unknown",
    }
}

fn to_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The heartbeat store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    connection: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("heartbeat::Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub async fn open(path: &str) -> Result<Store, StoreError> {
        let path = path.to_string();
        let connection = tokio::task::spawn_blocking(move || -> Result<Connection, StoreError> {
            let connection = Connection::open(&path)?;
            connection
                .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;")?;
            migrate(&connection)?;
            Ok(connection)
        })
        .await
        .map_err(|err| StoreError::Unavailable(format!("sqlite open task failed: {err}")))??;
        Ok(Store { connection: Arc::new(Mutex::new(connection)) })
    }

    async fn with<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            let mut guard = connection.lock().map_err(|_| StoreError::Unavailable("store lock poisoned".into()))?;
            work(&mut guard)
        })
        .await
        .map_err(|err| StoreError::Unavailable(format!("sqlite task failed: {err}")))?
    }

    /// Every stored record, by check name.
    pub async fn records(&self) -> Result<HashMap<String, Record>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare("SELECT check_name, record FROM heartbeat_state")?;
            let rows = statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?;
            let mut records = HashMap::new();
            for row in rows {
                let (name, json) = row?;
                records.insert(name, serde_json::from_str(&json)?);
            }
            Ok(records)
        })
        .await
    }

    /// Stores `ping` (when given) and `record` for `check` in one transaction,
    /// keeping only the newest `keep` pings of the check.
    pub async fn save(
        &self,
        check: &str,
        ping: Option<Ping>,
        record: &Record,
        keep: u32,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let check = check.to_string();
        let json = serde_json::to_string(record)?;
        self.with(move |connection| {
            let transaction = connection.transaction()?;
            if let Some(ping) = ping {
                transaction.execute(
                    "INSERT INTO heartbeat_pings (check_name, at, kind, exit_status, rid, duration_ms, source, method, \
                     remote_addr, user_agent, body, body_truncated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    params![
                        check,
                        to_ms(ping.at),
                        ping.kind.as_str(),
                        ping.exit_status,
                        ping.rid,
                        ping.duration_seconds.map(|seconds| (seconds * 1000.0).round() as i64),
                        ping.source,
                        ping.method,
                        ping.remote_addr,
                        ping.user_agent,
                        ping.body,
                        ping.body_truncated,
                    ],
                )?;
                transaction.execute(
                    "DELETE FROM heartbeat_pings WHERE check_name = ?1 AND id <= \
                     (SELECT id FROM heartbeat_pings WHERE check_name = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                    params![check, keep],
                )?;
            }
            upsert(&transaction, &check, &json, now)?;
            transaction.commit()?;
            Ok(())
        })
        .await
    }

    /// Stores several records in one transaction.
    pub async fn save_records(&self, records: Vec<(String, Record)>, now: DateTime<Utc>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let encoded = records
            .iter()
            .map(|(check, record)| Ok((check.clone(), serde_json::to_string(record)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        self.with(move |connection| {
            let transaction = connection.transaction()?;
            for (check, json) in &encoded {
                upsert(&transaction, check, json, now)?;
            }
            transaction.commit()?;
            Ok(())
        })
        .await
    }

    /// The newest `limit` pings of `check`, newest first.
    pub async fn pings(&self, check: &str, limit: u32) -> Result<Vec<Ping>, StoreError> {
        let check = check.to_string();
        self.with(move |connection| {
            let mut statement = connection.prepare(
                "SELECT at, kind, exit_status, rid, duration_ms, source, method, remote_addr, user_agent, body, \
                 body_truncated FROM heartbeat_pings WHERE check_name = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = statement.query_map(params![check, limit], |row| {
                Ok(Ping {
                    at: from_ms(row.get(0)?),
                    kind: Kind::parse(&row.get::<_, String>(1)?).unwrap_or(Kind::Log),
                    exit_status: row.get(2)?,
                    rid: row.get(3)?,
                    duration_seconds: row.get::<_, Option<i64>>(4)?.map(|ms| ms as f64 / 1000.0),
                    source: source_name(&row.get::<_, String>(5)?),
                    method: row.get(6)?,
                    remote_addr: row.get(7)?,
                    user_agent: row.get(8)?,
                    body: row.get(9)?,
                    body_truncated: row.get(10)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

fn upsert(connection: &Connection, check: &str, json: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    connection.execute(
        "INSERT INTO heartbeat_state (check_name, record, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (check_name) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at",
        params![check, json, to_ms(now)],
    )?;
    Ok(())
}

fn migrate(connection: &Connection) -> Result<(), StoreError> {
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )?;
    let applied: i64 = connection
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |row| row.get::<_, Option<i64>>(0))
        .optional()?
        .flatten()
        .unwrap_or(0);
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > applied) {
        let transaction = connection.unchecked_transaction()?;
        transaction.execute_batch(sql)?;
        transaction.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            params![version, Utc::now().timestamp_millis()],
        )?;
        transaction.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(at: i64, body: &str) -> Ping {
        Ping {
            at: from_ms(at),
            kind: Kind::Success,
            exit_status: Some(0),
            rid: None,
            duration_seconds: Some(1.5),
            source: "uuid",
            method: "POST".into(),
            remote_addr: Some("127.0.0.1".into()),
            user_agent: None,
            body: body.into(),
            body_truncated: false,
        }
    }

    #[tokio::test]
    async fn pings_and_records_survive_a_reopen_and_old_pings_are_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hb.db").display().to_string();
        let store = Store::open(&path).await.unwrap();
        let mut record = Record::default();
        for at in 1..=5 {
            record.last_ping = Some(from_ms(at * 1000));
            store.save("backup", Some(ping(at * 1000, &format!("run {at}"))), &record, 3, from_ms(at)).await.unwrap();
        }
        drop(store);
        let store = Store::open(&path).await.unwrap();
        let pings = store.pings("backup", 10).await.unwrap();
        assert_eq!(pings.iter().map(|ping| ping.body.as_str()).collect::<Vec<_>>(), ["run 5", "run 4", "run 3"]);
        assert_eq!(pings[0].duration_seconds, Some(1.5));
        assert_eq!(store.records().await.unwrap()["backup"], record);
    }
}
