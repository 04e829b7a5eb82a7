//! Command line: blackbox_exporter's flags plus `checkit probe`.

use crate::config::Config;
use crate::config::types::GoDuration;
use crate::http::exporter::{self as server, App, ConfigSource, Options};
use crate::http::webconfig::Web;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// checkit: a blackbox_exporter-compatible probe exporter and alert bridge.
#[derive(Debug, Parser)]
#[command(name = "checkit", version, about)]
pub struct Cli {
    /// Configuration file (blackbox.yml format plus checkit's keys). Without it,
    /// `blackbox.yml` in the working directory, else the embedded default.
    #[arg(long = "config.file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Validate the configuration, print every problem, and exit.
    #[arg(long = "config.check")]
    pub config_check: bool,
    /// Reload the configuration file when its content changes.
    #[arg(long = "config.enable-auto-reload")]
    pub auto_reload: bool,
    /// How often to check the file for changes.
    #[arg(long = "config.auto-reload-interval", default_value = "30s", value_parser = GoDuration::parse)]
    pub auto_reload_interval: GoDuration,
    /// Address to listen on (repeatable).
    #[arg(long = "web.listen-address", default_value = ":9115")]
    pub listen_addresses: Vec<String>,
    /// exporter-toolkit web config (TLS, basic auth).
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<String>,
    /// Prefix for every route.
    #[arg(long = "web.route-prefix")]
    pub route_prefix: Option<String>,
    /// URL under which checkit is reached (its path becomes the route prefix).
    #[arg(long = "web.external-url")]
    pub external_url: Option<String>,
    /// Seconds subtracted from Prometheus' scrape timeout.
    #[arg(long = "timeout-offset", default_value_t = 0.5)]
    pub timeout_offset: f64,
    /// Probe results kept for `/logs`.
    #[arg(long = "history.limit", default_value_t = 100)]
    pub history_limit: usize,
    /// Log level: debug, info, warn, error.
    #[arg(long = "log.level", default_value = "info", value_parser = ["debug", "info", "warn", "error"])]
    pub log_level: String,
    /// Log format: logfmt or json.
    #[arg(long = "log.format", default_value = "logfmt", value_parser = ["logfmt", "json"])]
    pub log_format: String,
    /// Level of the per-probe logger (accepted for compatibility; probe logs go to debug output).
    #[arg(long = "log.prober", default_value = "info")]
    pub log_prober: String,
    /// A subcommand instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one probe and print its debug output (exit 1 if it fails).
    Probe {
        /// Module name.
        #[arg(long)]
        module: String,
        /// Target.
        #[arg(long)]
        target: String,
        /// `hostname` parameter.
        #[arg(long)]
        hostname: Option<String>,
        /// Timeout in seconds when the module sets none.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
    /// Exit 0 when a running checkit answers on `/-/healthy` (for container health checks).
    Healthcheck {
        /// The URL to check.
        #[arg(long, default_value = "http://127.0.0.1:9115/-/healthy")]
        url: String,
    },
}

/// Runs the command line and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init(&cli.log_level, &cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "Cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

fn config_source(cli: &Cli) -> ConfigSource {
    match &cli.config_file {
        Some(path) => ConfigSource::File(path.clone()),
        None if std::path::Path::new("blackbox.yml").exists() => ConfigSource::File("blackbox.yml".into()),
        None => ConfigSource::Embedded,
    }
}

async fn run(cli: Cli) -> ExitCode {
    if let Some(Command::Healthcheck { url }) = &cli.command {
        return healthcheck(url).await;
    }
    let source = config_source(&cli);
    let config = match source.load() {
        Ok(config) => config,
        Err(err) => {
            tracing::error!("Error loading config");
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    if cli.config_check {
        eprintln!("Config file is ok exiting...");
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Probe { module, target, hostname, timeout }) = &cli.command {
        return probe_once(&config, module, target, hostname.as_deref(), *timeout, cli.timeout_offset).await;
    }
    match serve(cli, config, source).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "checkit stopped");
            ExitCode::FAILURE
        }
    }
}

async fn probe_once(
    config: &Config,
    module_name: &str,
    target: &str,
    hostname: Option<&str>,
    timeout: f64,
    offset: f64,
) -> ExitCode {
    let Some(module) = config.module(module_name) else {
        eprintln!("Unknown module {module_name:?}");
        return ExitCode::from(2);
    };
    let timeout = crate::probe::effective_timeout(module.timeout.get(), Some(timeout + offset), offset);
    let outcome = crate::probe::run(module, target, hostname, timeout, &config.policy).await;
    print!("{}", server::debug_output(&outcome.log, &outcome.registry.encode(), &config.module_yaml(module_name)));
    if outcome.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

async fn healthcheck(url: &str) -> ExitCode {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(5)).build() {
        Ok(client) => client,
        Err(_) => return ExitCode::FAILURE,
    };
    match client.get(url).send().await {
        Ok(response) if response.status().is_success() => ExitCode::SUCCESS,
        Ok(response) => {
            eprintln!("{url}: HTTP {}", response.status());
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("{url}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Binds `:port`, `host:port` or `[v6]:port`; `:port` listens on every
/// address, IPv6 and IPv4 alike, as Go does.
pub async fn bind(address: &str) -> std::io::Result<TcpListener> {
    if let Some(port) = address.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| std::io::Error::other(format!("invalid port in {address:?}")))?;
        let dual = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).and_then(|socket| {
            socket.set_only_v6(false)?;
            socket.set_reuse_address(true)?;
            socket.bind(&SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)).into())?;
            socket.listen(1024)?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        });
        return match dual {
            Ok(socket) => TcpListener::from_std(socket.into()),
            Err(_) => TcpListener::bind(("0.0.0.0", port)).await,
        };
    }
    TcpListener::bind(address).await
}

async fn serve(cli: Cli, config: Config, source: ConfigSource) -> anyhow::Result<()> {
    let web = match &cli.web_config_file {
        Some(path) => Web::load(path).map_err(|problems| {
            anyhow::anyhow!(
                "invalid web config {path}: {}",
                problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            )
        })?,
        None => Web::default(),
    };
    let route_prefix = match (&cli.route_prefix, &cli.external_url) {
        (Some(prefix), _) => prefix.clone(),
        (None, Some(url)) => url::Url::parse(url).map(|url| url.path().to_string()).unwrap_or_else(|_| "/".into()),
        (None, None) => "/".into(),
    };
    let options = Options { timeout_offset: cli.timeout_offset, history_limit: cli.history_limit, route_prefix };
    let bridge_listen = config.bridge.as_ref().and_then(|bridge| bridge.listen_address.clone());
    match &source {
        ConfigSource::File(path) => tracing::info!(file = %path.display(), "Loaded config file"),
        ConfigSource::Embedded => tracing::info!("Loaded the embedded default config (no --config.file given)"),
    }
    let app = App::new(config, source.clone(), options, web.clone()).await?;
    let shutdown = CancellationToken::new();
    let router = server::router(app.clone());
    let mut servers = tokio::task::JoinSet::new();
    for address in &cli.listen_addresses {
        let listener = bind(address).await.map_err(|err| anyhow::anyhow!("cannot listen on {address}: {err}"))?;
        tracing::info!(address = %listener.local_addr()?, tls = web.tls.is_some(), "Listening");
        servers.spawn(server::serve(listener, router.clone(), web.tls.clone(), shutdown.clone()));
    }
    if let (Some(address), Some(bridge_router)) = (bridge_listen, app.bridge_router()) {
        let listener = bind(&address).await.map_err(|err| anyhow::anyhow!("cannot listen on {address}: {err}"))?;
        tracing::info!(address = %listener.local_addr()?, "Bridge listening");
        servers.spawn(server::serve(listener, bridge_router, web.tls.clone(), shutdown.clone()));
    }
    spawn_reloaders(app.clone(), &cli, &source);
    wait_for_signal().await;
    tracing::info!("Shutting down");
    shutdown.cancel();
    while servers.join_next().await.is_some() {}
    app.shutdown().await;
    Ok(())
}

fn spawn_reloaders(app: Arc<App>, cli: &Cli, source: &ConfigSource) {
    #[cfg(unix)]
    {
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
                return;
            };
            while hangup.recv().await.is_some() {
                let _ = app.reload().await;
            }
        });
    }
    if let (true, ConfigSource::File(path)) = (cli.auto_reload, source) {
        let path = path.clone();
        let interval = cli.auto_reload_interval.get().max(Duration::from_secs(1));
        tokio::spawn(async move {
            let digest = |path: &PathBuf| {
                use sha2::Digest;
                std::fs::read(path).map(|bytes| sha2::Sha256::digest(bytes).to_vec()).ok()
            };
            let mut last = digest(&path);
            loop {
                tokio::time::sleep(interval).await;
                let now = digest(&path);
                if now.is_some() && now != last {
                    last = now;
                    let _ = app.reload().await;
                }
            }
        });
    }
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
