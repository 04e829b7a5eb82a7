//! Scheduled checks: checkit probes by itself, keeps the history, and tells
//! people.
//!
//! - `config`: `checks:`, `check_files:`, `check_options:`.
//! - `schedule`: stable per-check slots and the loop that runs one check.
//! - `state`: up/down by thresholds, incidents.
//! - `maintenance`: one-off and recurring windows.
//! - `annotations`: incident notes and maintenance planned from the UI.
//! - `store`: raw results, roll-ups, incidents and pauses (the storage layer's `checks` area).
//! - `rollup`: buckets, p95 estimate, uptime windows.
//! - `notify`: transitions as notifications into the bridge.
//! - `metrics`: `/metrics` families, `/metrics/checks`, `/api/v1/sd`.
//! - `api`: `/api/v1/checks…`.
//! - `unprobed`: checks without a prober (heartbeats), whose owner records
//!   their results into the same history.
//!
//! **Architecture invariant:** a check is identified by its name; a reload
//! keeps the state, schedule and history of every check whose name stays.
//! **Architecture invariant:** probes run only through `probe::run`, with the
//! deadline `/probe` would use for a scrape every `interval`.

pub mod agents;
pub mod annotations;
pub mod api;
pub mod config;
pub mod maintenance;
pub mod metrics;
pub mod notify;
pub mod rollup;
pub mod schedule;
pub mod state;
pub mod store;
pub mod unprobed;

use crate::bridge::clock::Clock;
use crate::bridge::submit::Submitter;
use crate::bridge::tasks::Tasks;
use crate::storage::lease::Member;
use crate::storage::{Storage, StoreError};
use chrono::{DateTime, Utc};
use config::Check;
use futures::FutureExt;
use futures::future::BoxFuture;
use rollup::{Period, WINDOWS};
use state::{Change, Incident, Machine, Run, State, Thresholds};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use store::{CheckStore, NewChange, NewResult};
use tokio::sync::mpsc;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// What the checks read from the config in force: `app` builds a new one
/// from each loaded config and hands it over on reload.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Probe modules by name.
    pub modules: crate::probe::Modules,
    /// The exporter's target policy, which scheduled probes obey too.
    pub policy: crate::probe::policy::TargetPolicy,
    /// `checks:`, `check_files:`, `check_options:` and `agents:`.
    pub checks: Arc<config::Settings>,
}

impl Inputs {
    /// The module called `name`.
    pub fn module(&self, name: &str) -> Option<&crate::probe::Module> {
        self.modules.get(name)
    }

    /// The module called `name` as YAML (empty when there is none), as an
    /// agent receives it.
    pub fn module_yaml(&self, name: &str) -> String {
        self.module(name).map(crate::config::yaml::to_string).unwrap_or_default()
    }
}

/// Why checks could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store could not be opened or written.
    #[error("checks store: {0}")]
    Store(#[from] StoreError),
    /// The checks (or a check file) are invalid.
    #[error("checks config: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Config(Vec<crate::config::Problem>),
}

/// The last run of a check, kept in memory for metrics and the API.
#[derive(Debug, Clone)]
pub struct Last {
    /// Start.
    pub at: DateTime<Utc>,
    /// Success.
    pub success: bool,
    /// Seconds (`None`: not measured, e.g. a heartbeat's ping without a start).
    pub duration_seconds: Option<f64>,
    /// Phase and reason of a failure.
    pub failure: Option<(String, String)>,
    /// Whether it ran in maintenance.
    pub maintenance: bool,
    /// The probe's blackbox families (shared: views are copied per scrape).
    pub registry: Arc<crate::probe::metrics::Registry>,
}

#[derive(Debug)]
struct SlotState {
    paused_override: Option<bool>,
    machine: Machine,
    last: Option<Last>,
    uptime: [Option<f64>; WINDOWS.len()],
    reminders: u32,
    /// Per agent location, for checks with `locations`.
    locations: BTreeMap<String, agents::LocationState>,
    /// A quorum transition of the batch being applied, announced at its end.
    pending: Option<Change>,
    /// The finer status an unprobed check's owner reports (a heartbeat's
    /// `new`, `late`, `started`…), shown beside the health.
    status: Option<&'static str>,
}

/// One scheduled check: its config (swapped by reloads) and its state.
#[derive(Debug)]
pub struct Slot {
    id: i64,
    check: RwLock<Arc<Check>>,
    state: Mutex<SlotState>,
}

/// A consistent copy of a slot for rendering.
#[derive(Debug, Clone)]
pub struct View {
    /// The config.
    pub check: Arc<Check>,
    /// The effective state.
    pub state: State,
    /// Whether paused (config or API).
    pub paused: bool,
    /// The last run.
    pub last: Option<Last>,
    /// Uptime per [`WINDOWS`] entry, from the last refresh.
    pub uptime: [Option<f64>; WINDOWS.len()],
    /// The open incident.
    pub incident: Option<Incident>,
    /// Since when the health is what it is.
    pub since: Option<DateTime<Utc>>,
    /// Each agent location's view (checks with `locations`; a silent one is absent).
    pub locations: BTreeMap<String, agents::LocationState>,
    /// An unprobed check's finer status, as its owner reports it (`None` for probed checks).
    pub status: Option<&'static str>,
}

impl Slot {
    /// A slot for `check` with what the store saved about it.
    fn restore(saved: store::Saved, check: Check) -> Arc<Slot> {
        Arc::new(Slot {
            id: saved.id,
            state: Mutex::new(SlotState {
                paused_override: saved.paused,
                machine: Machine::restore(saved.health, saved.since, saved.incident),
                last: None,
                uptime: [None; WINDOWS.len()],
                reminders: 0,
                locations: BTreeMap::new(),
                pending: None,
                status: None,
            }),
            check: RwLock::new(Arc::new(check)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The check's current config.
    pub fn check(&self) -> Arc<Check> {
        Arc::clone(&self.check.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn set_check(&self, check: Check) {
        *self.check.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(check);
    }

    /// Paused by API, or else by config.
    pub fn is_paused(&self) -> bool {
        let paused_override = self.lock().paused_override;
        paused_override.unwrap_or_else(|| self.check().paused)
    }

    /// A snapshot for rendering.
    pub fn view(&self) -> View {
        let check = self.check();
        let state = self.lock();
        let paused = state.paused_override.unwrap_or(check.paused);
        let maintenance = state.last.as_ref().is_some_and(|last| last.maintenance);
        View {
            state: State::effective(state.machine.health, paused, maintenance),
            paused,
            last: state.last.clone(),
            uptime: state.uptime,
            incident: state.machine.incident.clone(),
            since: state.machine.since,
            locations: state.locations.clone(),
            status: state.status,
            check,
        }
    }
}

struct Running {
    slot: Arc<Slot>,
    stop: watch::Sender<bool>,
}

/// A check's task to start: its slot and its stop signal.
type Launch = (Arc<Shared>, Arc<Slot>, watch::Receiver<bool>);

/// State shared by the check tasks and the HTTP handlers.
pub(crate) struct Shared {
    pub(crate) store: CheckStore,
    /// This process among the replicas sharing the store.
    member: Member,
    /// The live replicas running checks (sorted), on a shared store.
    replicas: RwLock<Arc<Vec<String>>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) probes: Arc<Semaphore>,
    pub(crate) metrics: metrics::Metrics,
    config: RwLock<Arc<Inputs>>,
    running: Mutex<BTreeMap<String, Running>>,
    /// Maintenance planned from the UI that has not ended, by start.
    planned: RwLock<Arc<Vec<annotations::Planned>>>,
    pipeline: Option<Submitter>,
    timeout_offset: f64,
    probe_env: Arc<crate::probe::Env>,
    agents: agents::Agents,
    /// Hands check tasks to [`supervise`], which owns them.
    launches: mpsc::UnboundedSender<Launch>,
    /// Checks without a prober (heartbeats), by name; no task runs them.
    unprobed: Mutex<BTreeMap<String, Arc<Slot>>>,
    /// Who pauses and resumes the unprobed checks.
    owner: RwLock<Option<Arc<dyn unprobed::Owner>>>,
}

impl Shared {
    fn config(&self) -> Arc<Inputs> {
        Arc::clone(&self.config.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn planned(&self) -> Arc<Vec<annotations::Planned>> {
        Arc::clone(&self.planned.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Whether a window planned from the UI or the API covers `name` at `at`.
    fn planned_covers(&self, name: &str, at: DateTime<Utc>) -> bool {
        self.planned().iter().any(|planned| planned.covers(name, at))
    }

    /// Whether a result of `check` at `at` is a maintenance result: a window
    /// of its own or of `check_options` covers it, or one planned from the UI
    /// or the API. Checkit's own runs and agents' results alike.
    fn in_maintenance(&self, config: &Inputs, check: &Check, at: DateTime<Utc>) -> bool {
        let windows = check.maintenance.iter().chain(&config.checks.options.maintenance);
        maintenance::in_maintenance(windows, || selector_labels(check), at) || self.planned_covers(&check.name, at)
    }

    /// Re-reads the planned windows that have not ended.
    async fn reload_planned(&self) -> Result<(), StoreError> {
        let planned = self.store.planned(self.clock.now()).await?;
        *self.planned.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(planned);
        Ok(())
    }

    /// Every slot, probed and unprobed, by name.
    pub(crate) fn slots(&self) -> Vec<Arc<Slot>> {
        // Lock order: `running`, then `unprobed`.
        let running = self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let unprobed = self.unprobed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut named: Vec<(&String, &Arc<Slot>)> =
            running.iter().map(|(name, running)| (name, &running.slot)).chain(unprobed.iter()).collect();
        if !unprobed.is_empty() {
            named.sort_unstable_by(|a, b| a.0.cmp(b.0));
        }
        named.into_iter().map(|(_, slot)| Arc::clone(slot)).collect()
    }

    /// The slot of check `name`.
    pub(crate) fn slot(&self, name: &str) -> Option<Arc<Slot>> {
        let running = self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        running.get(name).map(|running| Arc::clone(&running.slot)).or_else(|| self.unprobed_slot(name))
    }

    /// Whether this replica runs check `name`: always on SQLite; on
    /// PostgreSQL the live replica ranked first for the name (rendezvous
    /// hashing), so replicas split the checks without talking to each other
    /// and a dead replica's checks spread over the others.
    pub(crate) fn runs_here(&self, name: &str) -> bool {
        if !self.store.storage().is_shared() {
            return true;
        }
        let me = self.member.owner();
        let replicas = Arc::clone(&self.replicas.read().unwrap_or_else(|poisoned| poisoned.into_inner()));
        let rank = |owner: &str| {
            use sha2::Digest;
            let digest = sha2::Sha256::new().chain_update(name).chain_update([0]).chain_update(owner).finalize();
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest[..8]);
            (u64::from_be_bytes(first), owner.to_string())
        };
        let mine = rank(&me);
        replicas.iter().filter(|owner| **owner != me).all(|owner| rank(owner) < mine)
    }

    /// Refreshes this replica's presence, who else runs checks, and pauses
    /// and planned maintenance set through other replicas (a heartbeat
    /// apart, so another replica's change applies here within seconds).
    async fn refresh_replicas(&self) {
        if !self.store.storage().is_shared() {
            return;
        }
        if let Err(err) = self.member.beat().await {
            tracing::warn!(error = %err, "Cannot refresh this replica's presence.");
        }
        match self.member.live().await {
            Ok(live) => *self.replicas.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(live),
            Err(err) => tracing::warn!(error = %err, "Cannot read which replicas run checks."),
        }
        match self.store.pauses().await {
            Ok(pauses) => {
                for slot in self.slots() {
                    if let Some(paused) = pauses.get(&slot.id) {
                        slot.lock().paused_override = Some(*paused);
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "Cannot read check pauses."),
        }
        if let Err(err) = self.reload_planned().await {
            tracing::warn!(error = %err, "Cannot read planned maintenance.");
        }
    }

    /// Reads what the store holds of `slot`'s check: another replica ran it
    /// until now.
    pub(crate) async fn take_over(&self, slot: &Slot) {
        let name = slot.check().name.clone();
        match self.store.saved_one(&name).await {
            Ok(Some(saved)) => {
                let mut state = slot.lock();
                state.machine = Machine::restore(saved.health, saved.since, saved.incident);
                state.paused_override = saved.paused;
                state.reminders = 0;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(check = %name, error = %err, "Cannot read the state of a check taken over."),
        }
    }

    /// Pauses or resumes `slots` and stores it so restarts and reloads keep
    /// it; unprobed ones are paused by their owner first (a heartbeat stops alerting).
    pub(crate) async fn set_paused(&self, slots: &[Arc<Slot>], paused: bool) -> Result<(), StoreError> {
        self.pause_unprobed(slots, paused).await?;
        self.record_paused(slots, paused).await
    }

    /// Stores and shows `slots` as paused or resumed, without telling an owner.
    pub(crate) async fn record_paused(&self, slots: &[Arc<Slot>], paused: bool) -> Result<(), StoreError> {
        let ids = slots.iter().map(|slot| slot.id).collect();
        self.store.set_paused(ids, paused, self.clock.now()).await?;
        for slot in slots {
            slot.lock().paused_override = Some(paused);
        }
        Ok(())
    }

    /// Recomputes every check's uptime windows from the roll-ups.
    pub(crate) async fn refresh_uptime(&self) -> Result<(), StoreError> {
        let now = self.clock.now();
        let slots = self.slots();
        for (index, (_, hours)) in WINDOWS.iter().enumerate() {
            let length = chrono::Duration::hours(*hours);
            let sums = self.store.rollups_by_check(Period::for_window(length), now - length, now).await?;
            for slot in &slots {
                slot.lock().uptime[index] = sums.get(&slot.id).and_then(rollup::Rollup::uptime);
            }
        }
        Ok(())
    }
}

/// The running scheduler.
pub struct Checks {
    shared: Arc<Shared>,
    /// The supervisor of the check tasks and the housekeeping loops.
    tasks: Tasks,
}

impl std::fmt::Debug for Checks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checks").field("store", &self.shared.store).finish_non_exhaustive()
    }
}

/// How often uptime windows are recomputed for `/metrics` and the API list.
const UPTIME_REFRESH: Duration = Duration::from_secs(60);
/// How often old results are expired.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(3600);

impl Checks {
    /// Opens the store and starts every check of `config`. `pipeline` is
    /// where notifications go (none: nobody is told); probes run with `probe_env`.
    pub async fn start(
        config: Arc<Inputs>,
        registry: &mut prometheus_client::registry::Registry,
        clock: Arc<dyn Clock>,
        pipeline: Option<Submitter>,
        timeout_offset: f64,
        storage: Storage,
        probe_env: Arc<crate::probe::Env>,
    ) -> Result<Checks, Error> {
        let settings = &config.checks;
        let checks = settings.checks(&config.modules).map_err(Error::Config)?;
        let member = Member::join(storage.clone(), "checks").await?;
        let store = CheckStore::new(storage).await?;
        if pipeline.is_none() && checks.iter().any(|check| check.notify) {
            tracing::warn!("Checks notify through the bridge, which is not configured; nobody will be told.");
        }
        let (launch, launches) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            store,
            member,
            replicas: RwLock::new(Arc::new(Vec::new())),
            clock,
            probes: Arc::new(Semaphore::new(settings.options.max_concurrent)),
            metrics: metrics::Metrics::register(registry),
            config: RwLock::new(Arc::clone(&config)),
            running: Mutex::new(BTreeMap::new()),
            planned: RwLock::new(Arc::new(Vec::new())),
            pipeline,
            timeout_offset,
            probe_env,
            agents: agents::Agents::default(),
            launches: launch,
            unprobed: Mutex::new(BTreeMap::new()),
            owner: RwLock::new(None),
        });
        registry.register_collector(Box::new(metrics::Collector(Arc::clone(&shared))));
        shared.reload_planned().await?;
        // Know the other replicas before the first slot, so no check starts twice.
        shared.refresh_replicas().await;
        apply(&shared, checks).await?;
        if let Err(err) = shared.refresh_uptime().await {
            tracing::warn!(error = %err, "Cannot compute check uptime.");
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let tasks = vec![
            supervise(launches, shutdown_rx.clone()).boxed(),
            run_housekeeping(Arc::clone(&shared), shutdown_rx.clone()).boxed(),
            run_replicas(Arc::clone(&shared), shutdown_rx.clone()).boxed(),
            watch_files(Arc::clone(&shared), shutdown_rx.clone()).boxed(),
            agents::watch_agents(Arc::clone(&shared), shutdown_rx.clone()).boxed(),
            agents::follow_locations(Arc::clone(&shared), shutdown_rx).boxed(),
        ];
        tracing::info!(checks = shared.slots().len(), store = %shared.store.storage().describe(), "Checks started.");
        Ok(Checks { shared, tasks: Tasks::new(shutdown, tasks) })
    }

    /// The long-lived tasks, for the composition root to spawn once: the
    /// supervisor that runs every check's task, housekeeping (uptime,
    /// expiry), replica membership, the `check_files` watcher and the agents'
    /// watchdog. Until they run, no check is probed.
    pub fn take_tasks(&self) -> Vec<BoxFuture<'static, ()>> {
        self.tasks.take()
    }

    /// Applies a new config: unchanged checks keep state and schedule,
    /// changed ones are updated in place, new ones start, removed ones stop.
    pub async fn reload(&self, config: Arc<Inputs>) -> Result<(), Error> {
        let checks = config.checks.checks(&config.modules).map_err(Error::Config)?;
        *self.shared.config.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = config;
        apply(&self.shared, checks).await
    }

    /// The routes: `/api/v1/checks…`, `/api/v1/sd`, `/metrics/checks`.
    pub fn router(&self) -> axum::Router {
        api::router(Arc::clone(&self.shared))
    }

    /// The routes agents call (`/api/v1/agent/…`), authenticated by agent
    /// tokens rather than the operator login.
    pub fn agent_router(&self) -> axum::Router {
        agents::router(Arc::clone(&self.shared))
    }

    /// Recomputes uptime windows now (they refresh every minute anyway).
    pub async fn refresh_uptime(&self) -> Result<(), StoreError> {
        self.shared.refresh_uptime().await
    }

    /// Every check's store id and a snapshot of it, by name (for reports and the web UI).
    pub fn views(&self) -> Vec<(i64, View)> {
        self.shared.slots().iter().map(|slot| (slot.id, slot.view())).collect()
    }

    /// The store, for diagnostics and tests.
    pub fn store(&self) -> &CheckStore {
        &self.shared.store
    }

    /// Stops every check after its run in flight. Calling it again does nothing.
    pub async fn shutdown(&self) {
        self.tasks.stop();
        let running = std::mem::take(&mut *self.shared.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        for (_, running) in running {
            let _ = running.stop.send(true);
        }
        self.tasks.wait().await;
    }
}

/// Read and pause access for the web UI.
impl Checks {
    /// Check `name` with its store id.
    pub fn view_of(&self, name: &str) -> Option<(i64, View)> {
        self.shared.slot(name).map(|slot| (slot.id, slot.view()))
    }

    /// Pauses or resumes the named checks (every check for `None`); returns
    /// how many there were.
    pub async fn set_paused(&self, names: Option<&[String]>, paused: bool) -> Result<usize, StoreError> {
        let slots: Vec<Arc<Slot>> = match names {
            None => self.shared.slots(),
            Some(names) => names.iter().filter_map(|name| self.shared.slot(name)).collect(),
        };
        self.shared.set_paused(&slots, paused).await?;
        Ok(slots.len())
    }

    /// The current time of the checks' clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.shared.clock.now()
    }

    /// Plans a maintenance window over `planned.checks` (every check when
    /// empty); it applies from its start like a configured one-off window.
    pub async fn plan_maintenance(
        &self,
        mut planned: annotations::Planned,
    ) -> Result<i64, annotations::AnnotationError> {
        use annotations::AnnotationError::Invalid;
        planned.title = annotations::clean_title(&planned.title)?;
        let now = self.now();
        if planned.end <= planned.start {
            return Err(Invalid("the end must be after the start".into()));
        }
        if planned.end <= now {
            return Err(Invalid("the window is already over".into()));
        }
        if planned.end - planned.start > annotations::PLANNED_MAX {
            return Err(Invalid(format!("a window lasts at most {} days", annotations::PLANNED_MAX.num_days())));
        }
        if let Some(unknown) = planned.checks.iter().find(|name| self.shared.slot(name).is_none()) {
            return Err(Invalid(format!("there is no check {unknown:?}")));
        }
        let id = self.shared.store.add_planned(planned, now).await?;
        self.shared.reload_planned().await?;
        Ok(id)
    }

    /// Ends planned window `id` now (cancels it when it has not started).
    pub async fn end_maintenance(&self, id: i64) -> Result<(), annotations::AnnotationError> {
        if !self.shared.store.end_planned(id, self.now()).await? {
            return Err(annotations::AnnotationError::NotFound("open maintenance window"));
        }
        self.shared.reload_planned().await?;
        Ok(())
    }

    /// Whether a maintenance window planned from the UI or the API covers
    /// the check (or heartbeat) `name` at `at`.
    pub fn planned_covers(&self, name: &str, at: DateTime<Utc>) -> bool {
        self.shared.planned_covers(name, at)
    }

    /// Every maintenance window, configured or planned, that overlaps
    /// `[from, to)`, with the checks it covers, by start.
    pub fn maintenance_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Scheduled> {
        let config = self.shared.config();
        let slots = self.shared.slots();
        let all: Vec<String> = slots.iter().map(|slot| slot.check().name.clone()).collect();
        let mut found: BTreeMap<(DateTime<Utc>, DateTime<Utc>, String), Scheduled> = BTreeMap::new();
        for slot in &slots {
            let check = slot.check();
            let labels = selector_labels(&check);
            let windows = check.maintenance.iter().chain(&config.checks.options.maintenance);
            for window in windows.filter(|window| window.selects(&labels)) {
                for (start, end) in window.occurrences(from, to) {
                    let key = (start, end, String::new());
                    let entry = found.entry(key).or_insert_with(|| Scheduled {
                        title: "Scheduled maintenance".into(),
                        start,
                        end,
                        checks: Vec::new(),
                        planned: None,
                    });
                    if !entry.checks.contains(&check.name) {
                        entry.checks.push(check.name.clone());
                    }
                }
            }
        }
        for planned in self.shared.planned().iter().filter(|planned| planned.start < to && planned.end > from) {
            let checks = if planned.checks.is_empty() { all.clone() } else { planned.checks.clone() };
            found.insert(
                (planned.start, planned.end, format!("{:020}", planned.id)),
                Scheduled {
                    title: planned.title.clone(),
                    start: planned.start,
                    end: planned.end,
                    checks,
                    planned: Some(planned.clone()),
                },
            );
        }
        found.into_values().collect()
    }
}

/// A maintenance window as pages show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduled {
    /// The planned window's title, or "Scheduled maintenance" for configured ones.
    pub title: String,
    /// Start.
    pub start: DateTime<Utc>,
    /// End, exclusive.
    pub end: DateTime<Utc>,
    /// The checks it covers.
    pub checks: Vec<String>,
    /// The window when it was planned from the UI (it can be ended early).
    pub planned: Option<annotations::Planned>,
}

/// Starts, updates and stops check tasks so that exactly `checks` run.
async fn apply(shared: &Arc<Shared>, checks: Vec<Check>) -> Result<(), Error> {
    let new_names: Vec<String> = {
        let running = shared.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        checks.iter().filter(|check| !running.contains_key(&check.name)).map(|check| check.name.clone()).collect()
    };
    let mut saved = shared.store.register(new_names).await?;
    shared.yield_unprobed(&checks);
    let mut running = shared.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let wanted: HashMap<&str, &Check> = checks.iter().map(|check| (check.name.as_str(), check)).collect();
    running.retain(|name, entry| {
        let keep = wanted.contains_key(name.as_str());
        if !keep {
            let _ = entry.stop.send(true);
        }
        keep
    });
    for check in checks {
        if let Some(entry) = running.get_mut(&check.name) {
            let current = entry.slot.check();
            if *current == check {
                continue;
            }
            let reschedule = current.interval != check.interval;
            entry.slot.set_check(check);
            if reschedule {
                let _ = entry.stop.send(true);
                let (stop, stop_rx) = watch::channel(false);
                let _ = shared.launches.send((Arc::clone(shared), Arc::clone(&entry.slot), stop_rx));
                entry.stop = stop;
            }
            continue;
        }
        let Some(saved) = saved.remove(&check.name) else { continue };
        let slot = Slot::restore(saved, check.clone());
        let (stop, stop_rx) = watch::channel(false);
        let _ = shared.launches.send((Arc::clone(shared), Arc::clone(&slot), stop_rx));
        running.insert(check.name, Running { slot, stop });
    }
    Ok(())
}

/// Labels maintenance selectors see: the check's labels plus its name, module and target.
pub(crate) fn selector_labels(check: &Check) -> BTreeMap<String, String> {
    let mut labels = check.labels.clone();
    labels.insert("check".into(), check.name.clone());
    labels.insert("module".into(), check.module.clone());
    labels.insert("target".into(), check.target.clone());
    labels
}

/// Runs `check` once, stores the result, moves the state and tells people.
pub(crate) async fn run_once(shared: &Shared, slot: &Slot, check: &Check, started: DateTime<Utc>) {
    let config = shared.config();
    let Some(module) = config.module(&check.module) else { return };
    let timeout = crate::probe::effective_timeout(
        module.timeout.get(),
        Some(check.interval.as_secs_f64()),
        shared.timeout_offset,
    );
    let outcome = crate::probe::run(module, &check.target, None, timeout, &config.policy, &shared.probe_env).await;
    let maintenance = shared.in_maintenance(&config, check, started);
    let failure = outcome.error.as_ref().map(|err| (err.phase.as_str().to_string(), err.reason.as_str().to_string()));
    let run = Run { at: started, success: outcome.success(), failure: failure.clone(), maintenance };
    let thresholds =
        Thresholds { failures_before_down: check.failures_before_down, successes_before_up: check.successes_before_up };
    shared
        .metrics
        .runs
        .get_or_create(&metrics::ResultLabels { result: if run.success { "success" } else { "failure" } })
        .inc();
    let change = slot.lock().machine.apply(&run, thresholds);
    let new_change = to_store(change.as_ref(), started);
    let result = NewResult {
        check_id: slot.id,
        at: started,
        duration_us: Some(u64::try_from(outcome.duration.as_micros()).unwrap_or(u64::MAX)),
        success: run.success,
        failure: failure.clone(),
        maintenance,
    };
    let stored = shared.store.record(result, new_change).await;
    remember_incident(shared, slot, &check.name, stored);
    {
        let mut state = slot.lock();
        state.last = Some(Last {
            at: started,
            success: run.success,
            duration_seconds: Some(outcome.duration.as_secs_f64()),
            failure,
            maintenance,
            registry: Arc::new(outcome.registry),
        });
        if matches!(change, Some(Change::Down(_))) {
            state.reminders = 0;
        }
    }
    log_change(&check.name, change.as_ref(), started);
    announce(shared, slot, check, change, maintenance).await;
}

/// What the store keeps of a state change at `at`.
fn to_store(change: Option<&Change>, at: DateTime<Utc>) -> Option<NewChange> {
    match change? {
        Change::FirstUp => Some(NewChange::Up { since: at }),
        Change::Down(incident) => Some(NewChange::Down(incident.clone())),
        Change::Recovered(incident) => match (incident.id, incident.ended_at) {
            (Some(id), Some(ended_at)) => Some(NewChange::Recovered { id, ended_at }),
            _ => Some(NewChange::Up { since: at }),
        },
    }
}

/// Logs a change of check `name` at `at`.
fn log_change(name: &str, change: Option<&Change>, at: DateTime<Utc>) {
    match change {
        Some(Change::Down(incident)) => {
            tracing::info!(check = %name, phase = %incident.phase, reason = %incident.reason, "Check is down.")
        }
        Some(Change::Recovered(incident)) => tracing::info!(
            check = %name,
            down_for = %notify::human_duration(incident.duration(at)),
            "Check is up again."
        ),
        _ => {}
    }
}

/// Gives the open incident the id the store gave it (when a change opened
/// one), or counts and logs the store's failure.
fn remember_incident(shared: &Shared, slot: &Slot, check: &str, stored: Result<Option<i64>, StoreError>) {
    match stored {
        Ok(Some(id)) => {
            if let Some(incident) = slot.lock().machine.incident.as_mut() {
                incident.id = Some(id);
            }
        }
        Ok(None) => {}
        Err(err) => {
            shared.metrics.store_errors.inc();
            tracing::warn!(check, error = %err, "Cannot store a check result or state change.");
        }
    }
}

/// Tells people: a new outage (or one not yet told), a reminder, a recovery.
pub(crate) async fn announce(shared: &Shared, slot: &Slot, check: &Check, change: Option<Change>, maintenance: bool) {
    let Some(pipeline) = &shared.pipeline else { return };
    if !check.notify || maintenance {
        return;
    }
    let now = shared.clock.now();
    let (incident, kind) = match change {
        Some(Change::Recovered(incident)) if incident.notified_at.is_some() => (incident, notify::Kind::Resolved),
        Some(Change::Recovered(_)) => return,
        _ => {
            let state = slot.lock();
            let Some(incident) = state.machine.incident.clone().filter(|_| state.machine.health == State::Down) else {
                return;
            };
            let kind = match incident.notified_at {
                None => notify::Kind::Down,
                Some(told) => {
                    let repeat = chrono::Duration::from_std(check.repeat_interval).unwrap_or_default();
                    if repeat.is_zero() || now - told < repeat {
                        return;
                    }
                    notify::Kind::Reminder(state.reminders + 1)
                }
            };
            (incident, kind)
        }
    };
    let notification = notify::notification(check, &incident, kind, now);
    let fingerprint = notification.alerts.first().map(|alert| alert.fingerprint.clone()).unwrap_or_default();
    // An acknowledged outage gets no reminders (the resolution still goes out).
    if let notify::Kind::Reminder(_) = kind {
        match pipeline.acknowledged_by(&fingerprint).await {
            Ok(Some(by)) => {
                tracing::debug!(check = %check.name, acknowledged_by = %by, "Skipping a reminder: acknowledged.");
                return;
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(check = %check.name, error = %err, "Cannot read acknowledgements; reminding."),
        }
    }
    if let Err(err) = notify::submit(pipeline, notification).await {
        shared.metrics.notifications.get_or_create(&metrics::ResultLabels { result: "failed" }).inc();
        tracing::warn!(check = %check.name, error = %err, "Cannot hand a check notification to the bridge; retrying at the next run.");
        return;
    }
    shared.metrics.notifications.get_or_create(&metrics::ResultLabels { result: "submitted" }).inc();
    if kind == notify::Kind::Resolved {
        if let Err(err) = pipeline.close_acknowledgements(&fingerprint).await {
            tracing::warn!(check = %check.name, error = %err, "Cannot close the outage's acknowledgements.");
        }
        return;
    }
    let id = {
        let mut state = slot.lock();
        if let notify::Kind::Reminder(n) = kind {
            state.reminders = n;
        }
        state.machine.incident.as_mut().and_then(|open| {
            open.notified_at = Some(now);
            open.id
        })
    };
    if let Some(id) = id {
        if let Err(err) = shared.store.mark_notified(id, now).await {
            shared.metrics.store_errors.inc();
            tracing::warn!(check = %check.name, error = %err, "Cannot store a notification time.");
        }
    }
}

async fn run_housekeeping(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut uptime = tokio::time::interval(UPTIME_REFRESH);
    let mut expiry = tokio::time::interval(EXPIRY_INTERVAL);
    loop {
        tokio::select! {
            _ = uptime.tick() => {
                if let Err(err) = shared.refresh_uptime().await {
                    tracing::warn!(error = %err, "Cannot compute check uptime.");
                }
            }
            _ = expiry.tick() => expire(&shared).await,
            changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
        }
    }
}

/// The one task that owns every check's task: it runs each check `apply`
/// hands over in its `JoinSet` (a stopped check's task ends after its run in
/// flight and is reaped here) and, at shutdown, waits for them all.
async fn supervise(mut launches: mpsc::UnboundedReceiver<Launch>, mut shutdown: watch::Receiver<bool>) {
    let mut checks = JoinSet::new();
    loop {
        tokio::select! {
            launch = launches.recv() => match launch {
                Some((shared, slot, stop)) => {
                    checks.spawn(schedule::run_check(shared, slot, stop));
                }
                None => break,
            },
            Some(_) = checks.join_next(), if !checks.is_empty() => {}
            changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { break },
        }
    }
    while checks.join_next().await.is_some() {}
}

/// Keeps this replica's presence and its view of the others current (a
/// shared store only), and leaves at shutdown so the others take over at once.
async fn run_replicas(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    if !shared.store.storage().is_shared() {
        return;
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(crate::storage::lease::HEARTBEAT) => shared.refresh_replicas().await,
            changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { break },
        }
    }
    shared.member.leave().await;
}

async fn expire(shared: &Shared) {
    let options = shared.config().checks.options.clone();
    let now = shared.clock.now();
    let raw_before = now - chrono::Duration::from_std(options.raw_retention.get()).unwrap_or_default();
    let rollups_before = now - chrono::Duration::from_std(options.rollup_retention.get()).unwrap_or_default();
    let ids = match shared.store.all_ids().await {
        Ok(ids) => ids,
        Err(err) => {
            tracing::warn!(error = %err, "Cannot list checks to expire old results.");
            return;
        }
    };
    for id in ids {
        if let Err(err) = shared.store.expire(id, raw_before, rollups_before).await {
            tracing::warn!(error = %err, "Cannot delete old check results.");
            return;
        }
    }
}

/// The files `check_files:` matches, with their size and modification time.
fn files_signature(config: &Inputs) -> Vec<(std::path::PathBuf, u64, Option<std::time::SystemTime>)> {
    config
        .checks
        .matched_files()
        .into_iter()
        .map(|(_, path)| {
            let metadata = std::fs::metadata(&path).ok();
            let (len, modified) = metadata.map(|m| (m.len(), m.modified().ok())).unwrap_or((0, None));
            (path, len, modified)
        })
        .collect()
}

/// Re-reads `check_files:` when a matched file appears, changes or goes,
/// like Prometheus file_sd; a bad file is logged and the running checks stay.
async fn watch_files(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut seen = files_signature(&shared.config());
    loop {
        let every = shared.config().checks.options.files_refresh_interval.get();
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
        }
        let config = shared.config();
        if config.checks.files.is_empty() {
            continue;
        }
        let now = files_signature(&config);
        if now == seen {
            continue;
        }
        seen = now;
        match config.checks.checks(&config.modules) {
            Ok(checks) => match apply(&shared, checks).await {
                Ok(()) => tracing::info!("Check files changed; checks updated."),
                Err(err) => tracing::error!(error = %err, "Cannot apply changed check files."),
            },
            Err(problems) => {
                let err = Error::Config(problems);
                tracing::error!(error = %err, "Check files changed but are invalid; keeping the running checks.");
            }
        }
    }
}
