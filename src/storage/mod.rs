//! The one storage layer under every part that keeps state: embedded SQLite
//! (one writer thread with group commit, pooled read connections) or
//! PostgreSQL (a connection pool), with versioned migrations per area
//! (`bridge`, `checks`, `heartbeats`, …).
//!
//! By default every area lives in ONE SQLite file (`storage.sqlite.path`,
//! `checkit.db` next to the config file); with `storage.postgres` every area
//! lives in ONE PostgreSQL database that several replicas share. An area may
//! still be given a store of its own (the deprecated `bridge.store`,
//! `check_options.store`, `heartbeats.store`); [`Opener`] hands the same
//! handle to every area whose settings are equal.
//!
//! Areas write their SQL once with `$n` placeholders; [`Storage::select`] and
//! [`Storage::transaction`] run it on either backend. An area with hot paths
//! of its own (the bridge's outbox) takes the backend handle
//! ([`sqlite::Sqlite`], [`postgres::Postgres`]) and writes them natively.
//!
//! **Architecture invariant:** `storage` imports nothing above it (only
//! `config` and `net`).

pub mod config;
pub mod lease;
pub mod postgres;
pub mod sqlite;

use chrono::{DateTime, TimeZone, Utc};
use std::borrow::Cow;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused or the connection broke.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The store cannot be opened or reached.
    #[error("{0}")]
    Unavailable(String),
    /// A stored value could not be decoded.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// The migrations of one area: appended, never edited.
#[derive(Debug)]
pub struct Area {
    /// The area's name, the key of its versions in `storage_migrations`.
    pub name: &'static str,
    /// `(version, SQL)` in SQLite's dialect, in order.
    pub migrations: &'static [(i64, &'static str)],
    /// A table only this area creates: a database written by a checkit that
    /// kept one file per area (and one `schema_migrations` for it) counts as
    /// migrated to the versions recorded there when this table exists. Empty
    /// for areas newer than that layout.
    pub legacy_table: &'static str,
}

impl Area {
    /// The newest version this build knows.
    pub fn latest(&self) -> i64 {
        self.migrations.last().map(|(version, _)| *version).unwrap_or(0)
    }

    /// The migrations in SQLite's dialect.
    fn sqlite(&self) -> impl Iterator<Item = (i64, String)> + '_ {
        self.migrations.iter().map(|(version, sql)| (*version, sql.to_string()))
    }

    /// The migrations adapted to PostgreSQL: 64-bit integers, `BIGSERIAL`
    /// keys where SQLite assigns the rowid (`INTEGER PRIMARY KEY`, with or
    /// without `AUTOINCREMENT`), no `WITHOUT ROWID` (a heap table with its
    /// primary-key index).
    fn postgres(&self) -> impl Iterator<Item = (i64, String)> + '_ {
        self.migrations.iter().map(|(version, sql)| {
            let sql = sql
                .replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
                .replace("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY")
                .replace("INTEGER", "BIGINT")
                .replace(") WITHOUT ROWID", ")");
            (*version, sql)
        })
    }
}

/// The table of applied versions, per area.
const VERSIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS storage_migrations (area TEXT NOT NULL, \
     version BIGINT NOT NULL, applied_at BIGINT NOT NULL, PRIMARY KEY (area, version))";

/// Milliseconds since the epoch, the stored form of every time.
pub fn to_ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// The inverse of [`to_ms`].
pub fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// Rewrites `$n` placeholders as SQLite's positional `?n`.
pub fn sqlite_sql(sql: &str) -> String {
    sql.replace('$', "?")
}

/// A parameter of a statement run by [`Storage::select`] or [`Storage::transaction`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlParam {
    /// An integer (times, counts, flags, booleans).
    Int(i64),
    /// Text.
    Text(String),
    /// NULL, whatever the column's type.
    Null,
}

impl From<i64> for SqlParam {
    fn from(value: i64) -> Self {
        SqlParam::Int(value)
    }
}

impl From<&str> for SqlParam {
    fn from(value: &str) -> Self {
        SqlParam::Text(value.to_string())
    }
}

impl From<String> for SqlParam {
    fn from(value: String) -> Self {
        SqlParam::Text(value)
    }
}

impl<T: Into<SqlParam>> From<Option<T>> for SqlParam {
    fn from(value: Option<T>) -> Self {
        value.map_or(SqlParam::Null, Into::into)
    }
}

/// A column value read by [`Storage::select`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
}

impl SqlValue {
    /// The integer, or 0 for NULL and text.
    pub fn int(&self) -> i64 {
        match self {
            SqlValue::Int(value) => *value,
            _ => 0,
        }
    }

    /// The integer, or `None` for NULL and text.
    pub fn opt_int(&self) -> Option<i64> {
        match self {
            SqlValue::Int(value) => Some(*value),
            _ => None,
        }
    }

    /// The text, or `None` for NULL and integers.
    pub fn text(&self) -> Option<&str> {
        match self {
            SqlValue::Text(value) => Some(value),
            _ => None,
        }
    }

    /// The text, or empty for NULL and integers.
    pub fn string(&self) -> String {
        self.text().unwrap_or_default().to_string()
    }

    /// The text, or `None` for NULL and integers.
    pub fn opt_string(&self) -> Option<String> {
        self.text().map(str::to_string)
    }
}

/// Column `index` of a row [`Storage::select`] returned; NULL past its end,
/// so a reader never panics on a shorter row.
pub fn column(row: &[SqlValue], index: usize) -> &SqlValue {
    static NULL: SqlValue = SqlValue::Null;
    row.get(index).unwrap_or(&NULL)
}

/// One statement of a [`Storage::transaction`].
pub type Statement = (Cow<'static, str>, Vec<SqlParam>);

/// What one statement of a transaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Done {
    /// Rows it changed.
    pub changed: u64,
    /// Rows it returned (`SELECT`, `RETURNING`).
    pub rows: Vec<Vec<SqlValue>>,
}

/// An opened store; cheap to clone, shared by every area that uses it.
#[derive(Debug, Clone)]
pub enum Storage {
    /// Embedded SQLite.
    Sqlite(sqlite::Sqlite),
    /// PostgreSQL.
    Postgres(postgres::Postgres),
}

impl Storage {
    /// Opens (creating an SQLite file when missing) the store `config` names.
    pub async fn open(config: &config::StorageConfig) -> Result<Storage, StoreError> {
        match (&config.sqlite, &config.postgres) {
            (Some(sqlite), None) => Ok(Storage::Sqlite(sqlite::Sqlite::open(&sqlite.path).await?)),
            (None, Some(postgres)) => {
                let url = postgres.url().map_err(StoreError::Unavailable)?;
                let tls = postgres
                    .tls_config
                    .as_ref()
                    .map(|tls_config| crate::net::tls::Client::new(tls_config, &[]).map(|client| client.config))
                    .transpose()
                    .map_err(|err| StoreError::Unavailable(format!("postgres tls_config: {err}")))?;
                Ok(Storage::Postgres(postgres::Postgres::open(url.expose(), postgres.max_connections, tls).await?))
            }
            _ => Err(StoreError::Unavailable("storage: set exactly one of sqlite and postgres".into())),
        }
    }

    /// Applies `area`'s migrations newer than the store's version for it.
    pub async fn migrate(&self, area: &'static Area) -> Result<(), StoreError> {
        match self {
            Storage::Sqlite(store) => store.migrate(area).await,
            Storage::Postgres(store) => store.migrate(area).await,
        }
    }

    /// Runs one query (`$n` placeholders) and returns its rows.
    pub async fn select(
        &self,
        sql: impl Into<Cow<'static, str>>,
        params: Vec<SqlParam>,
    ) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        let sql = sql.into();
        match self {
            Storage::Sqlite(store) => store.select(sql, params).await,
            Storage::Postgres(store) => store.select(sql, params).await,
        }
    }

    /// Runs `statements` in one transaction and says what each did; on
    /// SQLite it joins the writer's next group commit.
    pub async fn transaction(&self, statements: Vec<Statement>) -> Result<Vec<Done>, StoreError> {
        match self {
            Storage::Sqlite(store) => store.transaction(statements).await,
            Storage::Postgres(store) => store.transaction(statements).await,
        }
    }

    /// Whether several processes may share this store (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self, Storage::Postgres(_))
    }

    /// A short description for logs: the SQLite file, or `postgres`.
    pub fn describe(&self) -> String {
        match self {
            Storage::Sqlite(store) => store.path().display().to_string(),
            Storage::Postgres(_) => "postgres".into(),
        }
    }
}

/// Opens each distinct store once, so areas with equal settings share one
/// handle (one SQLite writer thread, one PostgreSQL pool).
#[derive(Debug, Default)]
pub struct Opener {
    opened: Vec<(config::StorageConfig, Storage)>,
}

impl Opener {
    /// The store `config` names, opened on first use.
    pub async fn open(&mut self, config: &config::StorageConfig) -> Result<Storage, StoreError> {
        if let Some((_, storage)) = self.opened.iter().find(|(opened, _)| opened == config) {
            return Ok(storage.clone());
        }
        let storage = Storage::open(config).await?;
        self.opened.push((config.clone(), storage.clone()));
        Ok(storage)
    }
}
