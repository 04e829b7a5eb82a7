//! The Alertmanager bridge: webhooks in, messages to people out.
//!
//! - `event`, `submit`: the one input — every source turns what it received
//!   into [`event::Event`]s and commits them with [`Bridge::submit`].
//! - `intake`: the webhook source, `POST /webhook` — auth, size, parse, submit, 2xx.
//! - `payload`: Alertmanager v4 / Grafana v1 bodies, normalised.
//! - `route`, `matcher`: which contacts hear about which alerts.
//! - `dedup`: the idempotency key that makes HA peers and retries count once.
//! - `store`: SQLite or PostgreSQL; notifications, outbox, lanes, history.
//! - `outbox`, `plan`: the worker pool and its decisions (delay, quiet hours
//!   with catch-up, rate limits with overflow summary, retries, dead letters).
//! - `channels`, `render`, `quiet`, `ratelimit`: providers, templates and the
//!   schedule and budget maths.
//! - `history`: `GET /api/v1/deliveries`. `metrics`: `checkit_bridge_*`.
//! - `messages`: the message API (`POST`/`GET /api/v1/messages`) for other systems;
//!   `send`: the `checkit send` client of it.
//! - `ack`: acknowledge links, Alertmanager silences and the resolution poller.
//! - `report`: `bridge.reports`, report periods and content, and the
//!   [`report::Desk`] the report scheduler commits through.
//! - `clock`: every time decision reads a [`clock::Clock`], so tests move time by hand.

pub mod ack;
pub mod activity;
pub mod channels;
pub mod clock;
pub mod config;
pub mod dedup;
pub mod event;
pub mod history;
pub mod intake;
pub mod matcher;
pub mod messages;
pub mod metrics;
pub mod outbox;
pub mod payload;
pub mod plan;
pub mod quiet;
pub mod ratelimit;
pub mod render;
pub mod report;
pub mod route;
pub mod send;
pub mod store;
pub mod submit;
pub mod tasks;

pub use config::Config;

use crate::storage::Storage;
use crate::storage::lease::Member;
use channels::ChannelKind;
use clock::{Clock, SystemClock};
use futures::FutureExt;
use futures::future::BoxFuture;
use metrics::Metrics;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use store::{Retention, Store, StoreError};
use tasks::Tasks;
use tokio::sync::{Notify, watch};

/// Why the bridge could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store could not be opened or migrated.
    #[error("bridge store: {0}")]
    Store(#[from] StoreError),
    /// A channel could not be set up.
    #[error("bridge channels: {0}")]
    Channels(#[from] channels::Error),
    /// Templates failed to compile.
    #[error("bridge templates: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Templates(Vec<crate::config::Problem>),
    /// The configuration cannot be used (unreadable secret, no store).
    #[error("bridge config: {0}")]
    Config(String),
}

/// The parts of the running bridge that a reload swaps.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub(crate) config: Arc<Config>,
    pub(crate) routing: route::Routing,
    pub(crate) credentials: intake::Credentials,
    pub(crate) channels: channels::Channels,
    pub(crate) templates: render::Templates,
    /// Quiet-hours bypass matchers by contact.
    pub(crate) bypass: HashMap<String, Vec<matcher::Matchers>>,
    /// Message API tokens.
    pub(crate) tokens: messages::Tokens,
    /// The acknowledge-link key and settings, when configured.
    pub(crate) acks: Option<ack::Acks>,
}

impl Runtime {
    fn build(config: Arc<Config>) -> Result<Runtime, Error> {
        Ok(Runtime {
            bypass: config.contacts.iter().map(|(name, contact)| (name.clone(), contact.bypass())).collect(),
            routing: route::Routing::new(&config),
            credentials: intake::Credentials::load(&config).map_err(Error::Config)?,
            tokens: messages::Tokens::load(&config.messages).map_err(Error::Config)?,
            acks: config.acknowledgement.as_ref().map(ack::Acks::load).transpose().map_err(Error::Config)?,
            channels: channels::Channels::new(&config.channels)?,
            templates: render::Templates::new(&config.templates).map_err(Error::Templates)?,
            config,
        })
    }
}

/// State shared by the handlers and workers.
pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) metrics: Metrics,
    runtime: RwLock<Arc<Runtime>>,
    /// Wakes idle workers when rows are committed.
    pub(crate) wake: Notify,
    /// Approximate outbox depth, for 503 back-pressure without a query per request.
    pub(crate) queue_depth: AtomicU64,
    /// Outbox rows committed by intake since start, so that a statistics
    /// refresh racing with intake never lowers the depth below the truth.
    pub(crate) rows_accepted: AtomicU64,
    /// This process's membership among the replicas; its name owns lane leases.
    pub(crate) member: Member,
    /// Bytes of webhook bodies being parsed and committed at once; see
    /// [`intake::INTAKE_BUDGET`].
    pub(crate) intake_budget: Arc<tokio::sync::Semaphore>,
    /// Serialises sends of contacts with a contact-wide rate limit.
    contact_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Shared {
    /// The lock of `contact`'s contact-wide rate limit.
    pub(crate) fn contact_lock(&self, contact: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = match self.contact_locks.lock() {
            Ok(locks) => locks,
            Err(poisoned) => poisoned.into_inner(),
        };
        Arc::clone(locks.entry(contact.to_string()).or_default())
    }

    pub(crate) fn runtime(&self) -> Arc<Runtime> {
        match self.runtime.read() {
            Ok(runtime) => Arc::clone(&runtime),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

/// The running bridge.
pub struct Bridge {
    shared: Arc<Shared>,
    /// Workers and housekeeping.
    tasks: Tasks,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").field("owner", &self.shared.member.owner()).finish_non_exhaustive()
    }
}

/// How often queue gauges and the back-pressure count are refreshed.
const STATS_INTERVAL: Duration = Duration::from_secs(2);
/// How often old history and state are deleted.
const GC_INTERVAL: Duration = Duration::from_secs(3600);

impl Bridge {
    /// Opens the store, runs migrations and registers metrics; the workers
    /// run once the caller spawns [`Bridge::take_tasks`].
    pub async fn start(config: Arc<Config>, registry: &mut Registry) -> Result<Bridge, Error> {
        Self::start_with_clock(config, registry, Arc::new(SystemClock)).await
    }

    /// Like [`Bridge::start`], reading time from `clock` (tests pass a
    /// [`clock::TestClock`]).
    pub async fn start_with_clock(
        config: Arc<Config>,
        registry: &mut Registry,
        clock: Arc<dyn Clock>,
    ) -> Result<Bridge, Error> {
        let storage = Storage::open(&config.store.clone().unwrap_or_default()).await?;
        Self::start_on(config, registry, clock, storage).await
    }

    /// Like [`Bridge::start_with_clock`], keeping its tables in `storage`
    /// (shared with the other areas by the composition root).
    pub async fn start_on(
        config: Arc<Config>,
        registry: &mut Registry,
        clock: Arc<dyn Clock>,
        storage: Storage,
    ) -> Result<Bridge, Error> {
        let channel_names: Vec<&'static str> = ChannelKind::all().iter().map(|kind| kind.as_str()).collect();
        let metrics = Metrics::register(registry, &channel_names);
        let runtime = Runtime::build(Arc::clone(&config))?;
        let described = storage.describe();
        let member = Member::join(storage.clone(), "bridge").await?;
        let store = Store::open(storage).await?;
        let shared = Arc::new(Shared {
            store,
            clock,
            metrics,
            runtime: RwLock::new(Arc::new(runtime)),
            wake: Notify::new(),
            queue_depth: AtomicU64::new(0),
            rows_accepted: AtomicU64::new(0),
            member: member.clone(),
            intake_budget: Arc::new(tokio::sync::Semaphore::new(intake::INTAKE_BUDGET)),
            contact_locks: Mutex::new(HashMap::new()),
        });
        refresh_stats(&shared).await;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let working = Arc::new(AtomicU64::new(0));
        for _ in 0..config.workers.max(1) {
            working.fetch_add(1, Ordering::Relaxed);
            let working = Arc::clone(&working);
            let worker = outbox::run_worker(Arc::clone(&shared), shutdown_rx.clone());
            tasks.push(
                async move {
                    worker.await;
                    working.fetch_sub(1, Ordering::Relaxed);
                }
                .boxed(),
            );
        }
        tasks.push(ack::run_poller(Arc::clone(&shared), shutdown_rx.clone()).boxed());
        tasks.push(run_housekeeping(Arc::clone(&shared), shutdown_rx.clone()).boxed());
        tasks.push(keep_presence(member, working, config.delivery_timeout.get(), shutdown_rx).boxed());
        tracing::info!(workers = config.workers, store = %described, "Bridge started.");
        Ok(Bridge { shared, tasks: Tasks::new(shutdown, tasks) })
    }

    /// The bridge's long-lived work (the outbox workers and housekeeping), for
    /// the caller to spawn; empty after the first call. Every task ends after
    /// [`Bridge::shutdown`].
    pub fn take_tasks(&self) -> Vec<BoxFuture<'static, ()>> {
        self.tasks.take()
    }

    /// Commits `batch` durably (see [`submit`]); the one way in for every source.
    pub async fn submit(&self, batch: event::Batch) -> Result<submit::Submitted, submit::SubmitError> {
        submit::submit(&self.shared, batch).await
    }

    /// A handle on [`Bridge::submit`] for sources that live apart from the bridge.
    pub fn submitter(&self) -> submit::Submitter {
        submit::Submitter(Arc::clone(&self.shared))
    }

    /// The reports' handle on the pipeline (config, history, commit, preview).
    pub fn report_desk(&self) -> report::Desk {
        report::Desk(Arc::clone(&self.shared))
    }

    /// Acknowledges the alert group of notification `notification_id` for
    /// `actor` (the operator UI's Acknowledge button), as a link would.
    pub async fn acknowledge(&self, notification_id: i64, actor: &str) -> Result<ack::AckOutcome, ack::AckError> {
        ack::acknowledge_group(&self.shared, notification_id, actor).await
    }

    /// Whether acknowledgement is configured.
    pub fn acknowledges(&self) -> bool {
        self.shared.runtime().acks.is_some()
    }

    /// The webhook surface: `POST /webhook`.
    pub fn webhook_router(&self) -> axum::Router {
        intake::router(Arc::clone(&self.shared))
    }

    /// The deliveries API surface: `GET /api/v1/deliveries`.
    pub fn deliveries_router(&self) -> axum::Router {
        history::router(Arc::clone(&self.shared))
    }

    /// The message API surface: `POST` and `GET /api/v1/messages`.
    pub fn messages_router(&self) -> axum::Router {
        messages::router(Arc::clone(&self.shared))
    }

    /// The acknowledgement surface: `/ack/{token}` and `GET /api/v1/acknowledgements`.
    pub fn ack_router(&self) -> axum::Router {
        ack::router(Arc::clone(&self.shared))
    }

    /// Every surface on one router (tests serve it directly).
    pub fn router(&self) -> axum::Router {
        self.webhook_router().merge(self.deliveries_router()).merge(self.messages_router()).merge(self.ack_router())
    }

    /// Swaps contacts, groups, routes, channels, templates, auth and tuning.
    /// Store, listen-address and worker-count changes need a restart; they
    /// are logged and otherwise ignored. A config that cannot be built (an
    /// unreadable secret file) is logged and the running one stays; use
    /// [`Bridge::try_reload`] to get the error.
    pub fn reload(&self, config: Arc<Config>) {
        if let Err(err) = self.try_reload(config) {
            tracing::error!(error = %err, "Bridge reload failed; keeping the running configuration.");
        }
    }

    /// Like [`Bridge::reload`], returning why a config could not be used.
    pub fn try_reload(&self, config: Arc<Config>) -> Result<(), Error> {
        let current = self.shared.runtime();
        let store_changed = format!("{:?}", current.config.store) != format!("{:?}", config.store);
        if store_changed {
            tracing::warn!("The bridge store changed; restart checkit to use it.");
        }
        if current.config.listen_address != config.listen_address {
            tracing::warn!("The bridge listen address changed; restart checkit to use it.");
        }
        if current.config.workers != config.workers {
            tracing::warn!("The bridge worker count changed; restart checkit to use it.");
        }
        let runtime = Arc::new(Runtime::build(config)?);
        match self.shared.runtime.write() {
            Ok(mut slot) => *slot = runtime,
            Err(poisoned) => *poisoned.into_inner() = runtime,
        }
        self.shared.wake.notify_waiters();
        tracing::info!("Bridge configuration reloaded.");
        Ok(())
    }

    /// The store, for diagnostics and tests.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Wakes the workers (after a test moved its clock, for example).
    pub fn wake(&self) {
        self.shared.wake.notify_waiters();
    }

    /// Stops the workers after their in-flight attempt; pending rows stay
    /// in the store for the next start. Calling it again does nothing.
    pub async fn shutdown(&self) {
        let stopped = self.tasks.stop();
        self.shared.wake.notify_waiters();
        self.tasks.wait().await;
        if stopped {
            tracing::info!("Bridge stopped.");
        }
    }
}

/// Keeps this replica's presence (and so its lane leases) alive until
/// shutdown and then until the workers finished their in-flight attempt
/// (bounded by two delivery timeouts), so no other replica takes over a lane
/// mid-delivery; then leaves, so the others take over at once.
async fn keep_presence(
    member: Member,
    working: Arc<AtomicU64>,
    delivery_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let beat = |member: &Member| {
        let member = member.clone();
        async move {
            if let Err(err) = member.beat().await {
                tracing::warn!(error = %err, "Cannot refresh this replica's presence.");
            }
        }
    };
    loop {
        tokio::select! {
            () = tokio::time::sleep(crate::storage::lease::HEARTBEAT) => beat(&member).await,
            changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { break },
        }
    }
    let deadline = tokio::time::Instant::now() + delivery_timeout.saturating_mul(2);
    while working.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if member.certainly_alive() {
            continue;
        }
        beat(&member).await;
    }
    member.leave().await;
}

/// Refreshes the queue gauges and the back-pressure count from the store.
async fn refresh_stats(shared: &Shared) {
    let accepted_before = shared.rows_accepted.load(Ordering::Relaxed);
    match shared.store.queue_stats().await {
        Ok(stats) => {
            // Rows committed while the query ran may be missing from it: add
            // them (at worst counting some twice until the next refresh).
            let accepted_meanwhile = shared.rows_accepted.load(Ordering::Relaxed) - accepted_before;
            shared.queue_depth.store(stats.depth() + accepted_meanwhile, Ordering::Relaxed);
            let gauge = |state| shared.metrics.queue_depth.get_or_create(&metrics::StateLabels { state });
            gauge("pending").set(i64::try_from(stats.pending).unwrap_or(i64::MAX));
            gauge("held").set(i64::try_from(stats.held).unwrap_or(i64::MAX));
            gauge("limited").set(i64::try_from(stats.limited).unwrap_or(i64::MAX));
            let age = stats
                .oldest_pending
                .map(|oldest| (shared.clock.now() - oldest).num_milliseconds().max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            shared.metrics.oldest_pending_age.set(age);
        }
        Err(err) => tracing::warn!(error = %err, "Cannot read outbox statistics."),
    }
}

async fn run_housekeeping(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut stats = tokio::time::interval(STATS_INTERVAL);
    let mut gc = tokio::time::interval(GC_INTERVAL);
    loop {
        tokio::select! {
            _ = stats.tick() => refresh_stats(&shared).await,
            _ = gc.tick() => {
                let config = Arc::clone(&shared.runtime().config);
                let now = shared.clock.now();
                let retention = Retention {
                    history_before: now - chrono::Duration::from_std(config.retention.get()).unwrap_or_default(),
                    dedup_before: now - chrono::Duration::from_std(config.dedup_window.get()).unwrap_or_default(),
                    sends_before: now - outbox::SEND_WINDOW,
                };
                if let Err(err) = shared.store.gc(retention).await {
                    tracing::warn!(error = %err, "Cannot delete old bridge data.");
                }
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

/// A map of owned strings from `(name, value)` pairs: the query parameters
/// and label sets the tests of the bridge and its surfaces start from.
#[cfg(test)]
pub(crate) fn string_map<M: FromIterator<(String, String)>>(pairs: &[(&str, &str)]) -> M {
    pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
}
