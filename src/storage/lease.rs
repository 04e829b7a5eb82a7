//! Which replicas are alive: the ground for splitting work (check runs,
//! delivery lanes) across replicas sharing one PostgreSQL database.
//!
//! A [`Member`] holds a PostgreSQL advisory lock on a session of its own for
//! as long as its process lives, and refreshes its row in `storage_replicas`
//! every [`HEARTBEAT`]. Another replica counts it alive while both hold: the
//! lock vanishes the moment its process dies (the kernel closes the socket,
//! the server ends the session), the row goes stale [`EXPIRY_MS`] after the
//! last refresh when the host or its network is gone. So a killed replica's
//! work passes on at once, a vanished host's within 10 s.
//!
//! On SQLite there is one process per file: a member is alone and always alive.

use super::postgres::Pooled;
use super::{Area, Storage, StoreError, column};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How often a member refreshes its row (and re-reads who is alive).
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a row counts after its last refresh, in milliseconds.
pub const EXPIRY_MS: i64 = 10_000;
/// The first key of every presence lock (`pg_advisory_lock(int4, int4)`).
const PRESENCE_CLASS: i64 = 0x636b;
/// The database's clock in milliseconds: every replica compares against the
/// same clock, so their own clocks may drift.
pub const NOW_MS: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    "
CREATE TABLE storage_replicas (
    owner TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    lock_key INTEGER NOT NULL,
    alive_until INTEGER NOT NULL,
    started_at INTEGER NOT NULL
);
",
)];

/// The membership table's area.
pub static AREA: Area = Area { name: "replicas", migrations: MIGRATIONS, legacy_table: "" };

/// The conditions under which the replica row `r` is alive.
fn alive_conditions() -> String {
    format!(
        "r.alive_until >= {NOW_MS} AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' \
         AND l.granted AND CAST(l.classid AS BIGINT) = {PRESENCE_CLASS} AND CAST(l.objid AS BIGINT) = r.lock_key \
         AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
    )
}

/// SQL (PostgreSQL) that is true when the replica named by `owner` (a column
/// or parameter) is known to be dead: its session ended or its row went
/// stale. An owner that never joined is not known dead; its lease holds
/// until it runs out.
pub fn dead_sql(owner: &str) -> String {
    format!("EXISTS (SELECT 1 FROM storage_replicas r WHERE r.owner = {owner} AND NOT ({}))", alive_conditions())
}

/// This process's membership in one role (`bridge`, `checks`); cheap to clone.
#[derive(Clone)]
pub struct Member {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    role: &'static str,
    owner: RwLock<String>,
    /// The session holding the presence lock (PostgreSQL only).
    session: tokio::sync::Mutex<Option<Pooled>>,
    /// When the row was last refreshed.
    refreshed: Mutex<Instant>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member").field("role", &self.inner.role).field("owner", &self.owner()).finish()
    }
}

fn random_owner(key: i64) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "checkit".into());
    format!("{host}-{}-{key:08x}", std::process::id())
}

impl Member {
    /// Joins `storage` as a replica doing `role` work.
    pub async fn join(storage: Storage, role: &'static str) -> Result<Member, StoreError> {
        let key = i64::from(rand::random::<u32>() >> 1);
        let member = Member {
            inner: Arc::new(Inner {
                owner: RwLock::new(random_owner(key)),
                storage,
                role,
                session: tokio::sync::Mutex::new(None),
                refreshed: Mutex::new(Instant::now()),
            }),
        };
        if let Storage::Postgres(postgres) = &member.inner.storage {
            Storage::Postgres(postgres.clone()).migrate(&AREA).await?;
            member.rejoin().await?;
        }
        Ok(member)
    }

    /// This replica's name, as written in lease owner columns.
    pub fn owner(&self) -> String {
        self.inner.owner.read().map(|owner| owner.clone()).unwrap_or_default()
    }

    /// Whether this replica's row is certainly still alive for the others
    /// (refreshed less than half the expiry ago): work that must not run on
    /// two replicas stops when not.
    pub fn certainly_alive(&self) -> bool {
        match &self.inner.storage {
            Storage::Sqlite(_) => true,
            Storage::Postgres(_) => self.inner.refreshed.lock().is_ok_and(|refreshed| {
                refreshed.elapsed() < Duration::from_millis(u64::try_from(EXPIRY_MS / 2).unwrap_or(0))
            }),
        }
    }

    /// Takes a new presence lock on a new session, under a new name.
    async fn rejoin(&self) -> Result<(), StoreError> {
        let Storage::Postgres(postgres) = &self.inner.storage else { return Ok(()) };
        let mut session = postgres.dedicated().await?;
        for _ in 0..8 {
            let key = i64::from(rand::random::<u32>() >> 1);
            let locked = session
                .query_opt(&format!("SELECT pg_try_advisory_lock({PRESENCE_CLASS}, {key})"), &[])
                .await?
                .map_or(Ok(false), |row| row.try_get::<_, bool>(0))?;
            if !locked {
                continue;
            }
            let owner = random_owner(key);
            session
                .execute(
                    &format!(
                        "INSERT INTO storage_replicas (owner, role, lock_key, alive_until, started_at) \
                         VALUES ($1, $2, $3, {NOW_MS} + {EXPIRY_MS}, {NOW_MS}) ON CONFLICT (owner) DO UPDATE \
                         SET alive_until = excluded.alive_until"
                    ),
                    &[&owner, &self.inner.role, &key],
                )
                .await?;
            if let Ok(mut current) = self.inner.owner.write() {
                *current = owner;
            }
            if let Ok(mut refreshed) = self.inner.refreshed.lock() {
                *refreshed = Instant::now();
            }
            *self.inner.session.lock().await = Some(session);
            return Ok(());
        }
        Err(StoreError::Unavailable("no free presence lock key".into()))
    }

    /// Refreshes this replica's row on its own session (and forgets replicas
    /// dead for a day); a lost session (the
    /// server restarted, the network broke) is replaced, under a new name,
    /// since others may already have taken this replica's work.
    pub async fn beat(&self) -> Result<(), StoreError> {
        if !matches!(self.inner.storage, Storage::Postgres(_)) {
            return Ok(());
        }
        // Refreshed too late, the others may have counted this replica dead
        // and taken its work: carry on under a new name only.
        let lapsed = self
            .inner
            .refreshed
            .lock()
            .map_or(true, |refreshed| refreshed.elapsed() >= Duration::from_millis(EXPIRY_MS.unsigned_abs()));
        let refreshed = if lapsed {
            None
        } else {
            let mut session = self.inner.session.lock().await;
            match session.as_mut().filter(|session| !session.is_closed()) {
                None => None,
                Some(pooled) => {
                    let sql =
                        format!("UPDATE storage_replicas SET alive_until = {NOW_MS} + {EXPIRY_MS} WHERE owner = $1");
                    let owner = self.owner();
                    match pooled.execute(&sql, &[&owner]).await {
                        Ok(1) => {
                            let forget =
                                format!("DELETE FROM storage_replicas WHERE alive_until < {NOW_MS} - 86400000");
                            let _ = pooled.execute(&forget, &[]).await;
                            Some(())
                        }
                        // Removed as stale by another replica, or the session broke.
                        Ok(_) | Err(_) => {
                            *session = None;
                            None
                        }
                    }
                }
            }
        };
        match refreshed {
            Some(()) => {
                if let Ok(mut refreshed) = self.inner.refreshed.lock() {
                    *refreshed = Instant::now();
                }
                Ok(())
            }
            None => {
                let old = self.owner();
                self.rejoin().await?;
                tracing::warn!(old = %old, new = %self.owner(), role = self.inner.role, "Lost the replica presence session; rejoined under a new name.");
                Ok(())
            }
        }
    }

    /// The names of the live replicas doing this member's role, sorted
    /// (just this one on SQLite).
    pub async fn live(&self) -> Result<Vec<String>, StoreError> {
        let Storage::Postgres(_) = &self.inner.storage else { return Ok(vec![self.owner()]) };
        let sql = format!(
            "SELECT r.owner FROM storage_replicas r WHERE r.role = $1 AND {} ORDER BY r.owner",
            alive_conditions()
        );
        let rows = self.inner.storage.select(sql, vec![self.inner.role.into()]).await?;
        Ok(rows.iter().map(|row| column(row, 0).string()).collect())
    }

    /// Ends the membership: the session and its lock go, so the others
    /// count this replica dead at once (its row stays, marked dead, so leases
    /// it still names are known free).
    pub async fn leave(&self) {
        *self.inner.session.lock().await = None;
    }
}
