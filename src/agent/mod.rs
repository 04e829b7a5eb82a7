//! `checkit agent`: runs the checks of one location for a central checkit
//! and pushes their results to it.
//!
//! - `queue`: the durable SQLite queue (and the last assignment fetched).
//!
//! The agent only calls out: `GET /api/v1/agent/checks` every
//! `--refresh-interval` (the last assignment is kept in the queue file, so a
//! restart while the central instance is unreachable keeps measuring), and
//! `POST /api/v1/agent/results` with batches of queued results, oldest first.
//! Checks run at the same slots as scheduled checks (`checks::schedule`:
//! `k × interval + offset(name)`), through `probe::run` with the deadline a
//! scrape every `interval` would get. Every result is committed to the queue
//! before it can be sent, and deleted only after the central instance
//! answered 200 for the batch that carried it (the central side stores a
//! batch id once, so a resend after a lost answer is harmless).
//!
//! This module is the agent's composition root: it alone spawns the agent's
//! long-lived tasks (one per check, the pusher, the refresher, `/metrics`).

pub mod queue;

use crate::bridge::clock::Clock;
use crate::checks::agents::{AssignedCheck, Assignment, PushedBatch, PushedResult};
use crate::checks::schedule::{next_slot, offset};
use crate::config::types::GoDuration;
use crate::probe::policy::TargetPolicy;
use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use queue::{Dropped, Queue, Queued};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

/// `checkit agent` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The central checkit's URL (`https://checkit.example.com/`).
    #[arg(long = "central.url", value_name = "URL")]
    pub central_url: url::Url,
    /// A file holding this agent's bearer token (one of the central `agents:`).
    #[arg(long = "token.file", value_name = "FILE")]
    pub token_file: PathBuf,
    /// The location this agent measures from; must match the central config.
    #[arg(long = "location")]
    pub location: String,
    /// The SQLite queue file.
    #[arg(long = "queue.path", default_value = "checkit-agent.db")]
    pub queue_path: PathBuf,
    /// Results older than this are dropped from the queue (oldest first).
    #[arg(long = "queue.max-age", default_value = "168h", value_parser = GoDuration::parse)]
    pub max_queue_age: GoDuration,
    /// At most this many results wait in the queue; the oldest go first.
    #[arg(long = "queue.max-size", default_value_t = 5_000_000)]
    pub max_queue_size: u64,
    /// Results per batch.
    #[arg(long = "push.batch-size", default_value_t = 1_000)]
    pub batch_size: usize,
    /// How often the assignment is fetched again.
    #[arg(long = "refresh-interval", default_value = "1m", value_parser = GoDuration::parse)]
    pub refresh_interval: GoDuration,
    /// Probes running at once.
    #[arg(long = "max-concurrent", default_value_t = 64)]
    pub max_concurrent: usize,
    /// Serve the agent's `/metrics` on this address (none by default).
    #[arg(long = "metrics.listen-address")]
    pub metrics_listen_address: Option<std::net::SocketAddr>,
    /// Test only: seconds added to the agent's clock, to exercise the central
    /// instance's skew correction. Never set it in production.
    #[arg(long = "test.clock-offset-seconds", hide = true, default_value_t = 0, allow_negative_numbers = true)]
    pub test_clock_offset_seconds: i64,
}

/// The system clock shifted by a fixed offset (tests of clock skew).
#[derive(Debug)]
struct OffsetClock(chrono::Duration);

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.0
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> crate::bridge::clock::Sleep {
        let wait = (deadline - self.now()).to_std().unwrap_or_default();
        Box::pin(tokio::time::sleep(wait))
    }
}

/// `{reason="age|size"}`
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The agent's metrics (`checkit_agent_*`).
#[derive(Clone, Default)]
struct Metrics {
    queued: Gauge,
    dropped: Family<ReasonLabels, Counter>,
    runs: Counter,
    pushed: Counter,
    push_errors: Counter,
    assigned: Gauge,
    /// When drops were last logged, and those counted since.
    unlogged: Arc<std::sync::Mutex<(Option<std::time::Instant>, Dropped)>>,
}

/// Every metric family name of the agent (as scraped).
pub const METRIC_NAMES: &[&str] = &[
    "checkit_agent_queue_results",
    "checkit_agent_queue_dropped_total",
    "checkit_agent_runs_total",
    "checkit_agent_pushed_results_total",
    "checkit_agent_push_errors_total",
    "checkit_agent_assigned_checks",
];

impl Metrics {
    fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics::default();
        for reason in ["age", "size", "refused"] {
            let _ = metrics.dropped.get_or_create(&ReasonLabels { reason });
        }
        registry.register("checkit_agent_queue_results", "Results waiting in the queue", metrics.queued.clone());
        registry.register(
            "checkit_agent_queue_dropped",
            "Results dropped from the queue, by reason (age, size; refused: the check is no longer assigned here)",
            metrics.dropped.clone(),
        );
        registry.register("checkit_agent_runs", "Probes run", metrics.runs.clone());
        registry.register(
            "checkit_agent_pushed_results",
            "Results the central instance acknowledged",
            metrics.pushed.clone(),
        );
        registry.register("checkit_agent_push_errors", "Failed pushes (retried)", metrics.push_errors.clone());
        registry.register("checkit_agent_assigned_checks", "Checks assigned to this agent", metrics.assigned.clone());
        metrics
    }

    /// Counts drops at once and logs them at most every 10 s (a full queue
    /// drops one result per new one), with the count since the last line.
    fn dropped(&self, dropped: Dropped) {
        for (reason, count) in [("age", dropped.age), ("size", dropped.size)] {
            self.dropped.get_or_create(&ReasonLabels { reason }).inc_by(count);
        }
        let mut unlogged = self.unlogged.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (_, pending) = &mut *unlogged;
        pending.age += dropped.age;
        pending.size += dropped.size;
        let due = unlogged.0.is_none_or(|last| last.elapsed() >= Duration::from_secs(10));
        if !due || unlogged.1 == Dropped::default() {
            return;
        }
        for (reason, count) in [("age", unlogged.1.age), ("size", unlogged.1.size)] {
            if count > 0 {
                tracing::warn!(reason, count, "Queue bound reached; dropped the oldest results.");
            }
        }
        *unlogged = (Some(std::time::Instant::now()), Dropped::default());
    }
}

/// What every task of the agent shares.
struct Agent {
    args: Args,
    http: reqwest::Client,
    queue: Queue,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    probes: Arc<Semaphore>,
    /// What the agent's probes share across runs (rdap's client and cache).
    probe_env: crate::probe::Env,
}

/// The assignment's checks running now, with the config their modules came from.
struct Running {
    tasks: HashMap<String, (AssignedCheck, watch::Sender<bool>, JoinHandle<()>)>,
}

/// Runs the agent until SIGINT/SIGTERM.
pub async fn run(args: Args) -> ExitCode {
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "checkit agent stopped");
            ExitCode::FAILURE
        }
    }
}

fn read_token(args: &Args) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(&args.token_file)
        .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", args.token_file.display()))?;
    Ok(text.trim().to_string())
}

async fn serve(args: Args) -> anyhow::Result<()> {
    if args.batch_size == 0 || args.batch_size > crate::checks::agents::MAX_BATCH {
        anyhow::bail!("--push.batch-size must be between 1 and {}", crate::checks::agents::MAX_BATCH);
    }
    if args.max_concurrent == 0 || args.max_queue_size == 0 {
        anyhow::bail!("--max-concurrent and --queue.max-size must be at least 1");
    }
    read_token(&args)?;
    let queue = Queue::open(&args.queue_path).await?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let clock: Arc<dyn Clock> = Arc::new(OffsetClock(chrono::Duration::seconds(args.test_clock_offset_seconds)));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let agent = Arc::new(Agent {
        probes: Arc::new(Semaphore::new(args.max_concurrent)),
        probe_env: crate::probe::Env::default(),
        args,
        http,
        queue,
        clock,
        metrics,
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(push_loop(Arc::clone(&agent), shutdown_rx.clone()))];
    if let Some(address) = agent.args.metrics_listen_address {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let registry = Arc::new(registry);
        let router = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let registry = Arc::clone(&registry);
                async move {
                    let mut body = String::new();
                    let _ = prometheus_client::encoding::text::encode(&mut body, &registry);
                    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
                }
            }),
        );
        let mut stop = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                })
                .await;
        }));
    }
    tasks.push(tokio::spawn(schedule_loop(Arc::clone(&agent), shutdown_rx)));
    tracing::info!(central = %agent.args.central_url, location = %agent.args.location, "Agent started.");
    shutdown_signal().await;
    tracing::info!("Agent stopping.");
    let _ = shutdown.send(true);
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn endpoint(agent: &Agent, path: &str) -> anyhow::Result<url::Url> {
    let base = agent.args.central_url.as_str().trim_end_matches('/');
    Ok(url::Url::parse(&format!("{base}{path}"))?)
}

/// Fetches the assignment from the central instance.
async fn fetch(agent: &Agent) -> anyhow::Result<Assignment> {
    let token = read_token(&agent.args)?;
    let response = agent.http.get(endpoint(agent, "/api/v1/agent/checks")?).bearer_auth(token).send().await?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!("central answered {status}: {}", body.trim());
    }
    let assignment: Assignment = response.json().await?;
    if assignment.location != agent.args.location {
        anyhow::bail!(
            "the central instance knows this token's agent at location {:?}, not {:?}",
            assignment.location,
            agent.args.location
        );
    }
    Ok(assignment)
}

/// Keeps the running checks equal to the latest assignment: the saved one
/// at start, then every fetched one (saved before it is applied).
async fn schedule_loop(agent: Arc<Agent>, mut shutdown: watch::Receiver<bool>) {
    let mut running = Running { tasks: HashMap::new() };
    match agent.queue.meta("assignment").await {
        Ok(Some(text)) => match serde_json::from_str::<Assignment>(&text) {
            Ok(saved) => {
                tracing::info!(checks = saved.checks.len(), "Running the last assignment saved.");
                apply(&agent, &mut running, &saved);
            }
            Err(err) => tracing::warn!(error = %err, "Cannot read the saved assignment."),
        },
        Ok(None) => {}
        Err(err) => tracing::warn!(error = %err, "Cannot read the saved assignment."),
    }
    loop {
        let wait = match fetch(&agent).await {
            Ok(assignment) => {
                match serde_json::to_string(&assignment) {
                    Ok(text) => {
                        if let Err(err) = agent.queue.set_meta("assignment", text).await {
                            tracing::warn!(error = %err, "Cannot save the assignment.");
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "Cannot save the assignment."),
                }
                apply(&agent, &mut running, &assignment);
                agent.args.refresh_interval.get()
            }
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "Cannot fetch the assignment; keeping the running checks.");
                agent.args.refresh_interval.get().min(Duration::from_secs(5))
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
    }
    for (_, (_, stop, task)) in running.tasks.drain() {
        let _ = stop.send(true);
        let _ = task.await;
    }
}

/// Starts, restarts and stops check tasks so that exactly `assignment` runs.
fn apply(agent: &Arc<Agent>, running: &mut Running, assignment: &Assignment) {
    let modules = match crate::probe::modules_from_texts(&assignment.modules) {
        Ok(modules) => Arc::new(modules),
        Err(err) => {
            tracing::error!(error = %err, "The assignment's modules are invalid; keeping the running checks.");
            return;
        }
    };
    let wanted: HashMap<&str, &AssignedCheck> =
        assignment.checks.iter().map(|check| (check.name.as_str(), check)).collect();
    running.tasks.retain(|name, (check, stop, _)| {
        // Restarted with the new modules too: a module may have changed.
        let keep = wanted.get(name.as_str()).is_some_and(|wanted| *wanted == check);
        if !keep {
            let _ = stop.send(true);
        }
        keep
    });
    for check in &assignment.checks {
        if running.tasks.contains_key(&check.name) {
            continue;
        }
        if !(1.0..=7.0 * 86_400.0).contains(&check.interval_seconds) || !modules.contains_key(&check.module) {
            tracing::warn!(check = %check.name, "Skipping an assigned check with an unknown module or a bad interval.");
            continue;
        }
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run_check(Arc::clone(agent), Arc::clone(&modules), check.clone(), stop_rx));
        running.tasks.insert(check.name.clone(), (check.clone(), stop, task));
    }
    agent.metrics.assigned.set(i64::try_from(running.tasks.len()).unwrap_or(i64::MAX));
}

/// Runs one check at its slots, queueing every result.
async fn run_check(
    agent: Arc<Agent>,
    modules: Arc<crate::probe::Modules>,
    check: AssignedCheck,
    mut stop: watch::Receiver<bool>,
) {
    let interval = Duration::from_secs_f64(check.interval_seconds);
    let slot_offset = offset(&check.name, interval);
    let Some(module) = modules.get(&check.module) else { return };
    let timeout = crate::probe::effective_timeout(module.timeout.get(), Some(check.interval_seconds), 0.5);
    let mut not_before = agent.clock.now();
    loop {
        let planned = next_slot(not_before, interval, slot_offset);
        tokio::select! {
            () = agent.clock.sleep_until(planned) => {}
            _ = stop.changed() => return,
        }
        let permit = tokio::select! {
            permit = Arc::clone(&agent.probes).acquire_owned() => permit,
            _ = stop.changed() => return,
        };
        let started = agent.clock.now();
        let outcome =
            crate::probe::run(module, &check.target, None, timeout, &TargetPolicy::allow_all(), &agent.probe_env).await;
        drop(permit);
        agent.metrics.runs.inc();
        let result = Queued {
            seq: 0,
            check: check.name.clone(),
            at: started,
            duration_us: u64::try_from(outcome.duration.as_micros()).unwrap_or(u64::MAX),
            success: outcome.success(),
            failure: outcome
                .error
                .as_ref()
                .map(|err| (err.phase.as_str().to_string(), err.reason.as_str().to_string())),
        };
        match agent.queue.push(result, agent.args.max_queue_size).await {
            Ok(dropped) => agent.metrics.dropped(dropped),
            Err(err) => tracing::error!(check = %check.name, error = %err, "Cannot queue a result; it is lost."),
        }
        not_before = std::cmp::max(planned + chrono::Duration::milliseconds(1), agent.clock.now());
    }
}

/// Sends queued results, oldest first, until the queue is empty; then waits
/// for new ones (at most a second, so results leave in batches).
async fn push_loop(agent: Arc<Agent>, mut shutdown: watch::Receiver<bool>) {
    let queue_id = loop {
        match agent.queue.id().await {
            Ok(id) => break id,
            Err(err) => {
                tracing::error!(error = %err, "Cannot read the queue id; retrying.");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    };
    let mut backoff = Duration::from_millis(500);
    let mut next_expiry = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_expiry {
            next_expiry = tokio::time::Instant::now() + Duration::from_secs(10);
            let max_age = chrono::Duration::from_std(agent.args.max_queue_age.get()).unwrap_or(chrono::Duration::MAX);
            match agent.queue.expire(agent.clock.now().checked_sub_signed(max_age).unwrap_or_default()).await {
                Ok(dropped) => agent.metrics.dropped(dropped),
                Err(err) => tracing::warn!(error = %err, "Cannot expire old results."),
            }
        }
        let wait = match push_once(&agent, &queue_id).await {
            Ok(sent) if sent >= agent.args.batch_size => {
                backoff = Duration::from_millis(500);
                continue;
            }
            Ok(_) => {
                backoff = Duration::from_millis(500);
                Duration::from_secs(1)
            }
            Err(err) => {
                agent.metrics.push_errors.inc();
                tracing::warn!(error = %format!("{err:#}"), retry_in = ?backoff, "Cannot push results; they stay queued.");
                let wait = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                wait
            }
        };
        if let Ok(length) = agent.queue.count().await {
            agent.metrics.queued.set(i64::try_from(length).unwrap_or(i64::MAX));
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Sends the oldest batch; returns how many results the central instance acknowledged.
async fn push_once(agent: &Agent, queue_id: &str) -> anyhow::Result<usize> {
    let rows = agent.queue.oldest(agent.args.batch_size).await?;
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else { return Ok(0) };
    // The id names the exact rows: a resend of the same rows repeats it.
    let batch = PushedBatch {
        batch_id: format!("{queue_id}-{}-{}", first.seq, last.seq),
        sent_at: agent.clock.now(),
        results: rows
            .iter()
            .map(|row| PushedResult {
                check: row.check.clone(),
                at: row.at,
                duration_seconds: row.duration_us as f64 / 1e6,
                success: row.success,
                phase: row.failure.as_ref().map(|(phase, _)| phase.clone()),
                reason: row.failure.as_ref().map(|(_, reason)| reason.clone()),
            })
            .collect(),
    };
    let last_seq = last.seq;
    let token = read_token(&agent.args)?;
    let response =
        agent.http.post(endpoint(agent, "/api/v1/agent/results")?).bearer_auth(token).json(&batch).send().await?;
    let status = response.status();
    if status == reqwest::StatusCode::FORBIDDEN {
        // Checks taken from this location while their results waited:
        // refused for good, so they would block the queue forever.
        let body = response.text().await.unwrap_or_default();
        let assignment = fetch(agent).await?;
        let names: Vec<String> = assignment.checks.into_iter().map(|check| check.name).collect();
        let dropped = agent.queue.drop_unassigned(names).await?;
        agent.metrics.dropped.get_or_create(&ReasonLabels { reason: "refused" }).inc_by(dropped);
        tracing::warn!(count = dropped, refusal = %body.trim(), "Dropped queued results of checks no longer assigned here.");
        return Ok(0);
    }
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        anyhow::bail!("central answered {status}: {}", body.trim());
    }
    agent.queue.acknowledge(last_seq).await?;
    agent.metrics.pushed.inc_by(rows.len() as u64);
    Ok(rows.len())
}
