//! The central side of remote agents (`agents:`, `checkit agent`).
//!
//! - `GET /api/v1/agent/checks`: the checks of the caller's location, with
//!   the modules they use (as YAML), so an agent needs nothing but a URL, a
//!   token and its name.
//! - `POST /api/v1/agent/results`: a batch of results. Bearer token → agent
//!   (401 otherwise); a result for a check not assigned to the agent's
//!   location refuses the whole batch (403, the checks named). A batch is
//!   stored in one transaction keyed by `(agent, batch_id)`, so a batch sent
//!   twice is stored once; the answer (200) comes only after the commit.
//!
//! **Time.** An agent's clock is not trusted: each batch carries `sent_at`
//! (the agent's clock when sending), and every result's time is shifted by
//! `received_at − sent_at`, which is the clock difference plus the transfer
//! time. A result measured an hour ago during an outage keeps its age; no
//! result lands in the central future.
//!
//! **Quorum.** Each location has its own up/down machine (the check's
//! thresholds); the check is down when `down_when.failing` locations are
//! down, up when so many are up that the quorum cannot be reached, and keeps
//! its state otherwise: a location that says nothing (a silent agent) is
//! unknown, never failing. Late results enter history and roll-ups; a batch's
//! transitions are announced once, at the end, so a state already over when
//! its results arrive is never announced.
//!
//! **Fresh evidence.** A page needs `down_when.failing` locations down by
//! fresh results. A batch holding a result that waited in the agent's queue
//! longer than `QUEUED_LATE` is a backlog: the agent was out of contact,
//! and what it measured before that batch arrived (also the last failures
//! measured just before its link came back, which may reach us in a later,
//! young batch) is history for the quorum, never a page. Locations are also
//! compared by arrival, not by time: a location's newest result must be at
//! most two intervals (plus `FRESH_SLACK`) old to count.
//!
//! **Replicas.** On SQLite the receiving instance feeds a batch to the
//! machines at once. On PostgreSQL any replica stores a batch (idempotently,
//! as above) and feeds nothing: every replica follows the stored rows by
//! receive time (`follow_locations`), so each keeps every location's
//! machines, and only the replica that runs the check moves it by its quorum
//! and tells people. When each agent last called is stored too
//! (`agent_contacts`), so silence is judged alike everywhere.

use super::config::{Agent, Check};
use super::state::{Change, Machine, Run, State, Thresholds};
use super::store::{LocationResult, NewChange, NewResult};
use super::{Shared, Slot};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// The most results one batch may carry.
pub const MAX_BATCH: usize = 5_000;
/// The longest batch id.
const MAX_BATCH_ID: usize = 128;
/// The longest phase or reason name.
const MAX_NAME: usize = 64;
/// A result that waited longer than this in an agent's queue was measured
/// while the agent could not reach us (it pushes every second when it can):
/// its batch is a backlog, and what the agent measured before that batch
/// arrived may be its own network failing, not the target.
const QUEUED_LATE: chrono::Duration = chrono::Duration::seconds(5);
/// Added to two intervals: how old a location's newest result may be and
/// still count towards a page (its agent pushes every second, probes take time).
const FRESH_SLACK: chrono::Duration = chrono::Duration::seconds(5);

/// One check as an agent runs it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AssignedCheck {
    /// The check's name.
    pub name: String,
    /// The module's name (a key of [`Assignment::modules`]).
    pub module: String,
    /// What is probed.
    pub target: String,
    /// How often, seconds.
    pub interval_seconds: f64,
}

/// `GET /api/v1/agent/checks`: what an agent runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    /// The agent's name, as the central config knows it.
    pub agent: String,
    /// Its location.
    pub location: String,
    /// The checks assigned to the location.
    pub checks: Vec<AssignedCheck>,
    /// Every module those checks use, as YAML.
    pub modules: BTreeMap<String, String>,
}

/// One result in a pushed batch.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PushedResult {
    /// The check's name.
    pub check: String,
    /// When the probe started, by the agent's clock.
    pub at: DateTime<Utc>,
    /// How long it took.
    pub duration_seconds: f64,
    /// Whether it succeeded.
    pub success: bool,
    /// Failure phase (`probe_failure_info`).
    pub phase: Option<String>,
    /// Failure reason.
    pub reason: Option<String>,
}

/// `POST /api/v1/agent/results`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PushedBatch {
    /// Unique per batch and agent; a batch sent again carries the same id.
    pub batch_id: String,
    /// The agent's clock when it sent the batch.
    pub sent_at: DateTime<Utc>,
    /// The results, oldest first.
    pub results: Vec<PushedResult>,
}

/// What the central instance knows of one agent.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// Its last accepted request (or the start, before any).
    pub(crate) last_seen: DateTime<Utc>,
    /// Silent longer than `stale_after`.
    pub(crate) stale: bool,
    /// Whether the firing `AgentSilent` was committed (and not yet resolved).
    pub(crate) told: bool,
    /// When it went silent (the alert's start).
    pub(crate) silent_since: Option<DateTime<Utc>>,
}

/// Every agent's [`Seen`], by name, and when each location caught up.
#[derive(Debug, Default)]
pub(crate) struct Agents {
    seen: Mutex<HashMap<String, Seen>>,
    /// Per location: when its last batch holding a backlog arrived. What the
    /// location measured before then, it measured out of contact (see
    /// [`QUEUED_LATE`]).
    caught_up: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl Agents {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A copy of every agent's state.
    pub(crate) fn snapshot(&self) -> HashMap<String, Seen> {
        self.lock().clone()
    }

    /// Records a request of `name` at `now` (an older time changes nothing).
    fn seen(&self, name: &str, now: DateTime<Utc>) {
        let mut agents = self.lock();
        let entry = agents.entry(name.to_string()).or_insert(Seen {
            last_seen: now,
            stale: false,
            told: false,
            silent_since: None,
        });
        if now >= entry.last_seen {
            entry.last_seen = now;
            entry.stale = false;
        }
    }

    /// Notes `result` of `location`, received at `received_at`: a result
    /// that waited in its agent's queue longer than [`QUEUED_LATE`] makes
    /// its batch a backlog.
    fn note(&self, location: &str, received_at: DateTime<Utc>, result: &LocationResult) {
        let run = &result.run;
        let duration_us = run.duration_us.unwrap_or(0);
        let done = run.at + chrono::Duration::microseconds(i64::try_from(duration_us).unwrap_or(i64::MAX));
        if received_at - done <= QUEUED_LATE {
            return;
        }
        let mut caught_up = self.caught_up.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = caught_up.entry(location.to_string()).or_insert(received_at);
        *entry = (*entry).max(received_at);
    }

    /// When `location` last caught up with a backlog.
    fn caught_up_at(&self, location: &str) -> Option<DateTime<Utc>> {
        self.caught_up.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(location).copied()
    }
}

/// One location's view of a check.
#[derive(Debug, Clone, Default)]
pub struct LocationState {
    /// Up/down by the check's thresholds, from this location's results.
    pub machine: Machine,
    /// The newest result fed to the machine.
    pub last_at: Option<DateTime<Utc>>,
    /// Whether that result succeeded.
    pub last_success: Option<bool>,
    /// How long it took, seconds.
    pub last_duration_seconds: Option<f64>,
}

/// The quorum's verdict: `Some(false)` down, `Some(true)` up, `None` keep
/// the state (not enough locations know).
pub fn quorum(failing: u32, locations: u32, healths: impl IntoIterator<Item = State>) -> Option<bool> {
    let (mut down, mut up) = (0u32, 0u32);
    for health in healths {
        match health {
            State::Down => down = down.saturating_add(1),
            State::Up => up = up.saturating_add(1),
            _ => {}
        }
    }
    if failing > 0 && down >= failing {
        Some(false)
    } else if up > locations.saturating_sub(failing) {
        Some(true)
    } else {
        None
    }
}

/// The routes agents call; they authenticate by their own token, outside
/// the operator login.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/agent/checks", get(assignment))
        .route("/api/v1/agent/results", post(push))
        .with_state(shared)
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let mut response = (status, axum::Json(json!({"status": "error", "error": message.into()}))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"checkit\""));
    }
    response
}

fn authenticate(shared: &Shared, headers: &HeaderMap) -> Option<Agent> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string());
    let config = shared.config();
    presented.filter(|token| !token.is_empty()).and_then(|token| config.checks.agent_by_token(&token).cloned())
}

fn assigned(check: &Check, location: &str) -> bool {
    check.locations.iter().any(|at| at == location)
}

async fn assignment(AxumState(shared): AxumState<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(agent) = authenticate(&shared, &headers) else {
        return refuse(StatusCode::UNAUTHORIZED, "missing or invalid agent token");
    };
    let now = shared.clock.now();
    shared.agents.seen(&agent.name, now);
    if let Err(err) = shared.store.touch_agent(&agent.name, now).await {
        tracing::warn!(agent = %agent.name, error = %err, "Cannot record an agent's call.");
    }
    let config = shared.config();
    let mut checks = Vec::new();
    let mut modules = BTreeMap::new();
    for slot in shared.slots() {
        let check = slot.check();
        if !assigned(&check, &agent.location) || slot.is_paused() {
            continue;
        }
        modules.entry(check.module.clone()).or_insert_with(|| config.module_yaml(&check.module));
        checks.push(AssignedCheck {
            name: check.name.clone(),
            module: check.module.clone(),
            target: check.target.clone(),
            interval_seconds: check.interval.as_secs_f64(),
        });
    }
    axum::Json(Assignment { agent: agent.name, location: agent.location, checks, modules }).into_response()
}

fn validate(batch: &PushedBatch) -> Result<(), String> {
    if batch.batch_id.is_empty() || batch.batch_id.len() > MAX_BATCH_ID {
        return Err(format!("batch_id must be 1 to {MAX_BATCH_ID} characters"));
    }
    if batch.results.len() > MAX_BATCH {
        return Err(format!("at most {MAX_BATCH} results per batch"));
    }
    for (index, result) in batch.results.iter().enumerate() {
        if !result.duration_seconds.is_finite() || !(0.0..=86_400.0).contains(&result.duration_seconds) {
            return Err(format!("results[{index}].duration_seconds must be between 0 and 86400"));
        }
        for (field, value) in [("phase", &result.phase), ("reason", &result.reason)] {
            if value.as_ref().is_some_and(|value| value.len() > MAX_NAME) {
                return Err(format!("results[{index}].{field} must be at most {MAX_NAME} characters"));
            }
        }
    }
    Ok(())
}

async fn push(AxumState(shared): AxumState<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(agent) = authenticate(&shared, &headers) else {
        return refuse(StatusCode::UNAUTHORIZED, "missing or invalid agent token");
    };
    let batch: PushedBatch = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(err) => return refuse(StatusCode::BAD_REQUEST, format!("invalid batch: {err}")),
    };
    if let Err(message) = validate(&batch) {
        return refuse(StatusCode::BAD_REQUEST, message);
    }
    let mut slots: HashMap<String, Arc<Slot>> = HashMap::new();
    let mut foreign = Vec::new();
    for result in &batch.results {
        if slots.contains_key(&result.check) {
            continue;
        }
        match shared.slot(&result.check).filter(|slot| assigned(&slot.check(), &agent.location)) {
            Some(slot) => {
                slots.insert(result.check.clone(), slot);
            }
            None if !foreign.contains(&result.check) => foreign.push(result.check.clone()),
            None => {}
        }
    }
    if !foreign.is_empty() {
        tracing::warn!(agent = %agent.name, checks = ?foreign, "An agent pushed results for checks not assigned to it.");
        return refuse(
            StatusCode::FORBIDDEN,
            format!("checks not assigned to location {:?}: {}", agent.location, foreign.join(", ")),
        );
    }
    let received_at = shared.clock.now();
    let skew = received_at - batch.sent_at;
    let config = shared.config();
    let mut results = Vec::with_capacity(batch.results.len());
    for pushed in &batch.results {
        let Some(slot) = slots.get(&pushed.check) else { continue };
        let Some(at) = pushed.at.checked_add_signed(skew) else {
            return refuse(StatusCode::BAD_REQUEST, "a result's time is out of range");
        };
        let check = slot.check();
        let maintenance = shared.in_maintenance(&config, &check, at);
        results.push((
            Arc::clone(slot),
            LocationResult {
                location: agent.location.clone(),
                agent_at: pushed.at,
                run: NewResult {
                    check_id: slot.id,
                    at: at.min(received_at),
                    duration_us: Some((pushed.duration_seconds * 1e6) as u64),
                    success: pushed.success,
                    failure: (!pushed.success).then(|| {
                        (
                            pushed.phase.clone().unwrap_or_else(|| "unknown".into()),
                            pushed.reason.clone().unwrap_or_else(|| "unknown".into()),
                        )
                    }),
                    maintenance,
                },
            },
        ));
    }
    let rows = results.iter().map(|(_, result)| result.clone()).collect();
    let ingested = match shared.store.ingest(agent.name.clone(), batch.batch_id.clone(), received_at, rows).await {
        Ok(ingested) => ingested,
        Err(err) => {
            shared.metrics.store_errors.inc();
            tracing::warn!(agent = %agent.name, error = %err, "Cannot store an agent's batch.");
            return refuse(StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {err}"));
        }
    };
    shared.agents.seen(&agent.name, received_at);
    let outcome = if ingested.duplicate { "duplicate" } else { "stored" };
    shared
        .metrics
        .agent_batches
        .get_or_create(&super::metrics::AgentLabels { agent: agent.name.clone(), result: outcome })
        .inc();
    // On a shared store every replica follows the stored rows instead
    // (`follow_locations`), so a batch may reach any of them.
    if !ingested.duplicate && !shared.store.storage().is_shared() {
        for (_, result) in &results {
            shared.agents.note(&agent.location, received_at, result);
        }
        let results = results.into_iter().map(|(slot, result)| (slot, result, true)).collect();
        apply_results(&shared, results).await;
    }
    axum::Json(json!({"status": "ok", "duplicate": ingested.duplicate, "stored": ingested.stored})).into_response()
}

/// Feeds results (oldest first) to their locations' machines and, for those
/// flagged (the check is this replica's), moves each check by its quorum and
/// announces each check's final transition once.
async fn apply_results(shared: &Shared, results: Vec<(Arc<Slot>, LocationResult, bool)>) {
    let mut touched: Vec<Arc<Slot>> = Vec::new();
    for (slot, LocationResult { location, run: result, .. }, decide) in results {
        let check = slot.check();
        let thresholds = Thresholds {
            failures_before_down: check.failures_before_down,
            successes_before_up: check.successes_before_up,
        };
        let run = Run {
            at: result.at,
            success: result.success,
            failure: result.failure.clone(),
            maintenance: result.maintenance,
        };
        {
            let mut state = slot.lock();
            let entry = state.locations.entry(location).or_default();
            // A result older than one already applied (a retry after a
            // central restart, a row a replica reads again) is history only.
            if entry.last_at.is_some_and(|last| result.at <= last) {
                continue;
            }
            entry.machine.apply(&run, thresholds);
            entry.last_at = Some(result.at);
            entry.last_success = Some(result.success);
            let duration_seconds = result.duration_us.map(|us| us as f64 / 1e6);
            entry.last_duration_seconds = duration_seconds;
            if state.last.as_ref().is_none_or(|last| last.at <= result.at) {
                state.last = Some(super::Last {
                    at: result.at,
                    success: result.success,
                    duration_seconds,
                    failure: result.failure.clone(),
                    maintenance: result.maintenance,
                    registry: Arc::new(crate::probe::metrics::Registry::new()),
                });
            }
        }
        if !decide {
            continue;
        }
        shared
            .metrics
            .runs
            .get_or_create(&super::metrics::ResultLabels { result: if result.success { "success" } else { "failure" } })
            .inc();
        if !touched.iter().any(|seen| Arc::ptr_eq(seen, &slot)) {
            touched.push(Arc::clone(&slot));
        }
        // Evaluated after every result so a down-then-up inside one batch is
        // an incident in history (and never announced).
        if let Some(change) = evaluate(shared, &slot, result.at).await {
            slot.lock().pending = Some(change);
        }
    }
    let now = shared.clock.now();
    for slot in touched {
        let check = slot.check();
        let (change, maintenance) = {
            let mut state = slot.lock();
            (state.pending.take(), state.last.as_ref().is_some_and(|last| last.maintenance))
        };
        // Results queued through an outage arrive late: an outage they show
        // may be over already, or be the agents' own links failing. A down
        // is told only once `down_when` locations show it by fresh results
        // (the resolution of a told outage goes out at once); until then
        // its incident stays untold, and the batch that completes the fresh
        // quorum tells it.
        if !matches!(change, Some(Change::Recovered(_))) && fresh_down(shared, &slot, &check, now) < check.down_when {
            continue;
        }
        super::announce(shared, &slot, &check, change, maintenance).await;
    }
}

/// How many of `check`'s locations are down by a fresh result: measured
/// after their agent caught up with its queue, and at most two intervals
/// (plus [`FRESH_SLACK`]) before `now`.
fn fresh_down(shared: &Shared, slot: &Slot, check: &Check, now: DateTime<Utc>) -> u32 {
    let window = chrono::Duration::from_std(check.interval.saturating_mul(2))
        .unwrap_or(chrono::Duration::MAX)
        .checked_add(&FRESH_SLACK)
        .unwrap_or(chrono::Duration::MAX);
    let caught_up: Vec<Option<DateTime<Utc>>> =
        check.locations.iter().map(|location| shared.agents.caught_up_at(location)).collect();
    let state = slot.lock();
    let fresh = check.locations.iter().zip(caught_up).filter(|(location, caught_up)| {
        state.locations.get(*location).is_some_and(|entry| {
            entry.machine.health == State::Down
                && entry
                    .last_at
                    .is_some_and(|at| caught_up.is_none_or(|caught_up| at >= caught_up) && now - at <= window)
        })
    });
    u32::try_from(fresh.count()).unwrap_or(u32::MAX)
}

/// Applies the quorum of `slot`'s locations to the check's own machine at
/// `at`, storing a transition.
pub(crate) async fn evaluate(shared: &Shared, slot: &Slot, at: DateTime<Utc>) -> Option<Change> {
    let check = slot.check();
    let count = u32::try_from(check.locations.len()).unwrap_or(u32::MAX);
    let change = {
        let mut state = slot.lock();
        let healths: Vec<State> = check
            .locations
            .iter()
            .map(|location| state.locations.get(location).map_or(State::Unknown, |entry| entry.machine.health))
            .collect();
        let verdict = quorum(check.down_when, count, healths)?;
        let failure = if verdict {
            None
        } else {
            let reason =
                check.locations.iter().filter_map(|location| state.locations.get(location)).find_map(|entry| {
                    entry.machine.incident.as_ref().map(|incident| (incident.phase.clone(), incident.reason.clone()))
                });
            Some(reason.unwrap_or_else(|| ("quorum".into(), "down".into())))
        };
        let run = Run { at, success: verdict, failure, maintenance: false };
        state.machine.apply(&run, Thresholds { failures_before_down: 1, successes_before_up: 1 })?
    };
    let new_change = match &change {
        Change::FirstUp => NewChange::Up { since: at },
        Change::Down(incident) => NewChange::Down(incident.clone()),
        Change::Recovered(incident) => match (incident.id, incident.ended_at) {
            (Some(id), Some(ended_at)) => NewChange::Recovered { id, ended_at },
            _ => NewChange::Up { since: at },
        },
    };
    let stored = shared.store.record_change(slot.id, new_change).await;
    super::remember_incident(shared, slot, &check.name, stored);
    match &change {
        Change::Down(_) => tracing::info!(check = %check.name, "Check is down at its quorum of locations."),
        Change::Recovered(_) => tracing::info!(check = %check.name, "Check is up again at its quorum of locations."),
        Change::FirstUp => {}
    }
    Some(change)
}

/// How far back a replica reads rows again: a batch committed this much
/// after its receive time (a slow transaction, replicas' clocks apart) is
/// still followed; an older one is history only.
const FOLLOW_MARGIN: chrono::Duration = chrono::Duration::seconds(10);
/// What a replica replays when it starts: its locations' machines rebuilt.
const FOLLOW_REPLAY: chrono::Duration = chrono::Duration::minutes(10);
/// The most rows one follow step reads.
const FOLLOW_LIMIT: usize = 100_000;

/// On a shared store, every second: feeds the agents' results stored by any
/// replica to this replica's location machines (so each replica shows every
/// location), and moves by its quorum each check this replica runs
/// ([`Shared::runs_here`]); a check taken over is first read back from the
/// store. Rows are read again for [`FOLLOW_MARGIN`], skipped once applied.
pub(crate) async fn follow_locations(shared: Arc<Shared>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    if !shared.store.storage().is_shared() {
        return;
    }
    let started = shared.clock.now();
    let mut cursor = started - FOLLOW_REPLAY;
    // Whether each located check was this replica's at the last step.
    let mut owned: HashMap<i64, bool> = HashMap::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(crate::storage::lease::HEARTBEAT) => {}
            changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
        }
        let mut slots: HashMap<i64, (Arc<Slot>, bool)> = HashMap::new();
        for slot in shared.slots() {
            let check = slot.check();
            if check.locations.is_empty() {
                continue;
            }
            let here = shared.runs_here(&check.name);
            if owned.insert(slot.id, here) == Some(false) && here {
                shared.take_over(&slot).await;
            }
            slots.insert(slot.id, (slot, here));
        }
        let rows = match shared.store.location_results_since(cursor - FOLLOW_MARGIN, FOLLOW_LIMIT).await {
            Ok(rows) => rows,
            Err(err) => {
                tracing::warn!(error = %err, "Cannot read agents' results from the store.");
                continue;
            }
        };
        if rows.len() >= FOLLOW_LIMIT {
            tracing::warn!(rows = rows.len(), "Agents' results arrive faster than replicas follow them.");
        }
        // In time order across locations, as the quorum saw them happen.
        let mut results = Vec::with_capacity(rows.len());
        for row in rows {
            cursor = cursor.max(row.received_at);
            let Some((slot, here)) = slots.get(&row.result.run.check_id) else { continue };
            shared.agents.note(&row.result.location, row.received_at, &row.result);
            // Rows replayed at start are state, not news: the check's own
            // state was read from the store.
            let decide = *here && row.received_at >= started;
            results.push((Arc::clone(slot), row.result, decide));
        }
        apply_results(&shared, results).await;
    }
}

/// Every few seconds: an agent silent longer than its `stale_after` becomes
/// an `AgentSilent` alert and its locations count as unknown; its next
/// request resolves the alert.
pub(crate) async fn watch_agents(shared: Arc<Shared>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let started = shared.clock.now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
        }
        let config = shared.config();
        // Agents may call any replica: the store knows when each last did.
        if shared.store.storage().is_shared() {
            match shared.store.agent_contacts().await {
                Ok(contacts) => {
                    for (name, at) in contacts {
                        shared.agents.seen(&name, at);
                    }
                }
                Err(err) => tracing::warn!(error = %err, "Cannot read when agents last called."),
            }
        }
        let now = shared.clock.now();
        for agent in &config.checks.agents {
            let stale_after = chrono::Duration::from_std(agent.stale_after.get()).unwrap_or_default();
            let (went_stale, tell) = {
                let mut agents = shared.agents.lock();
                let seen = agents.entry(agent.name.clone()).or_insert(Seen {
                    last_seen: started,
                    stale: false,
                    told: false,
                    silent_since: None,
                });
                let went_stale = !seen.stale && now - seen.last_seen > stale_after;
                if went_stale {
                    seen.stale = true;
                    seen.silent_since = Some(seen.last_seen);
                }
                let tell = match (seen.stale, seen.told) {
                    (true, false) => Some((seen.silent_since.unwrap_or(seen.last_seen), None)),
                    (false, true) => Some((seen.silent_since.unwrap_or(seen.last_seen), Some(seen.last_seen))),
                    _ => None,
                };
                (went_stale, tell)
            };
            if went_stale {
                tracing::warn!(agent = %agent.name, location = %agent.location, "An agent stopped reporting; its location counts as unknown.");
                for slot in shared.slots() {
                    if assigned(&slot.check(), &agent.location) {
                        slot.lock().locations.remove(&agent.location);
                    }
                }
            }
            let Some((since, ended)) = tell else { continue };
            // One replica tells each agent's silence.
            if !shared.runs_here(&format!("agent {}", agent.name)) {
                continue;
            }
            let Some(pipeline) = &shared.pipeline else {
                shared.agents.lock().entry(agent.name.clone()).and_modify(|seen| seen.told = ended.is_none());
                continue;
            };
            let notification = super::notify::agent_silent(agent, since, ended, now);
            match super::notify::submit(pipeline, notification).await {
                Ok(()) => {
                    let mut agents = shared.agents.lock();
                    if let Some(seen) = agents.get_mut(&agent.name) {
                        seen.told = ended.is_none();
                        if ended.is_some() {
                            seen.silent_since = None;
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(agent = %agent.name, error = %err, "Cannot hand an agent alert to the bridge; retrying.")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_of_three_down_is_down_and_unknown_never_counts_as_failing() {
        use State::{Down, Unknown, Up};
        assert_eq!(quorum(2, 3, [Down, Down, Up]), Some(false));
        assert_eq!(quorum(2, 3, [Down, Up, Up]), Some(true));
        assert_eq!(quorum(2, 3, [Down, Unknown, Up]), None, "a silent location keeps the state");
        assert_eq!(quorum(2, 3, [Down, Unknown, Unknown]), None);
        assert_eq!(quorum(2, 3, [Up, Up, Unknown]), Some(true));
        assert_eq!(quorum(1, 1, [Down]), Some(false));
        assert_eq!(quorum(3, 3, [Down, Down, Up]), Some(true));
    }
}
