//! The PostgreSQL backend: a small pool of connections kept by hand (no pool
//! crate is in the dependency tree), each with its own prepared-statement
//! cache, and migrations per area under an advisory lock so that replicas
//! starting together do not race.

use super::{Area, Done, SqlParam, SqlValue, Statement as SqlStatement, StoreError, VERSIONS_TABLE, to_ms};
use chrono::Utc;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls, Row, Statement};

/// Any value a statement takes.
pub type Param<'a> = &'a (dyn ToSql + Sync);

/// An arbitrary constant identifying the migration advisory lock.
const MIGRATION_LOCK: i64 = 0x636b_6974_6272;

/// An open PostgreSQL database; cheap to clone.
#[derive(Clone)]
pub struct Postgres {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    /// TLS settings; `None` connects in plain text.
    tls: Option<Arc<rustls::ClientConfig>>,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    /// The runtime the pool was opened on: connections are made and driven
    /// there, so a pooled connection never depends on the runtime of the
    /// request that happened to open it (see `http::threads`).
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres").finish_non_exhaustive()
    }
}

struct Connection {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// A pooled connection, returned to the pool when dropped.
pub struct Pooled {
    connection: Option<Connection>,
    inner: Arc<Inner>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            if self._permit.is_some() && !connection.client.is_closed() {
                if let Ok(mut idle) = self.inner.idle.lock() {
                    idle.push(connection);
                }
            }
        }
    }
}

impl Pooled {
    fn connection(&mut self) -> Result<&mut Connection, StoreError> {
        self.connection.as_mut().ok_or_else(|| StoreError::Unavailable("postgres connection lost".into()))
    }

    /// The client, for statements built at run time.
    pub fn client(&mut self) -> Result<&Client, StoreError> {
        Ok(&self.connection()?.client)
    }

    /// Whether the server closed the connection.
    pub fn is_closed(&self) -> bool {
        self.connection.as_ref().is_none_or(|connection| connection.client.is_closed())
    }

    /// `sql` prepared once per connection.
    pub async fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        let connection = self.connection()?;
        if let Some(statement) = connection.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = connection.client.prepare(sql).await?;
        connection.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    /// Runs a prepared query.
    pub async fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, StoreError> {
        let statement = self.statement(sql).await?;
        Ok(self.connection()?.client.query(&statement, params).await?)
    }

    /// Runs a prepared query returning at most one row.
    pub async fn query_opt(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>, StoreError> {
        let statement = self.statement(sql).await?;
        Ok(self.connection()?.client.query_opt(&statement, params).await?)
    }

    /// Runs a prepared statement; returns the rows it changed.
    pub async fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        let statement = self.statement(sql).await?;
        Ok(self.connection()?.client.execute(&statement, params).await?)
    }

    /// Runs `sql` (several statements, no parameters).
    pub async fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        Ok(self.connection()?.client.batch_execute(sql).await?)
    }

    /// Runs `work` in one transaction on `pooled`: committed when it
    /// succeeds, rolled back when it fails.
    pub async fn in_transaction<T>(
        pooled: &mut Pooled,
        work: impl AsyncFnOnce(&mut Pooled) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        pooled.batch("BEGIN").await?;
        let result = work(pooled).await;
        pooled.finish(result).await
    }

    /// Commits when `ok`, else rolls back; a failed rollback drops the connection.
    async fn finish<T>(&mut self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match result {
            Ok(value) => {
                self.batch("COMMIT").await?;
                Ok(value)
            }
            Err(err) => {
                if self.batch("ROLLBACK").await.is_err() {
                    self.connection = None;
                }
                Err(err)
            }
        }
    }
}

impl Postgres {
    /// Connects with `url` (a URL or `key=value` string), speaking TLS with
    /// `tls` when given and the server (and the URL's `sslmode`) allows it;
    /// `sslmode=require` insists on it.
    pub async fn open(
        url: &str,
        max_connections: usize,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Postgres, StoreError> {
        let postgres = Postgres {
            inner: Arc::new(Inner {
                url: url.to_string(),
                tls,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(max_connections.max(1))),
                runtime: tokio::runtime::Handle::current(),
            }),
        };
        // Fail at start, not at the first write, when the server is unreachable.
        drop(postgres.pooled().await?);
        Ok(postgres)
    }

    /// A connection from the pool (waiting while all are in use).
    pub async fn pooled(&self) -> Result<Pooled, StoreError> {
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("postgres pool closed".into()))?;
        let idle = self.inner.idle.lock().ok().and_then(|mut idle| idle.pop());
        let connection = match idle {
            Some(connection) if !connection.client.is_closed() => connection,
            _ => self.connect().await?,
        };
        Ok(Pooled { connection: Some(connection), inner: Arc::clone(&self.inner), _permit: Some(permit) })
    }

    /// A connection of its own, outside the pool and its limit, closed when
    /// dropped: for a session that must outlive single statements (a
    /// replica's presence lock).
    pub async fn dedicated(&self) -> Result<Pooled, StoreError> {
        Ok(Pooled { connection: Some(self.connect().await?), inner: Arc::clone(&self.inner), _permit: None })
    }

    async fn connect(&self) -> Result<Connection, StoreError> {
        let inner = Arc::clone(&self.inner);
        let connecting = self.inner.runtime.spawn(async move {
            match &inner.tls {
                None => open(&inner.url, NoTls).await,
                Some(config) => open(&inner.url, crate::net::postgres::MakeRustls(Arc::clone(config))).await,
            }
        });
        let client = connecting.await.map_err(|err| refused(&err))??;
        Ok(Connection { client, statements: HashMap::new() })
    }

    /// Applies `area`'s migrations newer than the database's version for it.
    pub async fn migrate(&self, area: &'static Area) -> Result<(), StoreError> {
        let mut pooled = self.pooled().await?;
        pooled.batch(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})")).await?;
        let migrated = migrate(&mut pooled, area).await;
        pooled.batch(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")).await?;
        migrated
    }

    /// See [`super::Storage::select`].
    pub async fn select(
        &self,
        sql: Cow<'static, str>,
        params: Vec<SqlParam>,
    ) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        let values = values(&params);
        let params: Vec<Param<'_>> = values.iter().map(|value| value.as_ref() as Param<'_>).collect();
        let mut pooled = self.pooled().await?;
        let rows = pooled.query(&sql, &params).await?;
        decode(rows)
    }

    /// See [`super::Storage::transaction`].
    pub async fn transaction(&self, statements: Vec<SqlStatement>) -> Result<Vec<Done>, StoreError> {
        let mut pooled = self.pooled().await?;
        Pooled::in_transaction(&mut pooled, async |pooled| {
            let mut done = Vec::with_capacity(statements.len());
            for (sql, params) in &statements {
                let values = values(params);
                let params: Vec<Param<'_>> = values.iter().map(|value| value.as_ref() as Param<'_>).collect();
                let statement = pooled.statement(sql).await?;
                let client = pooled.client()?;
                if statement.columns().is_empty() {
                    done.push(Done { changed: client.execute(&statement, &params).await?, rows: Vec::new() });
                } else {
                    let rows = decode(client.query(&statement, &params).await?)?;
                    done.push(Done { changed: rows.len() as u64, rows });
                }
            }
            Ok(done)
        })
        .await
    }
}

/// SQL NULL of whatever type the statement expects.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(&self, _: &Type, _: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// The parameters of a statement built at run time, in the types PostgreSQL expects.
pub fn values(params: &[SqlParam]) -> Vec<Box<dyn ToSql + Sync + Send>> {
    params
        .iter()
        .map(|param| -> Box<dyn ToSql + Sync + Send> {
            match param {
                SqlParam::Int(value) => Box::new(*value),
                SqlParam::Text(value) => Box::new(value.clone()),
                SqlParam::Null => Box::new(Null),
            }
        })
        .collect()
}

/// Rows as [`SqlValue`]s: integers of any width, text, NULL.
pub fn decode(rows: Vec<Row>) -> Result<Vec<Vec<SqlValue>>, StoreError> {
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        let mut values = Vec::with_capacity(row.len());
        for (index, column) in row.columns().iter().enumerate() {
            let value = match *column.type_() {
                Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(SqlValue::Int),
                Type::INT4 => row.try_get::<_, Option<i32>>(index)?.map(|value| SqlValue::Int(i64::from(value))),
                Type::INT2 => row.try_get::<_, Option<i16>>(index)?.map(|value| SqlValue::Int(i64::from(value))),
                Type::BOOL => row.try_get::<_, Option<bool>>(index)?.map(|value| SqlValue::Int(i64::from(value))),
                _ => row.try_get::<_, Option<String>>(index)?.map(SqlValue::Text),
            };
            values.push(value.unwrap_or(SqlValue::Null));
        }
        found.push(values);
    }
    Ok(found)
}

async fn migrate(pooled: &mut Pooled, area: &'static Area) -> Result<(), StoreError> {
    pooled.batch(VERSIONS_TABLE).await?;
    let recorded: i64 = pooled
        .query_opt("SELECT COUNT(*) FROM storage_migrations WHERE area = $1", &[&area.name])
        .await?
        .map_or(Ok(0), |row| row.try_get(0))?;
    if recorded == 0 && !area.legacy_table.is_empty() {
        // A database migrated by a checkit that kept one `schema_migrations` per area.
        let legacy = pooled
            .query_opt(
                "SELECT to_regclass($1)::text IS NOT NULL AND to_regclass('schema_migrations') IS NOT NULL",
                &[&area.legacy_table],
            )
            .await?
            .map_or(Ok(false), |row| row.try_get::<_, bool>(0))?;
        if legacy {
            pooled
                .execute(
                    "INSERT INTO storage_migrations (area, version, applied_at) \
                     SELECT $1, version, applied_at FROM schema_migrations",
                    &[&area.name],
                )
                .await?;
        }
    }
    let current: i64 = pooled
        .query_opt("SELECT COALESCE(MAX(version), 0) FROM storage_migrations WHERE area = $1", &[&area.name])
        .await?
        .map_or(Ok(0), |row| row.try_get(0))?;
    if current > area.latest() {
        return Err(super::sqlite::newer(area, current));
    }
    for (version, statements) in area.postgres().filter(|(version, _)| *version > current) {
        pooled
            .batch(&format!(
                "BEGIN; {statements}; INSERT INTO storage_migrations (area, version, applied_at) \
                 VALUES ('{}', {version}, {}); COMMIT;",
                area.name,
                to_ms(Utc::now())
            ))
            .await?;
    }
    Ok(())
}

/// Runs a connection until it closes.
/// Connects with `tls` and drives the connection on the current runtime.
async fn open<T>(url: &str, tls: T) -> Result<Client, StoreError>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = tokio_postgres::connect(url, tls).await.map_err(|err| refused(&err))?;
    tokio::spawn(drive(connection));
    Ok(client)
}

fn refused(err: &dyn std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("cannot connect to postgres: {err}"))
}

async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: F) {
    if let Err(err) = connection.await {
        tracing::warn!(error = %err, "PostgreSQL connection closed.");
    }
}
