//! Command line: blackbox_exporter's flags plus `checkit probe`; parses them and
//! hands over to [`crate::app`].

use crate::app::{self, ConfigSource, Options, Serving};
use crate::config::types::GoDuration;
use crate::http::webconfig::Web;
use crate::settings::Config;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    /// Run the checks of one location for a central checkit and push their results.
    Agent(crate::agent::Args),
    /// Message people through a running checkit's message API.
    Send(crate::bridge::send::SendArgs),
    /// Exit 0 when a running checkit answers on `/-/healthy` (for container health checks).
    Healthcheck {
        /// The URL to check.
        #[arg(long, default_value = "http://127.0.0.1:9115/-/healthy")]
        url: String,
    },
}

/// Runs the command line and returns the exit code.
pub fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    crate::logging::init(&cli.log_level, &cli.log_format);
    let (runtime, serving) = match runtime() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "Cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    // Only the server serves connections; the subcommands and --config.check do not.
    let serves = cli.command.is_none() && !cli.config_check;
    let threads = match crate::http::threads::Threads::start(if serves { serving } else { 0 }) {
        Ok(threads) => threads,
        Err(err) => {
            tracing::error!(error = %err, "Cannot start the serving threads");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(cli, threads.clone()));
    threads.stop();
    code
}

/// Makes glibc return large freed blocks to the system. glibc raises its
/// mmap threshold each time a mapped block is freed (up to 32 MiB); after
/// that, blocks of a few MiB (a large webhook's body and stored text,
/// SQLite's copy of it) come from the heap and stay resident once freed: one
/// 100,000-alert webhook left about 60 times its size resident. Setting the
/// threshold fixes it at glibc's initial 128 KiB (and with it the trim
/// threshold), so such blocks are mapped and unmapped. Called first thing,
/// before any other thread exists; elsewhere than glibc it does nothing.
/// No crate wraps `mallopt`, hence the one `unsafe` call.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only sets the allocator's parameters and is safe to
    // call at any time; a refused value (return 0) leaves glibc's default.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
}

/// The runtime: one worker thread fewer than the CPUs, and a single-threaded
/// runtime on one or two CPUs. Most of a probe's CPU time is the kernel's
/// (connections, loopback or not), and the box also runs the scraper and
/// often the targets. On two cores a second worker cost cross-thread
/// wake-ups on every probe and a second malloc arena (see
/// `benches/exporter.sh` in the README). `TOKIO_WORKER_THREADS`, tokio's own
/// variable, overrides the count; 1 means single-threaded.
///
/// The second number is how many serving threads ([`crate::http::threads`])
/// serve HTTP connections beside a single-threaded runtime: one per spare
/// CPU, none when `TOKIO_WORKER_THREADS` is set (the operator chose) or when
/// the process may use only one CPU (`taskset`, a CPU quota).
fn runtime() -> std::io::Result<(tokio::runtime::Runtime, usize)> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let chosen = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|value| value.trim().parse::<usize>().ok())
        .filter(|workers| *workers > 0);
    let workers = chosen.unwrap_or(cpus.saturating_sub(1).max(1));
    if workers == 1 {
        let serving = if chosen.is_some() { 0 } else { cpus - 1 };
        Ok((tokio::runtime::Builder::new_current_thread().enable_all().build()?, serving))
    } else {
        Ok((tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?, 0))
    }
}

fn config_source(cli: &Cli) -> ConfigSource {
    match &cli.config_file {
        Some(path) => ConfigSource::File(path.clone()),
        None if std::path::Path::new("blackbox.yml").exists() => ConfigSource::File("blackbox.yml".into()),
        None => ConfigSource::Embedded,
    }
}

async fn run(cli: Cli, threads: crate::http::threads::Threads) -> ExitCode {
    if let Some(Command::Healthcheck { url }) = &cli.command {
        return healthcheck(url).await;
    }
    if let Some(Command::Agent(args)) = &cli.command {
        return crate::agent::run(args.clone()).await;
    }
    if let Some(Command::Send(args)) = &cli.command {
        return crate::bridge::send::run(args.clone()).await;
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
    match serve(cli, config, source, threads).await {
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
    let outcome =
        crate::probe::run(module, target, hostname, timeout, &config.policy, &crate::probe::Env::default()).await;
    print!(
        "{}",
        crate::probe::debug::debug_output(&outcome.log, &outcome.registry.encode(), &config.module_yaml(module_name))
    );
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

async fn serve(
    cli: Cli,
    config: Config,
    source: ConfigSource,
    threads: crate::http::threads::Threads,
) -> anyhow::Result<()> {
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
    let serving = Serving {
        listen_addresses: cli.listen_addresses,
        auto_reload: cli.auto_reload.then(|| cli.auto_reload_interval.get()),
        threads,
    };
    app::run(config, source, options, web, serving).await
}
