//! The agent's durable queue: every result is committed here (SQLite,
//! `synchronous = FULL`, group commit on the bridge store's writer thread)
//! before anything is sent, and deleted only after the central instance
//! acknowledged the batch that carried it. The same file keeps the last
//! assignment fetched, so a restarted agent runs while the central instance
//! is unreachable.
//!
//! Bounds: results older than `max_age` and the oldest beyond `max_size`
//! are dropped, counted and logged. Rows are numbered by an increasing
//! `seq`, so the size bound is one range delete.

use crate::storage::sqlite::Sqlite;
use crate::storage::{Area, StoreError};
use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{OptionalExtension, params};
use std::path::Path;

const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    check_name TEXT NOT NULL,
    at INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    success INTEGER NOT NULL,
    phase TEXT,
    reason TEXT
);
CREATE INDEX queue_at ON queue (at);
",
)];

/// One queued result.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    /// Its position in the queue.
    pub seq: i64,
    /// The check's name.
    pub check: String,
    /// Start, by the agent's clock.
    pub at: DateTime<Utc>,
    /// Microseconds.
    pub duration_us: u64,
    /// Whether it succeeded.
    pub success: bool,
    /// Failure phase and reason.
    pub failure: Option<(String, String)>,
}

/// How many results a bound dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Older than `max_age`.
    pub age: u64,
    /// Beyond `max_size`.
    pub size: u64,
}

/// The queue's area of the storage layer (a file of its own).
static AREA: Area = Area { name: "agent_queue", migrations: MIGRATIONS, legacy_table: "queue" };

/// The queue; cheap to clone.
#[derive(Clone, Debug)]
pub struct Queue {
    sqlite: Sqlite,
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

impl Queue {
    /// Opens (creating if needed) the queue at `path`.
    pub async fn open(path: &Path) -> Result<Queue, StoreError> {
        // The storage layer's SQLite runs with `synchronous = FULL`: a result
        // acknowledged to the scheduler survives a power cut too, not only a
        // killed process.
        let sqlite = Sqlite::open(path).await?;
        sqlite.migrate(&AREA).await?;
        Ok(Queue { sqlite })
    }

    /// The value stored under `key`.
    pub async fn meta(&self, key: &'static str) -> Result<Option<String>, StoreError> {
        self.sqlite
            .write(move |connection| {
                Ok(connection
                    .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                    .query_row(params![key], |row| row.get(0))
                    .optional()?)
            })
            .await
    }

    /// Stores `value` under `key`.
    pub async fn set_meta(&self, key: &'static str, value: String) -> Result<(), StoreError> {
        self.sqlite
            .write(move |connection| {
                connection
                    .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
                    .execute(params![key, value])?;
                Ok(())
            })
            .await
    }

    /// The queue's own id, created once: batch ids start with it, so a
    /// queue file recreated from scratch never repeats an old batch id.
    pub async fn id(&self) -> Result<String, StoreError> {
        if let Some(id) = self.meta("queue_id").await? {
            return Ok(id);
        }
        let id = hex::encode(rand::random::<[u8; 16]>());
        self.set_meta("queue_id", id.clone()).await?;
        Ok(id)
    }

    /// Appends one result; returns once committed. Drops the oldest rows
    /// beyond `max_size` in the same transaction.
    pub async fn push(&self, result: Queued, max_size: u64) -> Result<Dropped, StoreError> {
        self.sqlite
            .write(move |connection| {
                let (phase, reason) = result.failure.unzip();
                let seq: i64 = connection
                    .prepare_cached(
                        "INSERT INTO queue (check_name, at, duration_us, success, phase, reason) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING seq",
                    )?
                    .query_row(
                        params![
                            result.check,
                            result.at.timestamp_millis(),
                            i64::try_from(result.duration_us).unwrap_or(i64::MAX),
                            i64::from(result.success),
                            phase,
                            reason
                        ],
                        |row| row.get(0),
                    )?;
                let keep_from = seq.saturating_sub(i64::try_from(max_size).unwrap_or(i64::MAX)).saturating_add(1);
                let size =
                    connection.prepare_cached("DELETE FROM queue WHERE seq < ?1")?.execute(params![keep_from])?;
                Ok(Dropped { age: 0, size: size as u64 })
            })
            .await
    }

    /// Drops results that started before `before`.
    pub async fn expire(&self, before: DateTime<Utc>) -> Result<Dropped, StoreError> {
        self.sqlite
            .write(move |connection| {
                let age = connection
                    .prepare_cached("DELETE FROM queue WHERE at < ?1")?
                    .execute(params![before.timestamp_millis()])?;
                Ok(Dropped { age: age as u64, size: 0 })
            })
            .await
    }

    /// Drops results of every check not in `names`; returns how many.
    pub async fn drop_unassigned(&self, names: Vec<String>) -> Result<u64, StoreError> {
        self.sqlite
            .write(move |connection| {
                connection.execute_batch(
                    "CREATE TEMP TABLE IF NOT EXISTS assigned (name TEXT PRIMARY KEY); DELETE FROM assigned;",
                )?;
                let mut insert = connection.prepare_cached("INSERT OR IGNORE INTO assigned (name) VALUES (?1)")?;
                for name in &names {
                    insert.execute(params![name])?;
                }
                let dropped =
                    connection.execute("DELETE FROM queue WHERE check_name NOT IN (SELECT name FROM assigned)", [])?;
                Ok(dropped as u64)
            })
            .await
    }

    /// The oldest `limit` results.
    pub async fn oldest(&self, limit: usize) -> Result<Vec<Queued>, StoreError> {
        self.sqlite
            .write(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT seq, check_name, at, duration_us, success, phase, reason FROM queue ORDER BY seq LIMIT ?1",
                )?;
                let rows = statement
                    .query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
                        let phase: Option<String> = row.get(5)?;
                        let reason: Option<String> = row.get(6)?;
                        Ok(Queued {
                            seq: row.get(0)?,
                            check: row.get(1)?,
                            at: from_ms(row.get(2)?),
                            duration_us: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                            success: row.get::<_, i64>(4)? != 0,
                            failure: phase.zip(reason),
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await
    }

    /// Deletes every result up to `seq` (an acknowledged batch).
    pub async fn acknowledge(&self, seq: i64) -> Result<(), StoreError> {
        self.sqlite
            .write(move |connection| {
                connection.prepare_cached("DELETE FROM queue WHERE seq <= ?1")?.execute(params![seq])?;
                Ok(())
            })
            .await
    }

    /// How many results wait.
    pub async fn count(&self) -> Result<u64, StoreError> {
        self.sqlite
            .write(|connection| {
                let count: i64 = connection.query_row("SELECT COUNT(*) FROM queue", [], |row| row.get(0))?;
                Ok(u64::try_from(count).unwrap_or(0))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(second: i64) -> Queued {
        Queued {
            seq: 0,
            check: "web".into(),
            at: from_ms(second * 1000),
            duration_us: 10,
            success: second % 2 == 0,
            failure: (second % 2 != 0).then(|| ("connect".into(), "refused".into())),
        }
    }

    #[tokio::test]
    async fn bounds_drop_the_oldest_and_acknowledged_rows_go() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(&dir.path().join("queue.db")).await.unwrap();
        let mut dropped = 0;
        for second in 0..10 {
            dropped += queue.push(result(second), 6).await.unwrap().size;
        }
        assert_eq!(dropped, 4, "the four oldest beyond the size bound");
        let oldest = queue.oldest(100).await.unwrap();
        assert_eq!(oldest.iter().map(|row| row.at.timestamp()).collect::<Vec<_>>(), vec![4, 5, 6, 7, 8, 9]);
        assert_eq!(oldest[1].failure, Some(("connect".into(), "refused".into())));
        assert_eq!(queue.expire(from_ms(6000)).await.unwrap().age, 2);
        queue.acknowledge(oldest[3].seq).await.unwrap();
        assert_eq!(queue.count().await.unwrap(), 2);
        queue.push(Queued { check: "gone".into(), ..result(20) }, 6).await.unwrap();
        assert_eq!(queue.drop_unassigned(vec!["web".into()]).await.unwrap(), 1, "only the unassigned check's result");
        assert_eq!(queue.count().await.unwrap(), 2);
        let id = queue.id().await.unwrap();
        assert_eq!(queue.id().await.unwrap(), id, "the queue id is kept");
    }
}
