//! The result store of scheduled checks: an SQLite file of its own
//! (`check_options.store.sqlite.path`), written by one thread with group
//! commit and read from pooled read-only connections — the bridge store's
//! writer and migration runner, shared.
//!
//! **Row layout.** At 10,000 checks every 15 s, 48 hours of raw results are
//! ~115 million rows, so `results` is a `WITHOUT ROWID` table clustered on
//! `(check_id, at)`: one B-tree, no secondary index, the integer check id
//! instead of the name, times in milliseconds, the duration in microseconds,
//! success and maintenance packed in `flags`, and phase/reason only on
//! failures (NULL costs one header byte). Reading a check's history is a
//! range scan; expiry deletes per check by key range. Roll-ups are
//! `WITHOUT ROWID` on `(check_id, period, start)` and updated in the same
//! transaction as the raw row (an upsert adding counts and one histogram
//! column), so they are exact and survive crashes. Failed results are also
//! copied to `failures`, kept as long as incidents.
//!
//! `synchronous = NORMAL` (WAL): a power cut may lose the last commits, never
//! corrupt the file; results are measurements taken again a minute later.

use super::rollup::{BUCKET_COUNT, Period, Rollup, bucket_of};
use super::state::{Incident, State};
use crate::bridge::store::StoreError;
use crate::bridge::store::sqlite::{Job, open_writer, read, write};
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "
CREATE TABLE checks (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    paused INTEGER,
    paused_at INTEGER,
    health TEXT NOT NULL DEFAULT 'unknown',
    health_since INTEGER
);
CREATE TABLE results (
    check_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    phase TEXT,
    reason TEXT,
    PRIMARY KEY (check_id, at)
) WITHOUT ROWID;
CREATE TABLE failures (
    check_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    phase TEXT,
    reason TEXT,
    PRIMARY KEY (check_id, at)
) WITHOUT ROWID;
CREATE TABLE rollups (
    check_id INTEGER NOT NULL,
    period INTEGER NOT NULL,
    start INTEGER NOT NULL,
    runs INTEGER NOT NULL,
    successes INTEGER NOT NULL,
    maintenance_runs INTEGER NOT NULL,
    duration_sum_us INTEGER NOT NULL,
    duration_min_us INTEGER NOT NULL,
    duration_max_us INTEGER NOT NULL,
    b0 INTEGER NOT NULL DEFAULT 0, b1 INTEGER NOT NULL DEFAULT 0, b2 INTEGER NOT NULL DEFAULT 0,
    b3 INTEGER NOT NULL DEFAULT 0, b4 INTEGER NOT NULL DEFAULT 0, b5 INTEGER NOT NULL DEFAULT 0,
    b6 INTEGER NOT NULL DEFAULT 0, b7 INTEGER NOT NULL DEFAULT 0, b8 INTEGER NOT NULL DEFAULT 0,
    b9 INTEGER NOT NULL DEFAULT 0, b10 INTEGER NOT NULL DEFAULT 0, b11 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (check_id, period, start)
) WITHOUT ROWID;
CREATE TABLE incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    check_id INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    phase TEXT NOT NULL,
    reason TEXT NOT NULL,
    notified_at INTEGER
);
CREATE INDEX incidents_check ON incidents (check_id, started_at);
",
    ),
    (
        2,
        // Results pushed by agents, one row per (check, location, run). The
        // key is the run's time by the agent's own clock, which a resend
        // repeats exactly (`at`, corrected by the skew measured at each
        // send, varies with the transfer time), so a result stored twice is
        // stored once; `agent_batches` makes a batch sent twice acknowledged
        // without touching the roll-ups.
        "
CREATE TABLE location_results (
    check_id INTEGER NOT NULL,
    location TEXT NOT NULL,
    agent_at INTEGER NOT NULL,
    at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    phase TEXT,
    reason TEXT,
    PRIMARY KEY (check_id, location, agent_at)
) WITHOUT ROWID;
CREATE TABLE agent_batches (
    agent TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    results INTEGER NOT NULL,
    PRIMARY KEY (agent, batch_id)
) WITHOUT ROWID;
",
    ),
];

/// `flags` bits of a stored result.
const FLAG_SUCCESS: i64 = 1;
const FLAG_MAINTENANCE: i64 = 2;

fn to_ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// One finished run to store.
#[derive(Debug, Clone)]
pub struct NewResult {
    /// The check's store id.
    pub check_id: i64,
    /// When it started.
    pub at: DateTime<Utc>,
    /// How long the probe took, microseconds.
    pub duration_us: u64,
    /// Whether it succeeded.
    pub success: bool,
    /// The failure's phase and reason.
    pub failure: Option<(String, String)>,
    /// Whether it ran in maintenance.
    pub maintenance: bool,
}

/// A health change stored with the result that caused it.
#[derive(Debug, Clone)]
pub enum NewChange {
    /// The check is up (first verdict).
    Up { since: DateTime<Utc> },
    /// The check went down: open this incident.
    Down(Incident),
    /// The check recovered: close incident `id`.
    Recovered { id: i64, ended_at: DateTime<Utc> },
}

/// A stored result, as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StoredResult {
    /// Start, RFC 3339.
    pub at: DateTime<Utc>,
    /// Seconds.
    pub duration_seconds: f64,
    /// Whether it succeeded.
    pub success: bool,
    /// Whether it ran in maintenance.
    pub maintenance: bool,
    /// Failure phase.
    pub phase: Option<String>,
    /// Failure reason.
    pub reason: Option<String>,
    /// The agent location that measured it (none: checkit itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// One result pushed by an agent, its time already corrected to the central clock.
#[derive(Debug, Clone)]
pub struct LocationResult {
    /// The check's store id.
    pub check_id: i64,
    /// The agent's location.
    pub location: String,
    /// When it started (central time).
    pub at: DateTime<Utc>,
    /// When it started by the agent's clock (the key of a resend).
    pub agent_at: DateTime<Utc>,
    /// How long the probe took, microseconds.
    pub duration_us: u64,
    /// Whether it succeeded.
    pub success: bool,
    /// The failure's phase and reason.
    pub failure: Option<(String, String)>,
    /// Whether it ran in a maintenance window (decided centrally).
    pub maintenance: bool,
}

/// What [`CheckStore::ingest`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ingested {
    /// The batch had been stored before; nothing was written.
    pub duplicate: bool,
    /// Results newly stored.
    pub stored: usize,
}

fn read_result(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredResult> {
    let flags: i64 = row.get(2)?;
    Ok(StoredResult {
        at: from_ms(row.get(0)?),
        duration_seconds: row.get::<_, i64>(1)? as f64 / 1e6,
        success: flags & FLAG_SUCCESS != 0,
        maintenance: flags & FLAG_MAINTENANCE != 0,
        phase: row.get(3)?,
        reason: row.get(4)?,
        location: row.get(5)?,
    })
}

/// What the store knows of a check at start.
#[derive(Debug, Clone)]
pub struct Saved {
    /// Store id.
    pub id: i64,
    /// A pause or resume set by the API (wins over config).
    pub paused: Option<bool>,
    /// Last health.
    pub health: State,
    /// Since when.
    pub since: Option<DateTime<Utc>>,
    /// The open incident.
    pub incident: Option<Incident>,
}

/// The checks store; cheap to clone.
#[derive(Clone)]
pub struct CheckStore {
    writer: mpsc::Sender<Job>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
}

impl std::fmt::Debug for CheckStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckStore").field("path", &self.path).finish()
    }
}

fn read_incident(row: &rusqlite::Row<'_>) -> rusqlite::Result<Incident> {
    Ok(Incident {
        id: Some(row.get(0)?),
        started_at: from_ms(row.get(1)?),
        ended_at: row.get::<_, Option<i64>>(2)?.map(from_ms),
        phase: row.get(3)?,
        reason: row.get(4)?,
        notified_at: row.get::<_, Option<i64>>(5)?.map(from_ms),
    })
}

fn read_rollup(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Rollup> {
    let get = |index: usize| -> rusqlite::Result<u64> {
        Ok(u64::try_from(row.get::<_, Option<i64>>(first + index)?.unwrap_or(0)).unwrap_or(0))
    };
    let mut histogram = [0u64; BUCKET_COUNT];
    for (index, slot) in histogram.iter_mut().enumerate() {
        *slot = get(6 + index)?;
    }
    Ok(Rollup {
        runs: get(0)?,
        successes: get(1)?,
        maintenance_runs: get(2)?,
        duration_sum_us: get(3)?,
        duration_min_us: get(4)?,
        duration_max_us: get(5)?,
        histogram,
    })
}

/// Summed roll-up columns, in [`read_rollup`]'s order.
const SUM_COLUMNS: &str = "SUM(runs), SUM(successes), SUM(maintenance_runs), SUM(duration_sum_us), \
     MIN(CASE WHEN runs > 0 THEN duration_min_us END), MAX(duration_max_us), SUM(b0), SUM(b1), SUM(b2), SUM(b3), \
     SUM(b4), SUM(b5), SUM(b6), SUM(b7), SUM(b8), SUM(b9), SUM(b10), SUM(b11)";

impl CheckStore {
    /// Opens (creating if needed) and migrates the file at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<CheckStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let writer = open_writer(
            &path,
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
            MIGRATIONS,
            "checkit-checks-sqlite",
        )
        .await?;
        Ok(CheckStore { writer, readers: Arc::new(Mutex::new(Vec::new())), path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Ids of `names`, creating rows for new checks, with what was saved about them.
    pub async fn register(&self, names: Vec<String>) -> Result<HashMap<String, Saved>, StoreError> {
        write(&self.writer, move |connection| {
            let mut insert = connection.prepare_cached("INSERT OR IGNORE INTO checks (name) VALUES (?1)")?;
            let mut select =
                connection.prepare_cached("SELECT id, paused, health, health_since FROM checks WHERE name = ?1")?;
            let mut open = connection.prepare_cached(
                "SELECT id, started_at, ended_at, phase, reason, notified_at FROM incidents \
                 WHERE check_id = ?1 AND ended_at IS NULL ORDER BY started_at DESC LIMIT 1",
            )?;
            let mut saved = HashMap::new();
            for name in names {
                insert.execute(params![name])?;
                let (id, paused, health, since) = select.query_row(params![name], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, Option<i64>>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, Option<i64>>(3)?,
                    ))
                })?;
                let incident = open.query_row(params![id], read_incident).optional()?;
                let health = State::parse_health(&health);
                let saved_check = Saved {
                    id,
                    paused: paused.map(|paused| paused != 0),
                    health,
                    since: since.map(from_ms),
                    incident: if health == State::Down { incident } else { None },
                };
                saved.insert(name, saved_check);
            }
            Ok(saved)
        })
        .await
    }

    /// Stores a run, its roll-ups, and the health change it caused; returns
    /// the id of an incident it opened.
    pub async fn record(&self, result: NewResult, change: Option<NewChange>) -> Result<Option<i64>, StoreError> {
        write(&self.writer, move |connection| {
            let at = to_ms(result.at);
            let duration_us = i64::try_from(result.duration_us).unwrap_or(i64::MAX);
            let flags =
                if result.success { FLAG_SUCCESS } else { 0 } | if result.maintenance { FLAG_MAINTENANCE } else { 0 };
            let (phase, reason) = result.failure.clone().unzip();
            connection
                .prepare_cached(
                    "INSERT OR REPLACE INTO results (check_id, at, duration_us, flags, phase, reason) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![result.check_id, at, duration_us, flags, phase, reason])?;
            if !result.success {
                connection
                    .prepare_cached(
                        "INSERT OR REPLACE INTO failures (check_id, at, duration_us, flags, phase, reason) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![result.check_id, at, duration_us, flags, phase, reason])?;
            }
            add_to_rollups(connection, result.check_id, result.at, duration_us, result.success, result.maintenance)?;
            apply_change(connection, result.check_id, change)
        })
        .await
    }

    /// Stores agent `agent`'s batch `batch_id` in one transaction: a batch
    /// already stored is only acknowledged again, a result already stored
    /// (same check, location and time) is skipped, every other result goes
    /// to `location_results` and the roll-ups.
    pub async fn ingest(
        &self,
        agent: String,
        batch_id: String,
        received_at: DateTime<Utc>,
        results: Vec<LocationResult>,
    ) -> Result<Ingested, StoreError> {
        write(&self.writer, move |connection| {
            let fresh = connection
                .prepare_cached(
                    "INSERT OR IGNORE INTO agent_batches (agent, batch_id, received_at, results) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![agent, batch_id, to_ms(received_at), i64::try_from(results.len()).unwrap_or(0)])?;
            if fresh == 0 {
                return Ok(Ingested { duplicate: true, stored: 0 });
            }
            let mut stored = 0;
            for result in results {
                let duration_us = i64::try_from(result.duration_us).unwrap_or(i64::MAX);
                let flags = if result.success { FLAG_SUCCESS } else { 0 }
                    | if result.maintenance { FLAG_MAINTENANCE } else { 0 };
                let (phase, reason) = result.failure.clone().unzip();
                let inserted = connection
                    .prepare_cached(
                        "INSERT OR IGNORE INTO location_results \
                         (check_id, location, agent_at, at, received_at, duration_us, flags, phase, reason) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )?
                    .execute(params![
                        result.check_id,
                        result.location,
                        to_ms(result.agent_at),
                        to_ms(result.at),
                        to_ms(received_at),
                        duration_us,
                        flags,
                        phase,
                        reason
                    ])?;
                if inserted == 0 {
                    continue;
                }
                stored += 1;
                add_to_rollups(connection, result.check_id, result.at, duration_us, result.success, result.maintenance)?;
            }
            Ok(Ingested { duplicate: false, stored })
        })
        .await
    }

    /// Stores a health change decided by the quorum of a check's locations.
    pub async fn record_change(&self, check_id: i64, change: NewChange) -> Result<Option<i64>, StoreError> {
        write(&self.writer, move |connection| apply_change(connection, check_id, Some(change))).await
    }

    /// Results of check `id` pushed from `location`, oldest first (tests and diagnostics).
    pub async fn location_results(&self, id: i64, location: String) -> Result<Vec<StoredResult>, StoreError> {
        read(&self.path, &self.readers, move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT at, duration_us, flags, phase, reason, location FROM location_results \
                 WHERE check_id = ?1 AND location = ?2 ORDER BY at",
            )?;
            let rows = statement.query_map(params![id, location], read_result)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Records that people were told about incident `id` at `at`.
    pub async fn mark_notified(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        write(&self.writer, move |connection| {
            connection
                .prepare_cached("UPDATE incidents SET notified_at = ?2 WHERE id = ?1")?
                .execute(params![id, to_ms(at)])?;
            Ok(())
        })
        .await
    }

    /// Stores an API pause (`Some(true)`), resume (`Some(false)`) for `ids`.
    pub async fn set_paused(&self, ids: Vec<i64>, paused: bool, at: DateTime<Utc>) -> Result<(), StoreError> {
        write(&self.writer, move |connection| {
            let mut update =
                connection.prepare_cached("UPDATE checks SET paused = ?2, paused_at = ?3 WHERE id = ?1")?;
            for id in ids {
                update.execute(params![id, i64::from(paused), to_ms(at)])?;
            }
            Ok(())
        })
        .await
    }

    /// Results of check `id` with `from <= at < to`, newest first, at most `limit`.
    pub async fn results(
        &self,
        id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<StoredResult>, StoreError> {
        read(&self.path, &self.readers, move |connection| {
            // Failed results outlive raw retention in `failures`; the union
            // shows them with the raw rows still kept.
            let mut statement = connection.prepare_cached(
                "SELECT at, duration_us, flags, phase, reason, NULL FROM results WHERE check_id = ?1 AND at >= ?2 AND at < ?3 \
                 UNION SELECT at, duration_us, flags, phase, reason, NULL FROM failures \
                 WHERE check_id = ?1 AND at >= ?2 AND at < ?3 \
                 UNION ALL SELECT at, duration_us, flags, phase, reason, location FROM location_results \
                 WHERE check_id = ?1 AND at >= ?2 AND at < ?3 ORDER BY at DESC LIMIT ?4",
            )?;
            let rows = statement
                .query_map(params![id, to_ms(from), to_ms(to), limit], read_result)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Incidents of check `id` that overlap `[from, to)`, newest first.
    pub async fn incidents(
        &self,
        id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Incident>, StoreError> {
        read(&self.path, &self.readers, move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT id, started_at, ended_at, phase, reason, notified_at FROM incidents \
                 WHERE check_id = ?1 AND started_at < ?3 AND (ended_at IS NULL OR ended_at >= ?2) \
                 ORDER BY started_at DESC LIMIT ?4",
            )?;
            let rows = statement
                .query_map(params![id, to_ms(from), to_ms(to), limit], read_incident)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// The roll-ups of check `id` in `period` buckets starting in `[from, to)`, summed.
    pub async fn rollup(
        &self,
        id: i64,
        period: Period,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Rollup, StoreError> {
        read(&self.path, &self.readers, move |connection| {
            let sql = format!(
                "SELECT {SUM_COLUMNS} FROM rollups WHERE check_id = ?1 AND period = ?2 AND start >= ?3 AND start < ?4"
            );
            Ok(connection
                .prepare_cached(&sql)?
                .query_row(params![id, period.code(), to_ms(period.floor(from)), to_ms(to)], |row| {
                    read_rollup(row, 0)
                })?)
        })
        .await
    }

    /// Every check's roll-up sum over `period` buckets starting in `[from, to)`.
    pub async fn rollups_by_check(
        &self,
        period: Period,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<HashMap<i64, Rollup>, StoreError> {
        read(&self.path, &self.readers, move |connection| {
            let sql = format!(
                "SELECT check_id, {SUM_COLUMNS} FROM rollups WHERE period = ?1 AND start >= ?2 AND start < ?3 \
                 GROUP BY check_id"
            );
            let mut statement = connection.prepare_cached(&sql)?;
            let rows = statement
                .query_map(params![period.code(), to_ms(period.floor(from)), to_ms(to)], |row| {
                    Ok((row.get::<_, i64>(0)?, read_rollup(row, 1)?))
                })?
                .collect::<Result<HashMap<_, _>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// The same sums as [`CheckStore::rollup`], computed from raw results
    /// (within raw retention): the cross-check of the roll-ups.
    pub async fn raw_rollup(&self, id: i64, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Rollup, StoreError> {
        read(&self.path, &self.readers, move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT duration_us, flags FROM results WHERE check_id = ?1 AND at >= ?2 AND at < ?3",
            )?;
            let mut rollup = Rollup::default();
            let mut rows = statement.query(params![id, to_ms(from), to_ms(to)])?;
            while let Some(row) = rows.next()? {
                let duration_us = u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0);
                let flags: i64 = row.get(1)?;
                let mut one = Rollup::default();
                if flags & FLAG_MAINTENANCE != 0 {
                    one.maintenance_runs = 1;
                } else {
                    one.runs = 1;
                    one.successes = u64::from(flags & FLAG_SUCCESS != 0);
                    one.duration_sum_us = duration_us;
                    one.duration_min_us = duration_us;
                    one.duration_max_us = duration_us;
                    one.histogram[bucket_of(duration_us as f64 / 1e6)] = 1;
                }
                rollup.merge(&one);
            }
            Ok(rollup)
        })
        .await
    }

    /// Deletes raw results of check `id` older than `raw_before`, and its
    /// roll-ups, failures and closed incidents older than `rollups_before`.
    /// One check per transaction, so the writer never stalls for long.
    pub async fn expire(
        &self,
        id: i64,
        raw_before: DateTime<Utc>,
        rollups_before: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        write(&self.writer, move |connection| {
            let (raw, old) = (to_ms(raw_before), to_ms(rollups_before));
            let mut deleted =
                connection.execute("DELETE FROM results WHERE check_id = ?1 AND at < ?2", params![id, raw])?;
            deleted += connection.execute("DELETE FROM failures WHERE check_id = ?1 AND at < ?2", params![id, old])?;
            deleted +=
                connection.execute("DELETE FROM location_results WHERE check_id = ?1 AND at < ?2", params![id, raw])?;
            deleted += connection.execute("DELETE FROM agent_batches WHERE received_at < ?1", params![raw])?;
            deleted += connection.execute(
                "DELETE FROM rollups WHERE check_id = ?1 AND period IN (0, 1) AND start < ?2",
                params![id, old],
            )?;
            deleted += connection.execute(
                "DELETE FROM incidents WHERE check_id = ?1 AND ended_at IS NOT NULL AND ended_at < ?2",
                params![id, old],
            )?;
            Ok(deleted)
        })
        .await
    }

    /// Ids of every check the store knows (removed ones included), for expiry.
    pub async fn all_ids(&self) -> Result<Vec<i64>, StoreError> {
        read(&self.path, &self.readers, |connection| {
            let mut statement = connection.prepare_cached("SELECT id FROM checks ORDER BY id")?;
            let ids = statement.query_map([], |row| row.get(0))?.collect::<Result<Vec<i64>, _>>()?;
            Ok(ids)
        })
        .await
    }
}

/// Adds one run to its hourly and daily roll-ups.
fn add_to_rollups(
    connection: &Connection,
    check_id: i64,
    at: DateTime<Utc>,
    duration_us: i64,
    success: bool,
    maintenance: bool,
) -> rusqlite::Result<()> {
    let bucket = bucket_of(duration_us as f64 / 1e6);
    for period in [Period::Hour, Period::Day] {
        let start = to_ms(period.floor(at));
        let sql = if maintenance {
            "INSERT INTO rollups (check_id, period, start, runs, successes, maintenance_runs, \
             duration_sum_us, duration_min_us, duration_max_us) VALUES (?1, ?2, ?3, 0, 0, 1, 0, 0, 0) \
             ON CONFLICT (check_id, period, start) DO UPDATE SET maintenance_runs = maintenance_runs + 1"
                .to_string()
        } else {
            format!(
                "INSERT INTO rollups (check_id, period, start, runs, successes, maintenance_runs, \
                 duration_sum_us, duration_min_us, duration_max_us, b{bucket}) \
                 VALUES (?1, ?2, ?3, 1, ?4, 0, ?5, ?5, ?5, 1) \
                 ON CONFLICT (check_id, period, start) DO UPDATE SET runs = runs + 1, \
                 successes = successes + ?4, duration_sum_us = duration_sum_us + ?5, \
                 duration_min_us = CASE WHEN runs = 0 THEN ?5 ELSE MIN(duration_min_us, ?5) END, \
                 duration_max_us = MAX(duration_max_us, ?5), b{bucket} = b{bucket} + 1"
            )
        };
        let mut statement = connection.prepare_cached(&sql)?;
        if maintenance {
            statement.execute(params![check_id, period.code(), start])?;
        } else {
            statement.execute(params![check_id, period.code(), start, i64::from(success), duration_us])?;
        }
    }
    Ok(())
}

/// Stores a health change of check `check_id`; returns the id of an incident it opened.
fn apply_change(connection: &Connection, check_id: i64, change: Option<NewChange>) -> Result<Option<i64>, StoreError> {
    let mut opened = None;
    match change {
        None => {}
        Some(NewChange::Up { since }) => {
            connection
                .prepare_cached("UPDATE checks SET health = 'up', health_since = ?2 WHERE id = ?1")?
                .execute(params![check_id, to_ms(since)])?;
        }
        Some(NewChange::Recovered { id, ended_at }) => {
            connection
                .prepare_cached("UPDATE checks SET health = 'up', health_since = ?2 WHERE id = ?1")?
                .execute(params![check_id, to_ms(ended_at)])?;
            connection
                .prepare_cached("UPDATE incidents SET ended_at = ?2 WHERE id = ?1")?
                .execute(params![id, to_ms(ended_at)])?;
        }
        Some(NewChange::Down(incident)) => {
            connection
                .prepare_cached("UPDATE checks SET health = 'down', health_since = ?2 WHERE id = ?1")?
                .execute(params![check_id, to_ms(incident.started_at)])?;
            let id: i64 = connection
                .prepare_cached(
                    "INSERT INTO incidents (check_id, started_at, phase, reason) VALUES (?1, ?2, ?3, ?4) \
                     RETURNING id",
                )?
                .query_row(params![check_id, to_ms(incident.started_at), incident.phase, incident.reason], |row| {
                    row.get(0)
                })?;
            opened = Some(id);
        }
    }
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[tokio::test]
    async fn rollups_match_raw_results_and_survive_expiry_of_raw_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckStore::open(dir.path().join("checks.db")).await.unwrap();
        let saved = store.register(vec!["a".into()]).await.unwrap();
        let id = saved["a"].id;
        let start = Utc.with_ymd_and_hms(2026, 3, 1, 22, 0, 0).unwrap();
        for step in 0..240i64 {
            let success = step % 7 != 0;
            let result = NewResult {
                check_id: id,
                at: start + Duration::seconds(step * 60),
                duration_us: 1_000 + (step as u64 % 13) * 10_000,
                success,
                failure: (!success).then(|| ("connect".into(), "refused".into())),
                maintenance: step % 50 == 49,
            };
            store.record(result, None).await.unwrap();
        }
        let end = start + Duration::hours(4);
        let raw = store.raw_rollup(id, start, end).await.unwrap();
        let hourly = store.rollup(id, Period::Hour, start, end).await.unwrap();
        let daily = store.rollup(id, Period::Day, start, end).await.unwrap();
        assert_eq!(raw, hourly);
        assert_eq!(raw, daily);
        assert_eq!(raw.runs + raw.maintenance_runs, 240);
        assert_eq!(raw.maintenance_runs, 4);
        let all = store.rollups_by_check(Period::Hour, start, end).await.unwrap();
        assert_eq!(all[&id], hourly);
        store.expire(id, end, start).await.unwrap();
        assert_eq!(store.raw_rollup(id, start, end).await.unwrap().runs, 0);
        assert_eq!(store.rollup(id, Period::Hour, start, end).await.unwrap(), hourly, "roll-ups outlive raw rows");
        let failures = store.results(id, start, end, 1000).await.unwrap();
        assert!(!failures.is_empty() && failures.iter().all(|result| !result.success), "failures are kept");
    }
}
