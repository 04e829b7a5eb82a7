//! The embedded SQLite backend (WAL, `synchronous=FULL`).
//!
//! One dedicated thread owns the write connection. Writes queue up as jobs;
//! the thread runs every job waiting in one transaction (each inside its own
//! savepoint, so one failing job does not undo the others) and answers them
//! only after `COMMIT` returned: a group commit, so durable intake and check
//! results do not pay one fsync each. Reads use separate connections on the
//! blocking pool; WAL lets them run beside the writer. Every area sharing the
//! file shares the writer, as SQLite allows one writer at a time anyway.
//!
//! **Architecture invariant:** one process per database file.

use super::{Area, Done, SqlParam, SqlValue, Statement, StoreError, VERSIONS_TABLE, sqlite_sql, to_ms};
use chrono::Utc;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(Result<&Connection, String>) -> Reply + Send>;

/// Most jobs committed together.
const MAX_BATCH: usize = 512;

/// An open SQLite database; cheap to clone.
#[derive(Clone)]
pub struct Sqlite {
    inner: Arc<Inner>,
}

struct Inner {
    writer: mpsc::Sender<Job>,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite").field("path", &self.inner.path).finish()
    }
}

impl Sqlite {
    /// Opens (creating if needed) the database at `path` and starts its writer thread.
    pub async fn open(path: impl AsRef<Path>) -> Result<Sqlite, StoreError> {
        let path = path.as_ref();
        let path = if path == Path::new(":memory:") {
            path.to_path_buf()
        } else {
            std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
        };
        let writer_path = path.clone();
        let connection = tokio::task::spawn_blocking(move || -> Result<Connection, StoreError> {
            let connection = Connection::open(&writer_path)?;
            connection
                .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;")?;
            Ok(connection)
        })
        .await
        .map_err(|err| StoreError::Unavailable(format!("sqlite open task failed: {err}")))??;
        let (writer, jobs) = mpsc::channel(8192);
        std::thread::Builder::new()
            .name("checkit-sqlite".into())
            .spawn(move || run_writer(connection, jobs))
            .map_err(|err| StoreError::Unavailable(format!("cannot start sqlite writer: {err}")))?;
        Ok(Sqlite { inner: Arc::new(Inner { writer, readers: Mutex::new(Vec::new()), path }) })
    }

    /// The database file (absolute).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `work` in the writer's next transaction (in a savepoint of its
    /// own) and returns once that transaction committed.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply_to, reply) = oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |connection| match connection {
            Err(err) => {
                let _ = reply_to.send(Err(StoreError::Unavailable(err)));
                Box::new(|_| {})
            }
            Ok(connection) => {
                let result = in_savepoint(connection, work);
                Box::new(move |commit: Result<(), String>| {
                    let outcome = match commit {
                        Ok(()) => result,
                        Err(err) => Err(StoreError::Unavailable(format!("sqlite commit failed: {err}"))),
                    };
                    let _ = reply_to.send(outcome);
                })
            }
        });
        let stopped = || StoreError::Unavailable("sqlite writer has stopped".into());
        self.inner.writer.send(job).await.map_err(|_| stopped())?;
        reply.await.map_err(|_| stopped())?
    }

    /// Runs `work` on a pooled read-only connection on the blocking pool.
    pub async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut readers| readers.pop());
            let connection = match pooled {
                Some(connection) => connection,
                None => {
                    let connection = Connection::open_with_flags(
                        &inner.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    connection.busy_timeout(std::time::Duration::from_secs(5))?;
                    connection
                }
            };
            let result = work(&connection);
            if let Ok(mut readers) = inner.readers.lock() {
                readers.push(connection);
            }
            result
        })
        .await
        .map_err(|err| StoreError::Unavailable(format!("sqlite read task failed: {err}")))?
    }

    /// Applies `area`'s migrations newer than the file's version for it, all
    /// in one transaction; refuses a file migrated by a newer checkit.
    pub async fn migrate(&self, area: &'static Area) -> Result<(), StoreError> {
        self.write(move |connection| {
            connection.execute_batch(VERSIONS_TABLE)?;
            let recorded: i64 = connection.query_row(
                "SELECT COUNT(*) FROM storage_migrations WHERE area = ?1",
                params![area.name],
                |row| row.get(0),
            )?;
            if recorded == 0
                && table_exists(connection, area.legacy_table)?
                && table_exists(connection, "schema_migrations")?
            {
                connection.execute(
                    "INSERT INTO storage_migrations (area, version, applied_at) \
                     SELECT ?1, version, applied_at FROM schema_migrations",
                    params![area.name],
                )?;
            }
            let current: i64 = connection.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM storage_migrations WHERE area = ?1",
                params![area.name],
                |row| row.get(0),
            )?;
            if current > area.latest() {
                return Err(newer(area, current));
            }
            for (version, statements) in area.sqlite().filter(|(version, _)| *version > current) {
                connection.execute_batch(&statements)?;
                connection.execute(
                    "INSERT INTO storage_migrations (area, version, applied_at) VALUES (?1, ?2, ?3)",
                    params![area.name, version, to_ms(Utc::now())],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// See [`super::Storage::select`].
    pub async fn select(
        &self,
        sql: Cow<'static, str>,
        params: Vec<SqlParam>,
    ) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(&sqlite_sql(&sql))?;
            query(&mut statement, &params)
        })
        .await
    }

    /// See [`super::Storage::transaction`].
    pub async fn transaction(&self, statements: Vec<Statement>) -> Result<Vec<Done>, StoreError> {
        self.write(move |connection| {
            let mut done = Vec::with_capacity(statements.len());
            for (sql, params) in &statements {
                let mut statement = connection.prepare_cached(&sqlite_sql(sql))?;
                if statement.column_count() == 0 {
                    let changed = statement.execute(rusqlite::params_from_iter(params.iter().map(value)))?;
                    done.push(Done { changed: changed as u64, rows: Vec::new() });
                } else {
                    let rows = query(&mut statement, params)?;
                    done.push(Done { changed: connection.changes(), rows });
                }
            }
            Ok(done)
        })
        .await
    }
}

pub(super) fn newer(area: &Area, current: i64) -> StoreError {
    StoreError::Unavailable(format!(
        "the {} schema version {current} is newer than this checkit ({}); upgrade checkit",
        area.name,
        area.latest()
    ))
}

fn table_exists(connection: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(connection
        .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", params![name], |_| Ok(()))
        .optional()?
        .is_some())
}

fn query(statement: &mut rusqlite::CachedStatement<'_>, params: &[SqlParam]) -> Result<Vec<Vec<SqlValue>>, StoreError> {
    let columns = statement.column_count();
    let rows = statement.query_map(rusqlite::params_from_iter(params.iter().map(value)), |row| {
        (0..columns)
            .map(|index| {
                Ok(match row.get_ref(index)? {
                    rusqlite::types::ValueRef::Integer(value) => SqlValue::Int(value),
                    rusqlite::types::ValueRef::Text(text) => SqlValue::Text(String::from_utf8_lossy(text).into_owned()),
                    _ => SqlValue::Null,
                })
            })
            .collect::<Result<Vec<SqlValue>, rusqlite::Error>>()
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// A parameter as SQLite takes it.
pub fn value(param: &SqlParam) -> rusqlite::types::Value {
    match param {
        SqlParam::Int(value) => rusqlite::types::Value::Integer(*value),
        SqlParam::Text(value) => rusqlite::types::Value::Text(value.clone()),
        SqlParam::Null => rusqlite::types::Value::Null,
    }
}

fn in_savepoint<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    connection.execute_batch("SAVEPOINT job")?;
    let result = work(connection);
    match &result {
        Ok(_) => connection.execute_batch("RELEASE job")?,
        Err(_) => connection.execute_batch("ROLLBACK TO job; RELEASE job")?,
    }
    result
}

fn run_writer(connection: Connection, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(err) = connection.execute_batch("BEGIN IMMEDIATE") {
            let message = err.to_string();
            for job in batch {
                job(Err(message.clone()))(Err(message.clone()));
            }
            continue;
        }
        let replies: Vec<Reply> = batch.into_iter().map(|job| job(Ok(&connection))).collect();
        let commit = connection.execute_batch("COMMIT").map_err(|err| err.to_string());
        if commit.is_err() {
            let _ = connection.execute_batch("ROLLBACK");
        }
        for reply in replies {
            reply(commit.clone());
        }
    }
}
