//! Durable heartbeat data on the storage layer (the `heartbeats` area):
//! every ping (with the first 10,000 bytes of its body) and each check's
//! [`Record`] as JSON, written in one transaction per ping so a restart finds
//! the state the last answer told. The SQL runs on SQLite and PostgreSQL.

use super::state::{Kind, Record};
use crate::storage::{Area, SqlParam, Statement, Storage, column, from_ms, to_ms};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::HashMap;

pub use crate::storage::StoreError;

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

/// The heartbeats' area of the storage layer.
pub static AREA: Area = Area { name: "heartbeats", migrations: MIGRATIONS, legacy_table: "heartbeat_state" };

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

/// The heartbeat store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    storage: Storage,
}

fn corrupt(err: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("heartbeat record: {err}"))
}

const UPSERT: &str = "INSERT INTO heartbeat_state (check_name, record, updated_at) VALUES ($1, $2, $3) \
     ON CONFLICT (check_name) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at";

fn upsert(check: &str, json: String, now: DateTime<Utc>) -> Statement {
    (UPSERT.into(), vec![check.into(), json.into(), to_ms(now).into()])
}

impl Store {
    /// Opens (creating if needed) and migrates an SQLite file of its own at `path`.
    pub async fn open(path: &str) -> Result<Store, StoreError> {
        Store::new(Storage::Sqlite(crate::storage::sqlite::Sqlite::open(path).await?)).await
    }

    /// The heartbeats' tables in `storage`, migrated.
    pub async fn new(storage: Storage) -> Result<Store, StoreError> {
        storage.migrate(&AREA).await?;
        Ok(Store { storage })
    }

    /// Every stored record, by check name.
    pub async fn records(&self) -> Result<HashMap<String, Record>, StoreError> {
        let rows = self.storage.select("SELECT check_name, record FROM heartbeat_state", Vec::new()).await?;
        rows.iter()
            .map(|row| {
                Ok((
                    column(row, 0).string(),
                    serde_json::from_str(column(row, 1).text().unwrap_or_default()).map_err(corrupt)?,
                ))
            })
            .collect()
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
        let json = serde_json::to_string(record).map_err(corrupt)?;
        let mut statements = Vec::new();
        if let Some(ping) = ping {
            let params: Vec<SqlParam> = vec![
                check.into(),
                to_ms(ping.at).into(),
                ping.kind.as_str().into(),
                ping.exit_status.map(i64::from).into(),
                ping.rid.into(),
                ping.duration_seconds.map(|seconds| (seconds * 1000.0).round() as i64).into(),
                ping.source.into(),
                ping.method.into(),
                ping.remote_addr.into(),
                ping.user_agent.into(),
                ping.body.into(),
                i64::from(ping.body_truncated).into(),
            ];
            statements.push((
                "INSERT INTO heartbeat_pings (check_name, at, kind, exit_status, rid, duration_ms, source, method, \
                 remote_addr, user_agent, body, body_truncated) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                    .into(),
                params,
            ));
            statements.push((
                "DELETE FROM heartbeat_pings WHERE check_name = $1 AND id <= \
                 (SELECT id FROM heartbeat_pings WHERE check_name = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)"
                    .into(),
                vec![check.into(), i64::from(keep).into()],
            ));
        }
        statements.push(upsert(check, json, now));
        self.storage.transaction(statements).await?;
        Ok(())
    }

    /// Stores several records in one transaction.
    pub async fn save_records(&self, records: Vec<(String, Record)>, now: DateTime<Utc>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let statements = records
            .iter()
            .map(|(check, record)| Ok(upsert(check, serde_json::to_string(record).map_err(corrupt)?, now)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.storage.transaction(statements).await?;
        Ok(())
    }

    /// The newest `limit` pings of `check`, newest first.
    pub async fn pings(&self, check: &str, limit: u32) -> Result<Vec<Ping>, StoreError> {
        let rows = self
            .storage
            .select(
                "SELECT at, kind, exit_status, rid, duration_ms, source, method, remote_addr, user_agent, body, \
                 body_truncated FROM heartbeat_pings WHERE check_name = $1 ORDER BY id DESC LIMIT $2",
                vec![check.into(), i64::from(limit).into()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| Ping {
                at: from_ms(column(row, 0).int()),
                kind: column(row, 1).text().unwrap_or_default().parse().unwrap_or(Kind::Log),
                exit_status: column(row, 2).opt_int().and_then(|status| u8::try_from(status).ok()),
                rid: column(row, 3).opt_string(),
                duration_seconds: column(row, 4).opt_int().map(|ms| ms as f64 / 1000.0),
                source: source_name(column(row, 5).text().unwrap_or_default()),
                method: column(row, 6).string(),
                remote_addr: column(row, 7).opt_string(),
                user_agent: column(row, 8).opt_string(),
                body: column(row, 9).string(),
                body_truncated: column(row, 10).int() != 0,
            })
            .collect())
    }
}
