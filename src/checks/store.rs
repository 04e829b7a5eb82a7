//! The result store of scheduled checks, on the storage layer (the `checks`
//! area): in the one SQLite file by default, in PostgreSQL for replicas. The
//! SQL is written once (`$n` placeholders) and runs on both.
//!
//! **Row layout.** At 10,000 checks every 15 s, 48 hours of raw results are
//! ~115 million rows, so `results` is keyed by `(check_id, at)` and holds
//! nothing else to index: the integer check id instead of the name, times in
//! milliseconds, the duration in microseconds, success, maintenance and "no
//! duration measured" packed in `flags`, and phase/reason only on failures
//! (NULL costs a bit of the row header). On SQLite the table is `WITHOUT
//! ROWID` (one B-tree clustered on the key); on PostgreSQL a heap with its
//! primary-key index, so a check's history is an index range scan and expiry
//! deletes per check by key range (small transactions that autovacuum keeps
//! up with). Roll-ups are keyed by
//! `(check_id, period, start)` and updated in the same transaction as the raw
//! row (an upsert adding counts and one histogram column), so they are exact
//! and survive crashes. Failed results are also copied to `failures`, kept as
//! long as incidents.
//!
//! A result may later carry more columns (a location for agents): add them
//! with a migration and to [`NewResult`]; every statement names its columns.

use super::rollup::{BUCKET_COUNT, Period, Rollup, bucket_of};
use super::state::{Incident, State};
use crate::storage::{Area, SqlParam, SqlValue, Statement, Storage, StoreError, column, from_ms, to_ms};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

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
    (
        3,
        // Operators' notes on incidents and maintenance windows planned from
        // the UI. Portable: `INTEGER PRIMARY KEY` ids become `BIGSERIAL` on
        // PostgreSQL, and the window's bounds avoid PostgreSQL's reserved
        // `end`.
        "
CREATE TABLE incident_notes (
    incident_id INTEGER NOT NULL PRIMARY KEY,
    title TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE incident_updates (
    id INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    author TEXT
);
CREATE INDEX incident_updates_incident ON incident_updates (incident_id, at);
CREATE TABLE planned_maintenance (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL,
    checks TEXT NOT NULL,
    created_by TEXT,
    created_at INTEGER NOT NULL
);
",
    ),
    (
        4,
        // Replicas share agents' results: every replica follows new rows by
        // their receive time (each location's machines), and when each agent
        // last called (its silence), whichever replica it called.
        "
CREATE INDEX location_results_received ON location_results (received_at);
CREATE TABLE agent_contacts (
    agent TEXT NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (agent)
) WITHOUT ROWID;
",
    ),
    (
        5,
        // Status pages and feeds ask for the incidents that overlap a window
        // (`ended_at IS NULL OR ended_at >= from`): with an index on the end
        // time both terms are index lookups instead of a scan of every
        // incident kept.
        "CREATE INDEX incidents_ended ON incidents (ended_at);",
    ),
];

/// The upsert of an agent's contact time (never moving it back).
const CONTACT_UPSERT: &str = "INSERT INTO agent_contacts (agent, last_seen) VALUES ($1, $2) \
     ON CONFLICT (agent) DO UPDATE SET last_seen = CASE WHEN excluded.last_seen > agent_contacts.last_seen \
     THEN excluded.last_seen ELSE agent_contacts.last_seen END";

/// The checks' area of the storage layer.
pub static AREA: Area = Area { name: "checks", migrations: MIGRATIONS, legacy_table: "rollups" };

/// `flags` bits of a stored result.
const FLAG_SUCCESS: i64 = 1;
const FLAG_MAINTENANCE: i64 = 2;
/// No duration was measured (a heartbeat's ping without a start, a missed
/// deadline): `duration_us` is 0 and means nothing. A flag rather than a
/// NULL column, so that the `NOT NULL` column needs no table rebuild.
const FLAG_NO_DURATION: i64 = 4;

/// One finished run to store.
#[derive(Debug, Clone)]
pub struct NewResult {
    /// The check's store id.
    pub check_id: i64,
    /// When it started.
    pub at: DateTime<Utc>,
    /// How long the run took, microseconds (`None`: not measured).
    pub duration_us: Option<u64>,
    /// Whether it succeeded.
    pub success: bool,
    /// The failure's phase and reason.
    pub failure: Option<(String, String)>,
    /// Whether it ran in maintenance.
    pub maintenance: bool,
}

impl NewResult {
    /// Its stored columns: duration (µs), `flags`, failure phase and reason.
    fn columns(&self) -> (i64, i64, Option<String>, Option<String>) {
        let duration_us = i64::try_from(self.duration_us.unwrap_or(0)).unwrap_or(i64::MAX);
        let flags = if self.success { FLAG_SUCCESS } else { 0 }
            | if self.maintenance { FLAG_MAINTENANCE } else { 0 }
            | if self.duration_us.is_none() { FLAG_NO_DURATION } else { 0 };
        let (phase, reason) = self.failure.clone().unzip();
        (duration_us, flags, phase, reason)
    }

    /// The upserts of the hourly and daily roll-ups it counts in.
    fn rollups(&self) -> Vec<Statement> {
        rollup_statements(self.check_id, self.at, self.duration_us, self.success, self.maintenance)
    }
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
    /// Seconds (`None`: not measured).
    pub duration_seconds: Option<f64>,
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
    /// The agent's location.
    pub location: String,
    /// When it started by the agent's clock (the key of a resend).
    pub agent_at: DateTime<Utc>,
    /// The run: its start by the central clock, and whether it ran in a
    /// maintenance window (decided centrally).
    pub run: NewResult,
}

/// A stored agent result, as replicas follow them ([`CheckStore::location_results_since`]).
#[derive(Debug, Clone)]
pub struct ReceivedResult {
    /// The result.
    pub result: LocationResult,
    /// When the replica that took it received its batch.
    pub received_at: DateTime<Utc>,
}

/// One location's results of a check over a window ([`CheckStore::location_summaries`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocationSummary {
    /// The location.
    #[serde(skip)]
    pub location: String,
    /// Runs outside maintenance.
    pub runs: u64,
    /// Failed runs outside maintenance.
    pub failures: u64,
    /// Successes over runs (none without runs).
    pub uptime: Option<f64>,
    /// The newest failure outside maintenance.
    pub last_failure_at: Option<DateTime<Utc>>,
}

/// What [`CheckStore::ingest`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Ingested {
    /// The batch had been stored before; nothing was written.
    pub duplicate: bool,
    /// Results newly stored.
    pub stored: usize,
}

fn read_result(row: &[SqlValue]) -> StoredResult {
    let get = |index: usize| column(row, index);
    let flags = get(2).int();
    StoredResult {
        at: from_ms(get(0).int()),
        duration_seconds: (flags & FLAG_NO_DURATION == 0).then(|| get(1).int() as f64 / 1e6),
        success: flags & FLAG_SUCCESS != 0,
        maintenance: flags & FLAG_MAINTENANCE != 0,
        phase: get(3).opt_string(),
        reason: get(4).opt_string(),
        location: get(5).opt_string(),
    }
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

/// One day's run counts of a check (see [`CheckStore::day_counts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayCount {
    /// The day's start (UTC midnight).
    pub start: DateTime<Utc>,
    /// Runs outside maintenance.
    pub runs: u64,
    /// Successful runs among them.
    pub successes: u64,
    /// Runs during maintenance.
    pub maintenance_runs: u64,
}

impl DayCount {
    /// The counts of the day roll-up `rollup` starting at `start`.
    pub fn of(start: DateTime<Utc>, rollup: &Rollup) -> DayCount {
        DayCount { start, runs: rollup.runs, successes: rollup.successes, maintenance_runs: rollup.maintenance_runs }
    }

    /// `successes / runs`, or `None` with no runs.
    pub fn uptime(&self) -> Option<f64> {
        (self.runs > 0).then(|| self.successes as f64 / self.runs as f64)
    }
}

/// The checks store; cheap to clone.
#[derive(Debug, Clone)]
pub struct CheckStore {
    storage: Storage,
}

pub(super) const INCIDENT_COLUMNS: &str = "id, started_at, ended_at, phase, reason, notified_at";

pub(super) fn read_incident(row: &[SqlValue]) -> Incident {
    let get = |index: usize| column(row, index);
    Incident {
        id: get(0).opt_int(),
        started_at: from_ms(get(1).int()),
        ended_at: get(2).opt_int().map(from_ms),
        phase: get(3).string(),
        reason: get(4).string(),
        notified_at: get(5).opt_int().map(from_ms),
    }
}

fn read_rollup(row: &[SqlValue], first: usize) -> Rollup {
    let get = |index: usize| -> u64 { u64::try_from(column(row, first + index).int()).unwrap_or(0) };
    let mut histogram = [0u64; BUCKET_COUNT];
    for (index, slot) in histogram.iter_mut().enumerate() {
        *slot = get(6 + index);
    }
    Rollup {
        runs: get(0),
        successes: get(1),
        maintenance_runs: get(2),
        duration_sum_us: get(3),
        duration_min_us: get(4),
        duration_max_us: get(5),
        histogram,
    }
}

/// Summed roll-up columns, in [`read_rollup`]'s order (sums cast back to
/// integers: PostgreSQL sums `BIGINT` as `NUMERIC`). The minimum is taken
/// over buckets with timed runs (histogram counts), as runs without a
/// measured duration leave `duration_min_us` at 0.
const SUM_COLUMNS: &str = "CAST(SUM(runs) AS BIGINT), CAST(SUM(successes) AS BIGINT), \
     CAST(SUM(maintenance_runs) AS BIGINT), CAST(SUM(duration_sum_us) AS BIGINT), \
     MIN(CASE WHEN b0 + b1 + b2 + b3 + b4 + b5 + b6 + b7 + b8 + b9 + b10 + b11 > 0 THEN duration_min_us END), \
     MAX(duration_max_us), CAST(SUM(b0) AS BIGINT), \
     CAST(SUM(b1) AS BIGINT), CAST(SUM(b2) AS BIGINT), CAST(SUM(b3) AS BIGINT), CAST(SUM(b4) AS BIGINT), \
     CAST(SUM(b5) AS BIGINT), CAST(SUM(b6) AS BIGINT), CAST(SUM(b7) AS BIGINT), CAST(SUM(b8) AS BIGINT), \
     CAST(SUM(b9) AS BIGINT), CAST(SUM(b10) AS BIGINT), CAST(SUM(b11) AS BIGINT)";

fn statement(sql: impl Into<Cow<'static, str>>, params: Vec<SqlParam>) -> Statement {
    (sql.into(), params)
}

/// The upsert of one timed non-maintenance run into a roll-up, per
/// histogram bucket; the bucket's first timed run sets its minimum. Written
/// once: every stored result runs one of them, twice (hour and day).
static ROLLUP_UPSERTS: std::sync::LazyLock<[String; BUCKET_COUNT]> = std::sync::LazyLock::new(|| {
    let timed = (0..BUCKET_COUNT).map(|index| format!("rollups.b{index}")).collect::<Vec<_>>().join(" + ");
    std::array::from_fn(|bucket| {
        format!(
            "INSERT INTO rollups (check_id, period, start, runs, successes, maintenance_runs, duration_sum_us, \
             duration_min_us, duration_max_us, b{bucket}) VALUES ($1, $2, $3, 1, $4, 0, $5, $5, $5, 1) \
             ON CONFLICT (check_id, period, start) DO UPDATE SET runs = rollups.runs + 1, \
             successes = rollups.successes + excluded.successes, \
             duration_sum_us = rollups.duration_sum_us + excluded.duration_sum_us, \
             duration_min_us = CASE WHEN {timed} = 0 OR excluded.duration_min_us < rollups.duration_min_us \
             THEN excluded.duration_min_us ELSE rollups.duration_min_us END, \
             duration_max_us = CASE WHEN excluded.duration_max_us > rollups.duration_max_us \
             THEN excluded.duration_max_us ELSE rollups.duration_max_us END, b{bucket} = rollups.b{bucket} + 1"
        )
    })
});

const MAINTENANCE_UPSERT: &str = "INSERT INTO rollups (check_id, period, start, runs, successes, maintenance_runs, \
     duration_sum_us, duration_min_us, duration_max_us) VALUES ($1, $2, $3, 0, 0, 1, 0, 0, 0) \
     ON CONFLICT (check_id, period, start) DO UPDATE SET maintenance_runs = rollups.maintenance_runs + 1";

/// The upsert of one non-maintenance run without a measured duration: it
/// counts, and leaves the durations and histogram alone.
const UNTIMED_UPSERT: &str = "INSERT INTO rollups (check_id, period, start, runs, successes, maintenance_runs, \
     duration_sum_us, duration_min_us, duration_max_us) VALUES ($1, $2, $3, 1, $4, 0, 0, 0, 0) \
     ON CONFLICT (check_id, period, start) DO UPDATE SET runs = rollups.runs + 1, \
     successes = rollups.successes + excluded.successes";

/// The roll-up upserts (hourly and daily) of one run.
fn rollup_statements(
    check: i64,
    at: DateTime<Utc>,
    duration: Option<u64>,
    success: bool,
    maintenance: bool,
) -> Vec<Statement> {
    [Period::Hour, Period::Day]
        .into_iter()
        .map(|period| {
            let mut params = vec![check.into(), period.code().into(), to_ms(period.floor(at)).into()];
            if maintenance {
                return statement(MAINTENANCE_UPSERT, params);
            }
            params.push(i64::from(success).into());
            match duration {
                None => statement(UNTIMED_UPSERT, params),
                Some(duration) => {
                    params.push(i64::try_from(duration).unwrap_or(i64::MAX).into());
                    statement(ROLLUP_UPSERTS[bucket_of(duration as f64 / 1e6)].as_str(), params)
                }
            }
        })
        .collect()
}

/// The statements of a health change of check `check` (an opened incident's
/// id is returned by the last one).
fn change_statements(check: i64, change: NewChange) -> Vec<Statement> {
    let health = "UPDATE checks SET health = $2, health_since = $3 WHERE id = $1";
    match change {
        NewChange::Up { since } => vec![statement(health, vec![check.into(), "up".into(), to_ms(since).into()])],
        NewChange::Recovered { id, ended_at } => vec![
            statement(health, vec![check.into(), "up".into(), to_ms(ended_at).into()]),
            statement("UPDATE incidents SET ended_at = $2 WHERE id = $1", vec![id.into(), to_ms(ended_at).into()]),
        ],
        NewChange::Down(incident) => {
            let started_at = to_ms(incident.started_at);
            vec![
                statement(health, vec![check.into(), "down".into(), started_at.into()]),
                statement(
                    "INSERT INTO incidents (check_id, started_at, phase, reason) VALUES ($1, $2, $3, $4) RETURNING id",
                    vec![check.into(), started_at.into(), incident.phase.into(), incident.reason.into()],
                ),
            ]
        }
    }
}

impl CheckStore {
    /// Opens (creating if needed) and migrates an SQLite file of its own at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<CheckStore, StoreError> {
        let storage = Storage::Sqlite(crate::storage::sqlite::Sqlite::open(path).await?);
        CheckStore::new(storage).await
    }

    /// The checks' tables in `storage`, migrated.
    pub async fn new(storage: Storage) -> Result<CheckStore, StoreError> {
        storage.migrate(&AREA).await?;
        Ok(CheckStore { storage })
    }

    /// The storage the tables live in.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Ids of `names`, creating rows for new checks, with what was saved about them.
    pub async fn register(&self, names: Vec<String>) -> Result<HashMap<String, Saved>, StoreError> {
        let known = self.saved().await?;
        let missing: Vec<Statement> = names
            .iter()
            .filter(|name| !known.contains_key(*name))
            .map(|name| {
                statement(
                    "INSERT INTO checks (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                    vec![name.as_str().into()],
                )
            })
            .collect();
        let mut saved = if missing.is_empty() {
            known
        } else {
            self.storage.transaction(missing).await?;
            self.saved().await?
        };
        Ok(names.into_iter().filter_map(|name| saved.remove(&name).map(|found| (name, found))).collect())
    }

    /// What is saved about check `name` (a replica taking it over reads it
    /// before its first run).
    pub async fn saved_one(&self, name: &str) -> Result<Option<Saved>, StoreError> {
        let rows = self
            .storage
            .select("SELECT id, paused, health, health_since FROM checks WHERE name = $1", vec![name.into()])
            .await?;
        let Some(row) = rows.first() else { return Ok(None) };
        let id = column(row, 0).int();
        let health = State::parse_health(column(row, 2).text().unwrap_or("unknown"));
        let incident = if health == State::Down {
            let open = self
                .storage
                .select(
                    format!(
                        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE check_id = $1 AND ended_at IS NULL \
                         ORDER BY started_at DESC LIMIT 1"
                    ),
                    vec![id.into()],
                )
                .await?;
            open.first().map(|row| read_incident(row))
        } else {
            None
        };
        Ok(Some(Saved {
            id,
            paused: column(row, 1).opt_int().map(|paused| paused != 0),
            health,
            since: column(row, 3).opt_int().map(from_ms),
            incident,
        }))
    }

    /// Pauses and resumes set by the API, by check id (replicas pick up each other's).
    pub async fn pauses(&self) -> Result<HashMap<i64, bool>, StoreError> {
        let rows = self.storage.select("SELECT id, paused FROM checks WHERE paused IS NOT NULL", Vec::new()).await?;
        Ok(rows.iter().map(|row| (column(row, 0).int(), column(row, 1).int() != 0)).collect())
    }

    /// What is saved about every check the store knows, by name.
    pub async fn saved(&self) -> Result<HashMap<String, Saved>, StoreError> {
        let open = self
            .storage
            .select(
                format!(
                    "SELECT check_id, {INCIDENT_COLUMNS} FROM incidents WHERE ended_at IS NULL ORDER BY started_at"
                ),
                Vec::new(),
            )
            .await?;
        // The newest open incident of each check (ordered oldest first).
        let open: HashMap<i64, Incident> =
            open.iter().map(|row| (column(row, 0).int(), read_incident(&row[1..]))).collect();
        let rows = self.storage.select("SELECT id, name, paused, health, health_since FROM checks", Vec::new()).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let id = column(&row, 0).int();
                let health = State::parse_health(column(&row, 3).text().unwrap_or("unknown"));
                let saved = Saved {
                    id,
                    paused: column(&row, 2).opt_int().map(|paused| paused != 0),
                    health,
                    since: column(&row, 4).opt_int().map(from_ms),
                    incident: if health == State::Down { open.get(&id).cloned() } else { None },
                };
                (column(&row, 1).string(), saved)
            })
            .collect())
    }

    /// Stores a run, its roll-ups, and the health change it caused; returns
    /// the id of an incident it opened.
    pub async fn record(&self, result: NewResult, change: Option<NewChange>) -> Result<Option<i64>, StoreError> {
        let at = to_ms(result.at);
        let check = result.check_id;
        let (duration_us, flags, phase, reason) = result.columns();
        let row = || -> Vec<SqlParam> {
            vec![check.into(), at.into(), duration_us.into(), flags.into(), phase.clone().into(), reason.clone().into()]
        };
        let mut statements = vec![statement(
            "INSERT INTO results (check_id, at, duration_us, flags, phase, reason) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (check_id, at) DO UPDATE SET duration_us = excluded.duration_us, flags = excluded.flags, \
             phase = excluded.phase, reason = excluded.reason",
            row(),
        )];
        if !result.success {
            statements.push(statement(
                "INSERT INTO failures (check_id, at, duration_us, flags, phase, reason) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (check_id, at) DO UPDATE SET duration_us = excluded.duration_us, flags = excluded.flags, \
                 phase = excluded.phase, reason = excluded.reason",
                row(),
            ));
        }
        statements.extend(result.rollups());
        let opens_incident = matches!(change, Some(NewChange::Down(_)));
        statements.extend(change.map(|change| change_statements(check, change)).unwrap_or_default());
        let done = self.storage.transaction(statements).await?;
        Ok(if opens_incident {
            done.last().and_then(|done| done.rows.first()).map(|row| column(row, 0).int())
        } else {
            None
        })
    }

    /// Stores agent `agent`'s batch `batch_id` in one transaction: a batch
    /// already stored is only acknowledged again, a result already stored
    /// (same check, location and agent time) is skipped, every other result
    /// goes to `location_results` and the roll-ups. The batch row has no
    /// `ON CONFLICT`: a concurrent twin fails whole, and is then answered as
    /// a duplicate.
    pub async fn ingest(
        &self,
        agent: String,
        batch_id: String,
        received_at: DateTime<Utc>,
        results: Vec<LocationResult>,
    ) -> Result<Ingested, StoreError> {
        let mut last_error = None;
        for _ in 0..2 {
            match self.try_ingest(&agent, &batch_id, received_at, &results).await {
                Ok(ingested) => return Ok(ingested),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| StoreError::Unavailable("ingest failed".into())))
    }

    async fn try_ingest(
        &self,
        agent: &str,
        batch_id: &str,
        received_at: DateTime<Utc>,
        results: &[LocationResult],
    ) -> Result<Ingested, StoreError> {
        let known = self
            .storage
            .select(
                "SELECT 1 FROM agent_batches WHERE agent = $1 AND batch_id = $2",
                vec![agent.into(), batch_id.into()],
            )
            .await?;
        if !known.is_empty() {
            return Ok(Ingested { duplicate: true, stored: 0 });
        }
        let mut stored_keys = std::collections::HashSet::new();
        if let (Some(first), Some(last)) = (
            results.iter().map(|result| to_ms(result.agent_at)).min(),
            results.iter().map(|result| to_ms(result.agent_at)).max(),
        ) {
            let location = results.first().map(|result| result.location.clone()).unwrap_or_default();
            let rows = self
                .storage
                .select(
                    "SELECT check_id, agent_at FROM location_results WHERE location = $1 AND agent_at >= $2 \
                     AND agent_at <= $3",
                    vec![location.into(), first.into(), last.into()],
                )
                .await?;
            stored_keys.extend(rows.iter().map(|row| (column(row, 0).int(), column(row, 1).int())));
        }
        let mut statements = vec![
            statement(
                "INSERT INTO agent_batches (agent, batch_id, received_at, results) VALUES ($1, $2, $3, $4)",
                vec![
                    agent.into(),
                    batch_id.into(),
                    to_ms(received_at).into(),
                    i64::try_from(results.len()).unwrap_or(i64::MAX).into(),
                ],
            ),
            statement(CONTACT_UPSERT, vec![agent.into(), to_ms(received_at).into()]),
        ];
        let mut stored = 0;
        for result in results {
            if !stored_keys.insert((result.run.check_id, to_ms(result.agent_at))) {
                continue;
            }
            stored += 1;
            let (duration_us, flags, phase, reason) = result.run.columns();
            statements.push(statement(
                "INSERT INTO location_results \
                 (check_id, location, agent_at, at, received_at, duration_us, flags, phase, reason) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                vec![
                    result.run.check_id.into(),
                    result.location.as_str().into(),
                    to_ms(result.agent_at).into(),
                    to_ms(result.run.at).into(),
                    to_ms(received_at).into(),
                    duration_us.into(),
                    flags.into(),
                    phase.into(),
                    reason.into(),
                ],
            ));
            statements.extend(result.run.rollups());
        }
        self.storage.transaction(statements).await?;
        Ok(Ingested { duplicate: false, stored })
    }

    /// Records that agent `agent` called at `at` (batches record it themselves).
    pub async fn touch_agent(&self, agent: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.storage.transaction(vec![statement(CONTACT_UPSERT, vec![agent.into(), to_ms(at).into()])]).await?;
        Ok(())
    }

    /// When each agent last called, by name.
    pub async fn agent_contacts(&self) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        let rows = self.storage.select("SELECT agent, last_seen FROM agent_contacts", Vec::new()).await?;
        Ok(rows.iter().map(|row| (column(row, 0).string(), from_ms(column(row, 1).int()))).collect())
    }

    /// Agents' results received at or after `since` (by the receiving
    /// replica's clock), oldest run first; at most `limit`.
    pub async fn location_results_since(
        &self,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ReceivedResult>, StoreError> {
        let rows = self
            .storage
            .select(
                "SELECT check_id, location, agent_at, at, received_at, duration_us, flags, phase, reason \
                 FROM location_results WHERE received_at >= $1 ORDER BY at, location, check_id LIMIT $2",
                vec![to_ms(since).into(), i64::try_from(limit).unwrap_or(i64::MAX).into()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let text = |index: usize| column(row, index).opt_string();
                let flags = column(row, 6).int();
                ReceivedResult {
                    result: LocationResult {
                        location: text(1).unwrap_or_default(),
                        agent_at: from_ms(column(row, 2).int()),
                        run: NewResult {
                            check_id: column(row, 0).int(),
                            at: from_ms(column(row, 3).int()),
                            duration_us: (flags & FLAG_NO_DURATION == 0)
                                .then(|| u64::try_from(column(row, 5).int()).unwrap_or(0)),
                            success: flags & FLAG_SUCCESS != 0,
                            failure: text(7).zip(text(8)),
                            maintenance: flags & FLAG_MAINTENANCE != 0,
                        },
                    },
                    received_at: from_ms(column(row, 4).int()),
                }
            })
            .collect())
    }

    /// Per location, check `id`'s pushed results started in `[from, to)`.
    pub async fn location_summaries(
        &self,
        id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<LocationSummary>, StoreError> {
        // Bit 1: a success, bit 2: in maintenance (other bits don't matter here).
        let rows = self
            .storage
            .select(
                "SELECT location, CAST(SUM(CASE WHEN (flags & 2) = 0 THEN 1 ELSE 0 END) AS BIGINT), \
                 CAST(SUM(CASE WHEN (flags & 3) = 0 THEN 1 ELSE 0 END) AS BIGINT), \
                 MAX(CASE WHEN (flags & 3) = 0 THEN at END) \
                 FROM location_results WHERE check_id = $1 AND at >= $2 AND at < $3 GROUP BY location ORDER BY location",
                vec![id.into(), to_ms(from).into(), to_ms(to).into()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let runs = u64::try_from(column(row, 1).int()).unwrap_or(0);
                let failures = u64::try_from(column(row, 2).int()).unwrap_or(0);
                LocationSummary {
                    location: column(row, 0).string(),
                    runs,
                    failures,
                    uptime: (runs > 0).then(|| runs.saturating_sub(failures) as f64 / runs as f64),
                    last_failure_at: matches!(column(row, 3), SqlValue::Int(_)).then(|| from_ms(column(row, 3).int())),
                }
            })
            .collect())
    }

    /// Stores a health change decided by the quorum of a check's locations;
    /// returns the id of an incident it opened.
    pub async fn record_change(&self, check_id: i64, change: NewChange) -> Result<Option<i64>, StoreError> {
        let opens_incident = matches!(change, NewChange::Down(_));
        let done = self.storage.transaction(change_statements(check_id, change)).await?;
        Ok(if opens_incident {
            done.last().and_then(|done| done.rows.first()).map(|row| column(row, 0).int())
        } else {
            None
        })
    }

    /// Records that people were told about incident `id` at `at`.
    pub async fn mark_notified(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        let update =
            statement("UPDATE incidents SET notified_at = $2 WHERE id = $1", vec![id.into(), to_ms(at).into()]);
        self.storage.transaction(vec![update]).await?;
        Ok(())
    }

    /// Stores an API pause (`true`) or resume (`false`) for `ids`.
    pub async fn set_paused(&self, ids: Vec<i64>, paused: bool, at: DateTime<Utc>) -> Result<(), StoreError> {
        let updates = ids
            .into_iter()
            .map(|id| {
                statement(
                    "UPDATE checks SET paused = $2, paused_at = $3 WHERE id = $1",
                    vec![id.into(), i64::from(paused).into(), to_ms(at).into()],
                )
            })
            .collect();
        self.storage.transaction(updates).await?;
        Ok(())
    }

    /// Results of check `id` with `from <= at < to`, newest first, at most `limit`.
    pub async fn results(
        &self,
        id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<StoredResult>, StoreError> {
        // Failed results outlive raw retention in `failures`; the union shows
        // them with the raw rows still kept.
        let rows = self
            .storage
            .select(
                "SELECT at, duration_us, flags, phase, reason, NULL FROM results \
                 WHERE check_id = $1 AND at >= $2 AND at < $3 \
                 UNION SELECT at, duration_us, flags, phase, reason, NULL FROM failures \
                 WHERE check_id = $1 AND at >= $2 AND at < $3 \
                 UNION ALL SELECT at, duration_us, flags, phase, reason, location FROM location_results \
                 WHERE check_id = $1 AND at >= $2 AND at < $3 ORDER BY 1 DESC LIMIT $4",
                vec![id.into(), to_ms(from).into(), to_ms(to).into(), i64::from(limit).into()],
            )
            .await?;
        Ok(rows.iter().map(|row| read_result(row)).collect())
    }

    /// The newest result of check `id`, raw or kept among the failures, for
    /// a check without an agent's locations (a heartbeat). Each side is one
    /// step down its primary key, where [`CheckStore::results`] would merge
    /// the check's whole history to find it.
    pub async fn last_result(&self, id: i64) -> Result<Option<StoredResult>, StoreError> {
        let rows = self
            .storage
            .select(
                "SELECT * FROM (SELECT at, duration_us, flags, phase, reason, NULL AS location FROM results \
                 WHERE check_id = $1 ORDER BY at DESC LIMIT 1) AS raw \
                 UNION ALL SELECT * FROM (SELECT at, duration_us, flags, phase, reason, NULL AS location \
                 FROM failures WHERE check_id = $1 ORDER BY at DESC LIMIT 1) AS kept ORDER BY 1 DESC LIMIT 1",
                vec![id.into()],
            )
            .await?;
        Ok(rows.first().map(|row| read_result(row)))
    }

    /// Incidents of check `id` that overlap `[from, to)`, newest first.
    pub async fn incidents(
        &self,
        id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Incident>, StoreError> {
        let rows = self
            .storage
            .select(
                format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE check_id = $1 AND started_at < $3 \
                     AND (ended_at IS NULL OR ended_at >= $2) ORDER BY started_at DESC LIMIT $4"
                ),
                vec![id.into(), to_ms(from).into(), to_ms(to).into(), i64::from(limit).into()],
            )
            .await?;
        Ok(rows.iter().map(|row| read_incident(row)).collect())
    }

    /// The roll-ups of check `id` in `period` buckets starting in `[from, to)`, summed.
    pub async fn rollup(
        &self,
        id: i64,
        period: Period,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Rollup, StoreError> {
        let rows = self
            .storage
            .select(
                format!(
                    "SELECT {SUM_COLUMNS} FROM rollups WHERE check_id = $1 AND period = $2 AND start >= $3 AND start < $4"
                ),
                vec![id.into(), period.code().into(), to_ms(period.floor(from)).into(), to_ms(to).into()],
            )
            .await?;
        Ok(rows.first().map(|row| read_rollup(row, 0)).unwrap_or_default())
    }

    /// Each bucket of `period` starting in `[from, to)` of each check of
    /// `ids`, oldest first: the status page's day bars and the check page's
    /// charts. One key-range scan per check (the key leads with the check),
    /// never a scan of every check's roll-ups.
    pub async fn series(
        &self,
        ids: Vec<i64>,
        period: Period,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<HashMap<i64, Vec<(DateTime<Utc>, Rollup)>>, StoreError> {
        let sql = format!(
            "SELECT start, {SUM_COLUMNS} FROM rollups WHERE check_id = $1 AND period = $2 AND start >= $3 \
             AND start < $4 GROUP BY start ORDER BY start"
        );
        let mut series: HashMap<i64, Vec<(DateTime<Utc>, Rollup)>> = HashMap::with_capacity(ids.len());
        for id in ids {
            let rows = self
                .storage
                .select(
                    sql.clone(),
                    vec![id.into(), period.code().into(), to_ms(period.floor(from)).into(), to_ms(to).into()],
                )
                .await?;
            let buckets = rows.iter().map(|row| (from_ms(column(row, 0).int()), read_rollup(row, 1))).collect();
            series.insert(id, buckets);
        }
        Ok(series)
    }

    /// The daily run counts of every stored check for days starting in
    /// `[from, to)`, by check, oldest first: a status page's day bars. One
    /// query that seeks each check's key range (`IN`, as a join without
    /// table statistics makes SQLite scan every roll-up), reading only the
    /// three counts a bar shows.
    pub async fn day_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<HashMap<i64, Vec<DayCount>>, StoreError> {
        let rows = self
            .storage
            .select(
                "SELECT check_id, start, runs, successes, maintenance_runs FROM rollups \
                 WHERE check_id IN (SELECT id FROM checks) AND period = $1 AND start >= $2 AND start < $3 \
                 ORDER BY check_id, start",
                vec![Period::Day.code().into(), to_ms(Period::Day.floor(from)).into(), to_ms(to).into()],
            )
            .await?;
        let mut counts: HashMap<i64, Vec<DayCount>> = HashMap::new();
        let count = |value: &SqlValue| u64::try_from(value.int()).unwrap_or(0);
        for row in &rows {
            let [check, start, runs, successes, maintenance_runs] = row.as_slice() else { continue };
            counts.entry(check.int()).or_default().push(DayCount {
                start: from_ms(start.int()),
                runs: count(runs),
                successes: count(successes),
                maintenance_runs: count(maintenance_runs),
            });
        }
        Ok(counts)
    }

    /// Incidents of any check overlapping `[from, to)`, newest first, with
    /// their check's id.
    pub async fn incidents_of_all(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(i64, Incident)>, StoreError> {
        let rows = self
            .storage
            .select(
                format!(
                    "SELECT {INCIDENT_COLUMNS}, check_id FROM incidents WHERE started_at < $2 \
                     AND (ended_at IS NULL OR ended_at >= $1) ORDER BY started_at DESC LIMIT $3"
                ),
                vec![to_ms(from).into(), to_ms(to).into(), i64::from(limit).into()],
            )
            .await?;
        Ok(rows.iter().map(|row| (column(row, 6).int(), read_incident(row))).collect())
    }

    /// Every check's roll-up sum over `period` buckets starting in `[from, to)`.
    pub async fn rollups_by_check(
        &self,
        period: Period,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<HashMap<i64, Rollup>, StoreError> {
        let rows = self
            .storage
            .select(
                format!(
                    "SELECT check_id, {SUM_COLUMNS} FROM rollups WHERE period = $1 AND start >= $2 AND start < $3 \
                     GROUP BY check_id"
                ),
                vec![period.code().into(), to_ms(period.floor(from)).into(), to_ms(to).into()],
            )
            .await?;
        Ok(rows.iter().map(|row| (column(row, 0).int(), read_rollup(row, 1))).collect())
    }

    /// The same sums as [`CheckStore::rollup`], computed from raw results
    /// (within raw retention): the cross-check of the roll-ups.
    pub async fn raw_rollup(&self, id: i64, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Rollup, StoreError> {
        let rows = self
            .storage
            .select(
                "SELECT duration_us, flags FROM results WHERE check_id = $1 AND at >= $2 AND at < $3",
                vec![id.into(), to_ms(from).into(), to_ms(to).into()],
            )
            .await?;
        let mut rollup = Rollup::default();
        for row in rows {
            let duration_us = u64::try_from(column(&row, 0).int()).unwrap_or(0);
            let flags = column(&row, 1).int();
            let mut one = Rollup::default();
            if flags & FLAG_MAINTENANCE != 0 {
                one.maintenance_runs = 1;
            } else {
                one.runs = 1;
                one.successes = u64::from(flags & FLAG_SUCCESS != 0);
            }
            if flags & (FLAG_MAINTENANCE | FLAG_NO_DURATION) == 0 {
                one.duration_sum_us = duration_us;
                one.duration_min_us = duration_us;
                one.duration_max_us = duration_us;
                one.histogram[bucket_of(duration_us as f64 / 1e6)] = 1;
            }
            rollup.merge(&one);
        }
        Ok(rollup)
    }

    /// How many raw results check `id` has with `from <= at < to`.
    pub async fn count_results(&self, id: i64, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<u64, StoreError> {
        let rows = self
            .storage
            .select(
                "SELECT COUNT(*) FROM results WHERE check_id = $1 AND at >= $2 AND at < $3",
                vec![id.into(), to_ms(from).into(), to_ms(to).into()],
            )
            .await?;
        Ok(rows.first().map_or(0, |row| u64::try_from(column(row, 0).int()).unwrap_or(0)))
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
        let (raw, old) = (to_ms(raw_before), to_ms(rollups_before));
        let done = self
            .storage
            .transaction(vec![
                statement("DELETE FROM results WHERE check_id = $1 AND at < $2", vec![id.into(), raw.into()]),
                statement("DELETE FROM failures WHERE check_id = $1 AND at < $2", vec![id.into(), old.into()]),
                statement("DELETE FROM location_results WHERE check_id = $1 AND at < $2", vec![id.into(), raw.into()]),
                statement("DELETE FROM agent_batches WHERE received_at < $1", vec![raw.into()]),
                statement(
                    "DELETE FROM rollups WHERE check_id = $1 AND period IN (0, 1) AND start < $2",
                    vec![id.into(), old.into()],
                ),
                statement(
                    "DELETE FROM incidents WHERE check_id = $1 AND ended_at IS NOT NULL AND ended_at < $2",
                    vec![id.into(), old.into()],
                ),
            ])
            .await?;
        Ok(done.iter().map(|done| usize::try_from(done.changed).unwrap_or(usize::MAX)).sum())
    }

    /// Ids of every check the store knows (removed ones included), for expiry.
    pub async fn all_ids(&self) -> Result<Vec<i64>, StoreError> {
        let rows = self.storage.select("SELECT id FROM checks ORDER BY id", Vec::new()).await?;
        Ok(rows.iter().map(|row| column(row, 0).int()).collect())
    }
}
