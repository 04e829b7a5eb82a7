//! Heartbeat checks: jobs that report in (`/ping/…`, or results pushed by
//! scripts), and silence that becomes an alert — a dead man's switch.
//!
//! - `config`: the `heartbeats:` section. `schedule`: period or cron + time
//!   zone. `state`: the pure state machine (new, up, late, down, started,
//!   paused) and which alerts should fire. `ping`: path and body parsing.
//! - `store`: pings and states in SQLite. `http`: the ping, results and API
//!   handlers. `notify`: alerts to the notification pipeline. `history`:
//!   outcomes into the checks' history (heartbeats are checks without a prober).
//!
//! One evaluator task sleeps until the earliest instant any check can change
//! state (due, due + grace, start + start_grace), or until a ping wakes it;
//! it never polls. Detection therefore happens at the deadline itself.

pub mod config;
pub mod history;
pub mod http;
pub mod notify;
pub mod ping;
pub mod schedule;
pub mod state;
pub mod store;

pub use config::Config;

use crate::bridge::clock::{Clock, SystemClock};
use crate::bridge::tasks::Tasks;
use crate::config::types::{Secret, read_secret_file};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use notify::Notifier;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use state::{AlertKind, Kind, Record, Spec, Status};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use store::{Ping, Store, StoreError};
use tokio::sync::{Notify, watch};

/// Every metric family the heartbeats emit, as it appears in a scrape.
pub const METRIC_NAMES: &[&str] = &[
    "checkit_heartbeat_status",
    "checkit_heartbeat_last_ping_timestamp_seconds",
    "checkit_heartbeat_pings_total",
    "checkit_heartbeat_pings_refused_total",
];

/// How soon a failed notification or state write is retried.
const RETRY_AFTER_FAILURE: chrono::Duration = chrono::Duration::seconds(5);

/// How often a held alert looks again whether its maintenance window ended.
const MAINTENANCE_RECHECK: chrono::Duration = chrono::Duration::seconds(30);

/// Whether a maintenance window covers heartbeat `entry` at `at`: one of its
/// own, one of the section's that selects its labels and name, or one
/// planned from the UI or the API.
fn in_maintenance(config: &Config, entry: &Entry, checks: Option<&crate::checks::Checks>, at: DateTime<Utc>) -> bool {
    let windows = entry.check.maintenance.iter().chain(&config.maintenance);
    let labels = || {
        let mut labels = entry.check.labels.clone();
        labels.insert("check".into(), entry.check.name.clone());
        labels
    };
    crate::checks::maintenance::in_maintenance(windows, labels, at)
        || checks.is_some_and(|checks| checks.planned_covers(&entry.check.name, at))
}

/// Why heartbeats could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store could not be opened or read.
    #[error("heartbeat store: {0}")]
    Store(#[from] StoreError),
    /// A secret file could not be read.
    #[error("heartbeat config: {0}")]
    Config(String),
}

/// Labels of the per-check metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    check: String,
}

/// Labels of `checkit_heartbeat_status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    check: String,
    status: &'static str,
}

/// Labels of `checkit_heartbeat_pings_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PingLabels {
    check: String,
    kind: &'static str,
}

/// Labels of `checkit_heartbeat_pings_refused_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RefusedLabels {
    /// `unknown_check`, `bad_request`, `rate_limited`, `unauthorized`, `unavailable`.
    pub(crate) reason: &'static str,
}

#[derive(Clone, Default)]
struct Metrics {
    status: Family<StatusLabels, Gauge>,
    last_ping: Family<CheckLabels, Gauge<f64, AtomicU64>>,
    pings: Family<PingLabels, Counter>,
    refused: Family<RefusedLabels, Counter>,
}

impl Metrics {
    fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics::default();
        registry.register(
            "checkit_heartbeat_status",
            "Heartbeat check status (new, up, late, down, started, paused), 1 for the current one",
            metrics.status.clone(),
        );
        registry.register(
            "checkit_heartbeat_last_ping_timestamp_seconds",
            "When the heartbeat check was last pinged",
            metrics.last_ping.clone(),
        );
        registry.register("checkit_heartbeat_pings", "Pings accepted, by check and kind", metrics.pings.clone());
        registry.register(
            "checkit_heartbeat_pings_refused",
            "Ping and result requests refused, by reason",
            metrics.refused.clone(),
        );
        metrics
    }

    fn set_status(&self, check: &str, current: Status) {
        for status in Status::ALL {
            let labels = StatusLabels { check: check.to_string(), status: status.as_str() };
            self.status.get_or_create(&labels).set(i64::from(status == current));
        }
    }

    fn forget(&self, check: &str) {
        for status in Status::ALL {
            self.status.remove(&StatusLabels { check: check.to_string(), status: status.as_str() });
        }
        self.last_ping.remove(&CheckLabels { check: check.to_string() });
        for kind in Kind::ALL {
            self.pings.remove(&PingLabels { check: check.to_string(), kind: kind.as_str() });
        }
    }
}

/// One configured check, ready to use.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) check: config::Check,
    pub(crate) spec: Spec,
    pub(crate) token: Option<Secret>,
}

/// The parts a reload swaps.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub(crate) config: Arc<Config>,
    pub(crate) checks: BTreeMap<String, Entry>,
    pub(crate) by_uuid: HashMap<uuid::Uuid, String>,
    pub(crate) ping_key: Option<Secret>,
}

impl Runtime {
    fn build(config: Arc<Config>) -> Result<Runtime, Error> {
        let ping_key = config.ping_key_file.as_deref().map(read_secret_file).transpose().map_err(Error::Config)?;
        let mut checks = BTreeMap::new();
        let mut by_uuid = HashMap::new();
        for check in &config.checks {
            let Some(spec) = check.spec() else {
                return Err(Error::Config(format!("heartbeat {:?} has an invalid schedule", check.name)));
            };
            let token = check.token_file.as_deref().map(read_secret_file).transpose().map_err(Error::Config)?;
            if let Some(id) = check.uuid.as_deref().and_then(|text| uuid::Uuid::parse_str(text).ok()) {
                by_uuid.insert(id, check.name.clone());
            }
            checks.insert(check.name.clone(), Entry { check: check.clone(), spec, token });
        }
        Ok(Runtime { config, checks, by_uuid, ping_key })
    }
}

/// A per-check token bucket over the service's clock (hand-written because
/// rate-limit crates read their own clock, and tests move time by hand).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
}

impl Bucket {
    /// Takes one token, or says how long until one is back.
    fn take(&mut self, now: DateTime<Utc>, per_minute: u32) -> Result<(), Duration> {
        let capacity = f64::from(per_minute.max(1));
        let per_second = capacity / 60.0;
        let elapsed = (now - self.at).num_milliseconds().max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * per_second).min(capacity);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(((1.0 - self.tokens) / per_second).clamp(0.0, 60.0)))
        }
    }
}

/// Why a ping was not taken.
#[derive(Debug, thiserror::Error)]
pub enum PingError {
    /// Over `max_pings_per_minute`.
    #[error("rate limited: more than {per_minute} pings a minute for this check; retry in {}s", http::retry_seconds(*.retry_after))]
    RateLimited {
        /// The limit.
        per_minute: u32,
        /// When a ping will be taken again.
        retry_after: Duration,
    },
    /// The check is gone (removed by a reload meanwhile).
    #[error("no heartbeat check is called {0:?}")]
    Unknown(String),
    /// The store refused.
    #[error("storage unavailable: {0}")]
    Store(#[from] StoreError),
}

/// State shared by handlers and the evaluator.
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    notifier: Notifier,
    metrics: Metrics,
    runtime: RwLock<Arc<Runtime>>,
    /// Records by check name; held across the store write so pings to one
    /// check are applied in order.
    records: tokio::sync::Mutex<HashMap<String, Record>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    wake: Notify,
    /// The checks' history, where every outcome is entered (once attached).
    history: RwLock<Option<Arc<crate::checks::Checks>>>,
}

impl Shared {
    pub(crate) fn runtime(&self) -> Arc<Runtime> {
        match self.runtime.read() {
            Ok(runtime) => Arc::clone(&runtime),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub(crate) fn refuse(&self, reason: &'static str) {
        self.metrics.refused.get_or_create(&RefusedLabels { reason }).inc();
    }

    /// Rate-limits, applies and stores one ping of check `name`. The ping's
    /// `at` is set here from the clock, and its duration, unless the sender
    /// measured one, from the start it ends.
    pub(crate) async fn ping(&self, name: &str, mut ping: Ping) -> Result<(), PingError> {
        let runtime = self.runtime();
        let entry = runtime.checks.get(name).ok_or_else(|| PingError::Unknown(name.to_string()))?;
        let now = self.clock.now();
        let per_minute = runtime.config.max_pings_per_minute;
        {
            let mut buckets = match self.buckets.lock() {
                Ok(buckets) => buckets,
                Err(poisoned) => poisoned.into_inner(),
            };
            let bucket =
                buckets.entry(name.to_string()).or_insert(Bucket { tokens: f64::from(per_minute.max(1)), at: now });
            if let Err(retry_after) = bucket.take(now, per_minute) {
                return Err(PingError::RateLimited { per_minute, retry_after });
            }
        }
        let kind = ping.kind;
        let mut records = self.records.lock().await;
        let mut record = records.get(name).cloned().unwrap_or_default();
        let applied = record.apply(&entry.spec, kind, now, ping.rid.as_deref());
        ping.at = now;
        ping.duration_seconds = ping
            .duration_seconds
            .or_else(|| applied.duration.map(|duration| duration.num_milliseconds().max(0) as f64 / 1000.0));
        let history = self.history();
        let outcome = history::outcome(&ping, in_maintenance(&runtime.config, entry, history.as_deref(), now));
        self.store.save(name, Some(ping), &record, runtime.config.keep_pings, now).await?;
        let status = record.status(&entry.spec, now);
        self.metrics.set_status(name, status);
        records.insert(name.to_string(), record);
        if let Some(history) = history {
            if let Some(outcome) = outcome {
                history.record_unprobed(name, outcome).await;
            }
            history.report_status(name, status.as_str(), status == Status::Paused);
        }
        drop(records);
        let labels = CheckLabels { check: name.to_string() };
        self.metrics.last_ping.get_or_create(&labels).set(now.timestamp_millis() as f64 / 1000.0);
        self.metrics.pings.get_or_create(&PingLabels { check: name.to_string(), kind: kind.as_str() }).inc();
        self.wake.notify_one();
        Ok(())
    }

    /// The checks' history, once attached.
    pub(crate) fn history(&self) -> Option<Arc<crate::checks::Checks>> {
        self.history.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Pauses or resumes check `name` through the heartbeats API, and shows
    /// it so in the checks' history.
    pub(crate) async fn set_paused(&self, name: &str, paused: bool) -> Result<(), PingError> {
        self.pause_record(name, paused).await?;
        if let Some(history) = self.history() {
            history.record_paused(name, paused).await?;
        }
        Ok(())
    }

    /// Pauses or resumes check `name`'s record (no alerts while paused).
    pub(crate) async fn pause_record(&self, name: &str, paused: bool) -> Result<(), PingError> {
        let runtime = self.runtime();
        let entry = runtime.checks.get(name).ok_or_else(|| PingError::Unknown(name.to_string()))?;
        let now = self.clock.now();
        let mut records = self.records.lock().await;
        let mut record = records.get(name).cloned().unwrap_or_default();
        // Only a change counts: "resume all" leaves running checks as they are.
        match (paused, record.paused_at.is_some()) {
            (true, false) => record.pause(now),
            (false, true) => record.resume(),
            _ => {}
        }
        self.store.save(name, None, &record, runtime.config.keep_pings, now).await?;
        let status = record.status(&entry.spec, now);
        self.metrics.set_status(name, status);
        if let Some(history) = self.history() {
            history.report_status(name, status.as_str(), status == Status::Paused);
        }
        records.insert(name.to_string(), record);
        drop(records);
        self.wake.notify_one();
        Ok(())
    }

    /// A copy of every record.
    pub(crate) async fn records(&self) -> HashMap<String, Record> {
        self.records.lock().await.clone()
    }

    /// Submits every alert change due at the current instant and returns when
    /// the next evaluation is needed.
    async fn evaluate(&self) -> Option<DateTime<Utc>> {
        struct Change {
            name: String,
            kind: AlertKind,
            since: DateTime<Utc>,
            resolved: bool,
        }
        let now = self.clock.now();
        let runtime = self.runtime();
        let mut records = self.records.lock().await;
        let mut next: Option<DateTime<Utc>> = None;
        let mut earliest = |at: DateTime<Utc>| next = Some(next.map_or(at, |current: DateTime<Utc>| current.min(at)));
        let mut changes = Vec::new();
        let mut notifications = Vec::new();
        let history = self.history();
        // Results for the history: misses, and results held in a window.
        let mut entered = BTreeMap::new();
        for (name, entry) in &runtime.checks {
            let record = records.entry(name.clone()).or_default();
            // Asked at most once per heartbeat and pass, only when needed.
            let window = std::cell::OnceCell::new();
            let in_window = || *window.get_or_init(|| in_maintenance(&runtime.config, entry, history.as_deref(), now));
            if let Some(reason) = record.unrecorded_miss(&entry.spec, now) {
                record.missed_at = Some(now);
                entered.insert(name.clone(), history::missed(now, reason, in_window()));
            } else if let Some(held) = history.as_ref().and_then(|history| history.held(name)) {
                // A result in a window that the health has not followed (a
                // miss while not down, a success while not up), and the heartbeat
                // still so: once the window is over it counts, as a probed
                // check's next run after it would, so it is entered again.
                let status = record.status(&entry.spec, now);
                if status != Status::Paused && (status == Status::Down) != held.success {
                    if in_window() {
                        earliest(now + MAINTENANCE_RECHECK);
                    } else {
                        entered.insert(name.clone(), history::again(now, held));
                    }
                }
            }
            for (kind, wanted) in record.wanted_alerts(&entry.spec, now) {
                let (since, ended) = match (wanted, record.alerts.get(kind)) {
                    // Held while a maintenance window covers the check, and
                    // told once it ends if still wanted; an alert firing
                    // before the window may still resolve during it.
                    (true, None) if in_window() => {
                        earliest(now + MAINTENANCE_RECHECK);
                        continue;
                    }
                    (true, None) => (record.alert_start(&entry.spec, kind, now), None),
                    (false, Some(since)) => (since, Some(now)),
                    _ => continue,
                };
                notifications.push(notify::notification(&runtime.config, entry, record, kind, since, ended));
                changes.push(Change { name: name.clone(), kind, since, resolved: ended.is_some() });
            }
            if let Some(at) = record.next_change(&entry.spec, now) {
                earliest(at);
            }
        }
        // Checks removed by a reload: resolve what they still have firing.
        for (name, record) in records.iter().filter(|(name, _)| !runtime.checks.contains_key(*name)) {
            for kind in AlertKind::ALL {
                let Some(since) = record.alerts.get(kind) else { continue };
                notifications.push(notify::removed(&runtime.config, name, kind, since, now));
                changes.push(Change { name: name.clone(), kind, since, resolved: true });
            }
        }
        // Misses and alerts are stored together, so that many deadlines
        // passing at once share the stores' group commits instead of paying
        // one commit each.
        if let Some(history) = &history {
            let results = entered.iter().map(|(name, outcome)| history.record_unprobed(name, outcome.clone()));
            futures::future::join_all(results).await;
        }
        let outcomes = futures::future::join_all(notifications.into_iter().map(|n| self.notifier.submit(n))).await;
        let mut touched: std::collections::BTreeSet<String> = entered.into_keys().collect();
        for (change, outcome) in changes.iter().zip(outcomes) {
            match outcome {
                Ok(()) => {
                    if let Some(record) = records.get_mut(&change.name) {
                        record.alerts.set(change.kind, (!change.resolved).then_some(change.since));
                        touched.insert(change.name.clone());
                    }
                }
                Err(err) => {
                    tracing::warn!(check = %change.name, alert = change.kind.alertname(), error = %err, "Cannot submit a heartbeat alert; retrying.");
                    earliest(now + RETRY_AFTER_FAILURE);
                }
            }
        }
        let told: Vec<(String, Record)> =
            touched.iter().filter_map(|name| records.get(name).map(|record| (name.clone(), record.clone()))).collect();
        if let Err(err) = self.store.save_records(told, now).await {
            // The alerts were committed; a restart before the next save
            // tells them again (at least once, never lost).
            tracing::warn!(error = %err, "Cannot store heartbeat alert states.");
        }
        records.retain(|name, record| {
            let keep = runtime.checks.contains_key(name) || record.alerts != state::Alerts::default();
            if !runtime.checks.contains_key(name) && !keep {
                self.metrics.forget(name);
            }
            keep
        });
        for (name, entry) in &runtime.checks {
            if let Some(record) = records.get(name) {
                let status = record.status(&entry.spec, now);
                self.metrics.set_status(name, status);
                if let Some(history) = &history {
                    history.report_status(name, status.as_str(), status == Status::Paused);
                }
            }
        }
        next
    }
}

/// The running heartbeat service.
pub struct Heartbeats {
    shared: Arc<Shared>,
    /// The evaluator.
    tasks: Tasks,
}

impl std::fmt::Debug for Heartbeats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heartbeats").finish_non_exhaustive()
    }
}

impl Heartbeats {
    /// Opens the store, registers metrics and starts the evaluator.
    pub async fn start(config: Arc<Config>, registry: &mut Registry, notifier: Notifier) -> Result<Heartbeats, Error> {
        Self::start_with_clock(config, registry, notifier, Arc::new(SystemClock)).await
    }

    /// Like [`Heartbeats::start`], reading time from `clock`.
    pub async fn start_with_clock(
        config: Arc<Config>,
        registry: &mut Registry,
        notifier: Notifier,
        clock: Arc<dyn Clock>,
    ) -> Result<Heartbeats, Error> {
        let storage = crate::storage::Storage::open(&config.store.clone().unwrap_or_default()).await?;
        Self::start_on(config, registry, notifier, clock, storage).await
    }

    /// Like [`Heartbeats::start_with_clock`], keeping pings and states in
    /// `storage` (shared with the other areas by the composition root).
    pub async fn start_on(
        config: Arc<Config>,
        registry: &mut Registry,
        notifier: Notifier,
        clock: Arc<dyn Clock>,
        storage: crate::storage::Storage,
    ) -> Result<Heartbeats, Error> {
        let runtime = Runtime::build(Arc::clone(&config))?;
        let store = Store::new(storage).await?;
        let records = store.records().await?;
        let metrics = Metrics::register(registry);
        let shared = Arc::new(Shared {
            store,
            clock,
            notifier,
            metrics,
            runtime: RwLock::new(Arc::new(runtime)),
            records: tokio::sync::Mutex::new(records),
            buckets: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            history: RwLock::new(None),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = run_evaluator(Arc::clone(&shared), shutdown_rx).boxed();
        tracing::info!(checks = config.checks.len(), "Heartbeats started.");
        Ok(Heartbeats { shared, tasks: Tasks::new(shutdown, vec![task]) })
    }

    /// The evaluator, for the caller to spawn; empty after the first call.
    /// It ends after [`Heartbeats::shutdown`].
    pub fn take_tasks(&self) -> Vec<BoxFuture<'static, ()>> {
        self.tasks.take()
    }

    /// Routes that never need the operator login: `/ping/…` and
    /// `POST /api/v1/checks/<name>/results` (its own per-check token).
    pub fn open_router(&self) -> axum::Router {
        http::open_router(Arc::clone(&self.shared))
    }

    /// Read and pause routes under `/api/v1/heartbeats`, for behind the login.
    pub fn api_router(&self) -> axum::Router {
        http::api_router(Arc::clone(&self.shared))
    }

    /// Swaps the checks, keys and limits; records of kept checks stay.
    pub fn reload(&self, config: Arc<Config>) -> Result<(), Error> {
        let runtime = Runtime::build(config)?;
        if let Ok(mut current) = self.shared.runtime.write() {
            *current = Arc::new(runtime);
        }
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Enters every outcome from now on into `checks`' history, and makes
    /// each heartbeat one of its checks (kind `heartbeat`).
    pub async fn attach(&self, checks: Arc<crate::checks::Checks>) -> Result<(), crate::checks::Error> {
        *self.shared.history.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(checks);
        self.sync_history().await
    }

    /// Brings the checks' history in line with the configured heartbeats
    /// (after a reload), with their statuses.
    pub async fn sync_history(&self) -> Result<(), crate::checks::Error> {
        let Some(checks) = self.shared.history() else { return Ok(()) };
        let runtime = self.shared.runtime();
        let unprobed = runtime.checks.values().map(history::check_of).collect();
        checks.set_unprobed(unprobed, history::owner(&self.shared)).await?;
        for (name, status) in self.statuses().await {
            checks.report_status(&name, status.as_str(), status == Status::Paused);
        }
        self.shared.wake.notify_one();
        Ok(())
    }

    /// The latest `limit` pings of check `name`, newest first.
    pub async fn pings(&self, name: &str, limit: u32) -> Result<Vec<Ping>, StoreError> {
        self.shared.store.pings(name, limit).await
    }

    /// Whether `name` is a heartbeat.
    pub fn has(&self, name: &str) -> bool {
        self.shared.runtime().checks.contains_key(name)
    }

    /// The status of every check at the service's current time.
    pub async fn statuses(&self) -> BTreeMap<String, Status> {
        let now = self.shared.clock.now();
        let runtime = self.shared.runtime();
        let records = self.shared.records().await;
        runtime
            .checks
            .iter()
            .map(|(name, entry)| {
                let record = records.get(name).cloned().unwrap_or_default();
                (name.clone(), record.status(&entry.spec, now))
            })
            .collect()
    }

    /// Stops the evaluator and waits for it.
    pub async fn shutdown(&self) {
        self.tasks.stop();
        self.tasks.wait().await;
    }
}

async fn run_evaluator(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let next = shared.evaluate().await;
        let sleep = match next {
            Some(at) => shared.clock.sleep_until(at),
            None => Box::pin(std::future::pending()),
        };
        tokio::select! {
            () = sleep => {}
            () = shared.wake.notified() => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_bucket_refills_over_a_minute() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut bucket = Bucket { tokens: 2.0, at: start };
        assert!(bucket.take(start, 2).is_ok());
        assert!(bucket.take(start, 2).is_ok());
        let wait = bucket.take(start, 2).unwrap_err();
        assert_eq!(wait, Duration::from_secs(30));
        assert!(bucket.take(start + chrono::Duration::seconds(30), 2).is_ok());
    }
}
