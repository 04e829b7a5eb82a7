//! The composition root: builds every part from the frozen config, owns
//! reload (SIGHUP, `POST /-/reload`, auto-reload) and every long-lived task
//! (listeners, reloaders, the bridge's workers) under one shutdown signal.
//!
//! **Architecture invariant:** only this module spawns long-lived tasks; the
//! parts hand theirs over ([`crate::bridge::Bridge::take_tasks`]).

use crate::bridge::Bridge;
use crate::config::live::Live;
use crate::http::{self, exporter::Exporter, webconfig::Web};
use crate::settings::Config;
use crate::telemetry::Telemetry;
use axum::Router;
use futures::FutureExt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where the config comes from, for reloads.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A file on disk.
    File(PathBuf),
    /// The embedded default.
    Embedded,
}

impl ConfigSource {
    /// Loads the config.
    pub fn load(&self) -> Result<Config, crate::config::Error> {
        match self {
            ConfigSource::File(path) => Config::load(path),
            ConfigSource::Embedded => Config::parse(crate::settings::DEFAULT_CONFIG),
        }
    }
}

/// Options from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds subtracted from the scrape timeout header.
    pub timeout_offset: f64,
    /// Results kept for `/logs`.
    pub history_limit: usize,
    /// Prefix under which every route is served (`/` for none).
    pub route_prefix: String,
}

impl Default for Options {
    fn default() -> Self {
        Options { timeout_offset: 0.5, history_limit: 100, route_prefix: "/".into() }
    }
}

/// What `serve` listens on and watches, beyond [`Options`].
#[derive(Debug, Clone, Default)]
pub struct Serving {
    /// `--web.listen-address` values (`:port`, `host:port`, `[v6]:port`).
    pub listen_addresses: Vec<String>,
    /// `--config.enable-auto-reload`'s interval, when enabled.
    pub auto_reload: Option<Duration>,
    /// The serving threads beside the main runtime (see [`http::threads`]).
    pub threads: http::threads::Threads,
}

/// The running process: every part, built from one config.
pub struct App {
    config: Arc<Live<Config>>,
    source: ConfigSource,
    options: Options,
    web: Web,
    /// Exporter metrics (the bridge registers into the same registry).
    pub telemetry: Telemetry,
    exporter: Arc<Exporter>,
    bridge: Option<Arc<Bridge>>,
    checks: Option<Arc<crate::checks::Checks>>,
    reports: Option<crate::reports::Reports>,
    heartbeats: Option<Arc<crate::heartbeat::Heartbeats>>,
    reload_lock: tokio::sync::Mutex<()>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// What the web UI shows and operates.
    ui: crate::web::Services,
}

impl App {
    /// Builds every part around a loaded config and starts the bridge's
    /// workers when a bridge is configured.
    pub async fn new(config: Config, source: ConfigSource, options: Options, web: Web) -> anyhow::Result<Arc<App>> {
        Self::new_with_clock(config, source, options, web, Arc::new(crate::bridge::clock::SystemClock)).await
    }

    /// Like [`App::new`], with the bridge and the scheduled checks reading
    /// time from `clock` (tests pass a [`crate::bridge::clock::TestClock`]).
    pub async fn new_with_clock(
        config: Config,
        source: ConfigSource,
        options: Options,
        web: Web,
        clock: Arc<dyn crate::bridge::clock::Clock>,
    ) -> anyhow::Result<Arc<App>> {
        let telemetry = Telemetry::new();
        telemetry.reloaded(true);
        // Take the registry out so no lock is held while the stores open.
        let poisoned = || anyhow::anyhow!("metrics registry poisoned");
        let mut registry = std::mem::take(&mut *telemetry.registry.lock().map_err(|_| poisoned())?);
        // Every part whose store settings are equal shares one opened store.
        let mut stores = crate::storage::Opener::default();
        warn_about_legacy_files(&config);
        let bridge = match &config.bridge {
            Some(bridge_config) => {
                let opened = stores.open(config.storage_of(bridge_config.store.as_ref())).await;
                Some(match opened {
                    Ok(storage) => {
                        Bridge::start_on(bridge_config.clone(), &mut registry, Arc::clone(&clock), storage).await
                    }
                    Err(err) => Err(crate::bridge::Error::Store(err)),
                })
            }
            None => None,
        };
        // What probes share (rdap's client, bootstrap and cache) lives as long as the
        // app, across reloads; the exporter and the checks probe with the same one.
        let probe_env = Arc::new(crate::probe::Env::default());
        // Heartbeats are checks without a prober: their history is the checks'.
        let checks = match &bridge {
            Some(Err(_)) => None,
            _ if !config.checks.is_configured() && config.heartbeats.is_none() => None,
            bridge => {
                let pipeline = bridge.as_ref().and_then(|bridge| bridge.as_ref().ok()).map(Bridge::submitter);
                let shared_config = config.for_checks();
                // With heartbeats alone, their history lives where they keep their pings.
                let store = match (&config.checks.options.store, &config.heartbeats) {
                    (None, Some(heartbeats)) if !config.checks.is_configured() => heartbeats.store.as_ref(),
                    (store, _) => store.as_ref(),
                };
                Some(match stores.open(config.storage_of(store)).await {
                    Ok(storage) => {
                        crate::checks::Checks::start(
                            shared_config,
                            &mut registry,
                            Arc::clone(&clock),
                            pipeline,
                            options.timeout_offset,
                            storage,
                            Arc::clone(&probe_env),
                        )
                        .await
                    }
                    Err(err) => Err(crate::checks::Error::Store(err)),
                })
            }
        };
        *telemetry.registry.lock().map_err(|_| poisoned())? = registry;
        let bridge = bridge.transpose()?.map(Arc::new);
        let checks = checks.transpose()?.map(Arc::new);
        let reports = bridge.as_ref().map(|bridge| crate::reports::Reports::new(bridge.report_desk(), checks.clone()));
        let heartbeats = match &config.heartbeats {
            Some(heartbeat_config) => {
                use crate::heartbeat::notify::Notifier;
                let notifier = bridge.as_ref().map_or(Notifier::Log, |bridge| Notifier::Bridge(bridge.submitter()));
                let storage = stores.open(config.storage_of(heartbeat_config.store.as_ref())).await?;
                let mut registry = std::mem::take(&mut *telemetry.registry.lock().map_err(|_| poisoned())?);
                let started = crate::heartbeat::Heartbeats::start_on(
                    heartbeat_config.clone(),
                    &mut registry,
                    notifier,
                    Arc::clone(&clock),
                    storage,
                )
                .await;
                *telemetry.registry.lock().map_err(|_| poisoned())? = registry;
                let started = started?;
                if let Some(checks) = &checks {
                    started.attach(Arc::clone(checks)).await?;
                }
                Some(Arc::new(started))
            }
            None => None,
        };
        let web_settings = Arc::new(Live::new(config.for_web()));
        let config = Arc::new(Live::new(config));
        let app = Arc::new_cyclic(|app: &Weak<App>| {
            let app = app.clone();
            let reload: http::exporter::Reload = Arc::new(move || {
                let app = app.clone();
                async move {
                    match app.upgrade() {
                        Some(app) => app.reload().await,
                        None => Err("shutting down".into()),
                    }
                }
                .boxed()
            });
            let exporter = Exporter::new(
                Arc::clone(&config),
                telemetry.clone(),
                probe_env,
                options.timeout_offset,
                options.history_limit,
                Arc::clone(&reload),
                bridge.is_some(),
            );
            let ui = crate::web::Services {
                bridge: bridge.clone(),
                checks: checks.clone(),
                heartbeats: heartbeats.clone(),
                settings: web_settings,
                web: web.clone(),
                base_path: base_path(&options.route_prefix),
                reload,
            };
            App {
                config,
                source,
                options,
                web,
                telemetry,
                exporter: Arc::new(exporter),
                bridge,
                checks,
                reports,
                heartbeats,
                reload_lock: tokio::sync::Mutex::new(()),
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                ui,
            }
        });
        if let Some(bridge) = &app.bridge {
            for task in bridge.take_tasks() {
                app.tasks.spawn(task);
            }
        }
        if let Some(checks) = &app.checks {
            for task in checks.take_tasks() {
                app.tasks.spawn(task);
            }
        }
        if let Some(heartbeats) = &app.heartbeats {
            for task in heartbeats.take_tasks() {
                app.tasks.spawn(task);
            }
        }
        if let Some(reports) = &app.reports {
            app.tasks.spawn(reports.task(app.shutdown.clone()));
        }
        Ok(app)
    }

    /// The scheduled checks, when configured.
    pub fn checks(&self) -> Option<&crate::checks::Checks> {
        self.checks.as_deref()
    }

    /// The heartbeats, when configured.
    pub fn heartbeats(&self) -> Option<&crate::heartbeat::Heartbeats> {
        self.heartbeats.as_deref()
    }

    /// The report scheduler and preview, when the bridge is configured.
    pub fn reports(&self) -> Option<&crate::reports::Reports> {
        self.reports.as_ref()
    }

    /// The current config.
    pub fn config(&self) -> Arc<Config> {
        self.config.get()
    }

    /// The running bridge, when configured.
    pub fn bridge(&self) -> Option<&Bridge> {
        self.bridge.as_deref()
    }

    /// The web config (users, TLS, headers).
    pub fn web(&self) -> &Web {
        &self.web
    }

    /// The route prefix as a path that starts and ends with `/`, for links.
    pub fn base_path(&self) -> String {
        base_path(&self.options.route_prefix)
    }

    /// Reloads the config; a failure keeps the old one and says why.
    pub async fn reload(&self) -> Result<(), String> {
        let _serialised = self.reload_lock.lock().await;
        match self.source.load() {
            Ok(config) => {
                if let (Some(bridge), Some(bridge_config)) = (&self.bridge, &config.bridge) {
                    bridge.reload(bridge_config.clone());
                }
                if let (Some(heartbeats), Some(heartbeat_config)) = (&self.heartbeats, &config.heartbeats) {
                    if let Err(err) = heartbeats.reload(heartbeat_config.clone()) {
                        self.telemetry.reloaded(false);
                        tracing::error!(error = %err, "Error reloading config");
                        return Err(err.to_string());
                    }
                }
                if config.heartbeats.is_some() != self.heartbeats.is_some() {
                    tracing::warn!("Enabling or disabling heartbeats takes effect after a restart");
                }
                if config.bridge.is_some() != self.bridge.is_some() {
                    tracing::warn!("Enabling or disabling the bridge takes effect after a restart");
                }
                if config.storage != self.config().storage {
                    tracing::warn!("A new storage: takes effect after a restart");
                }
                if config.exporter.max_concurrent_probes != self.config().exporter.max_concurrent_probes {
                    tracing::warn!("A new exporter.max_concurrent_probes takes effect after a restart");
                }
                match &self.checks {
                    Some(checks) => {
                        if let Err(err) = checks.reload(config.for_checks()).await {
                            self.telemetry.reloaded(false);
                            tracing::error!(error = %err, "Error reloading checks");
                            return Err(err.to_string());
                        }
                    }
                    None if config.checks.is_configured() => {
                        tracing::warn!("Checks added to a config that had none take effect after a restart");
                    }
                    None => {}
                }
                if let Some(heartbeats) = &self.heartbeats {
                    if let Err(err) = heartbeats.sync_history().await {
                        tracing::error!(error = %err, "Cannot bring heartbeats into the checks' history");
                    }
                }
                self.ui.settings.set(config.for_web());
                self.config.set(config);
                self.telemetry.reloaded(true);
                tracing::info!("Loaded config file");
                Ok(())
            }
            Err(err) => {
                self.telemetry.reloaded(false);
                tracing::error!(error = %err, "Error reloading config");
                Err(err.to_string())
            }
        }
    }

    /// Whether the bridge's routes have a listener of their own (`bridge.listen_address`).
    fn bridge_listens_apart(&self) -> bool {
        self.config().bridge.as_ref().is_some_and(|bridge| bridge.listen_address.is_some())
    }

    /// The bridge's surfaces: the webhook, the deliveries API, the message API
    /// and acknowledgement.
    fn bridge_surfaces(&self) -> Vec<Router> {
        self.bridge
            .iter()
            .flat_map(|bridge| {
                [bridge.webhook_router(), bridge.deliveries_router(), bridge.messages_router(), bridge.ack_router()]
            })
            .collect()
    }

    /// The router of `--web.listen-address`: the exporter, plus the bridge's
    /// surfaces unless they have a listener of their own.
    pub fn router(&self) -> Router {
        let mut surfaces = vec![Arc::clone(&self.exporter).router()];
        if !self.bridge_listens_apart() {
            surfaces.extend(self.bridge_surfaces());
        }
        surfaces.extend(self.checks.iter().map(|checks| checks.router()));
        surfaces.extend(self.reports.iter().map(crate::reports::Reports::router));
        surfaces.extend(self.heartbeats.iter().map(|heartbeats| heartbeats.api_router()));
        let open = http::open(
            self.heartbeats
                .iter()
                .map(|heartbeats| heartbeats.open_router())
                .chain(self.checks.iter().map(|checks| checks.agent_router())),
            &self.options.route_prefix,
        );
        surfaces.push(crate::web::router(self.ui.clone()));
        let ui = self.ui.clone();
        let public: http::Public =
            Arc::new(move |path: &str, query: Option<&str>| crate::web::is_public(&ui, path, query));
        http::compose_with_public(surfaces, &self.options.route_prefix, &self.web, public).merge(open)
    }

    /// The router of `bridge.listen_address`, behind the same web layer.
    pub fn bridge_router(&self) -> Option<Router> {
        self.bridge_listens_apart().then(|| http::compose(self.bridge_surfaces(), "/", &self.web))
    }

    /// Serves `router` on `listener` until shutdown, each connection on the
    /// runtime of `threads` with the fewest open ones (tests pass the default:
    /// everything on the test's runtime).
    pub fn serve(&self, listener: TcpListener, router: Router, threads: &http::threads::Threads) {
        let serving = http::serve(listener, router, self.web.tls.clone(), self.shutdown.clone(), threads.clone());
        self.tasks.spawn(async move {
            if let Err(err) = serving.await {
                tracing::error!(error = %err, "A listener stopped");
            }
        });
    }

    /// Reloads on SIGHUP and, with `auto_reload`, when the file's content changes.
    pub fn watch_reloads(self: &Arc<Self>, auto_reload: Option<Duration>) {
        #[cfg(unix)]
        {
            let app = Arc::clone(self);
            self.tasks.spawn(async move {
                let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
                    return;
                };
                loop {
                    tokio::select! {
                        received = hangup.recv() => match received {
                            Some(()) => { let _ = app.reload().await; }
                            None => return,
                        },
                        () = app.shutdown.cancelled() => return,
                    }
                }
            });
        }
        if let (Some(interval), ConfigSource::File(path)) = (auto_reload, &self.source) {
            let app = Arc::clone(self);
            let path = path.clone();
            let interval = interval.max(Duration::from_secs(1));
            self.tasks.spawn(async move {
                let digest = |path: &PathBuf| {
                    use sha2::Digest;
                    std::fs::read(path).map(|bytes| sha2::Sha256::digest(bytes).to_vec()).ok()
                };
                let mut last = digest(&path);
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(interval) => {}
                        () = app.shutdown.cancelled() => return,
                    }
                    let now = digest(&path);
                    if now.is_some() && now != last {
                        last = now;
                        let _ = app.reload().await;
                    }
                }
            });
        }
    }

    /// Stops accepting requests and reloading; returns at once.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// Stops every long-lived task: listeners and reloaders first, then the
    /// bridge's workers after their in-flight attempt.
    pub async fn shutdown(&self) {
        self.stop();
        if let Some(checks) = &self.checks {
            checks.shutdown().await;
        }
        if let Some(heartbeats) = &self.heartbeats {
            heartbeats.shutdown().await;
        }
        if let Some(bridge) = &self.bridge {
            bridge.shutdown().await;
        }
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// The files older checkits kept each part's state in by default (in the
/// working directory); a part that now uses the default `storage:` starts
/// empty beside them, so say where they are.
fn warn_about_legacy_files(config: &Config) {
    let uses_default = config.storage.sqlite.is_some();
    let parts = [
        ("checkit-bridge.db", "bridge.store", config.bridge.as_ref().is_some_and(|bridge| bridge.store.is_none())),
        (
            "checkit-checks.db",
            "check_options.store",
            config.checks.is_configured() && config.checks.options.store.is_none(),
        ),
        ("checkit-heartbeats.db", "heartbeats.store", config.heartbeats.as_ref().is_some_and(|hb| hb.store.is_none())),
    ];
    for (file, key, in_storage) in parts {
        let found = [std::path::PathBuf::from(file), config.base_dir.join(file)].into_iter().find(|path| path.exists());
        if let (true, true, Some(found)) = (uses_default, in_storage, found) {
            tracing::warn!(
                file = %std::path::absolute(&found).unwrap_or(found).display(),
                key,
                storage = %config.storage.describe(),
                "A state file of an older checkit exists but this part now keeps its state in `storage:`; \
                 set the deprecated key to the file to keep using it."
            );
        }
    }
}

/// The route prefix as a path that starts and ends with `/`, for links.
fn base_path(route_prefix: &str) -> String {
    let prefix = route_prefix.trim_matches('/');
    if prefix.is_empty() { "/".into() } else { format!("/{prefix}/") }
}

/// The listen backlog asked for: the kernel caps it at `net.core.somaxconn`,
/// so listeners queue as many new connections as the host allows, as Go's
/// (blackbox's) do. With a shallow queue (tokio's default) a burst of clients
/// overflows it and each dropped SYN costs a client a 1 s retransmit.
const BACKLOG: i32 = 65535;

/// Binds `:port`, `host:port` or `[v6]:port`; `:port` listens on every
/// address, IPv6 and IPv4 alike, as Go does.
pub async fn bind(address: &str) -> std::io::Result<TcpListener> {
    if let Some(port) = address.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| std::io::Error::other(format!("invalid port in {address:?}")))?;
        return match listen(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)), true) {
            Ok(listener) => Ok(listener),
            Err(_) => listen(SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)), false),
        };
    }
    let mut last = None;
    for addr in tokio::net::lookup_host(address).await? {
        match listen(addr, false) {
            Ok(listener) => return Ok(listener),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("{address:?} resolves to no address"))))
}

/// One listening socket on `addr` (`dual`: IPv6 that also accepts IPv4).
fn listen(addr: SocketAddr, dual: bool) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    if dual {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// Runs checkit until SIGINT or SIGTERM: builds the app, binds every
/// listener, watches for reloads, then shuts everything down gracefully.
pub async fn run(
    config: Config,
    source: ConfigSource,
    options: Options,
    web: Web,
    serving: Serving,
) -> anyhow::Result<()> {
    match &source {
        ConfigSource::File(path) => tracing::info!(file = %path.display(), "Loaded config file"),
        ConfigSource::Embedded => tracing::info!("Loaded the embedded default config (no --config.file given)"),
    }
    let bridge_listen = config.bridge.as_ref().and_then(|bridge| bridge.listen_address.clone());
    let app = App::new(config, source, options, web).await?;
    let router = app.router();
    for address in &serving.listen_addresses {
        let listener = bind(address).await.map_err(|err| anyhow::anyhow!("cannot listen on {address}: {err}"))?;
        tracing::info!(address = %listener.local_addr()?, tls = app.web.tls.is_some(), "Listening");
        app.serve(listener, router.clone(), &serving.threads);
    }
    if let (Some(address), Some(bridge_router)) = (bridge_listen, app.bridge_router()) {
        let listener = bind(&address).await.map_err(|err| anyhow::anyhow!("cannot listen on {address}: {err}"))?;
        tracing::info!(address = %listener.local_addr()?, "Bridge listening");
        app.serve(listener, bridge_router, &serving.threads);
    }
    app.watch_reloads(serving.auto_reload);
    wait_for_signal().await;
    tracing::info!("Shutting down");
    app.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            () = terminate => {},
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
