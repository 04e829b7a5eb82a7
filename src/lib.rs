//! checkit: a blackbox_exporter-compatible probe exporter and an Alertmanager
//! bridge in one binary.
//!
//! - `app`: the composition root; builds every part from the frozen config,
//!   owns reload and every long-lived task under one shutdown signal.
//! - `cli`: flags, handed over to `app`.
//! - `http`: one router per surface (exporter, webhook, deliveries), composed
//!   behind one web-config layer; served on already-bound listeners.
//! - `settings`: the whole config (blackbox.yml plus checkit's keys), each
//!   part's block decoded and validated by that part, frozen.
//! - `config`: the leaf every part reads its block with: YAML, paths,
//!   secrets, typed values, problems located by YAML path.
//! - `net`: TLS clients that capture the presented chain, rustls for
//!   tokio-postgres; shared by `probe` and `bridge`.
//! - `probe`: one file per prober behind one enum; a fresh registry per probe.
//! - `bridge`: Alertmanager/Grafana webhooks to people, with a durable outbox.
//! - `checks`: scheduled checks — state, history, uptime, notifications, API.
//! - `heartbeat`: checks that ping in (`/ping/…`); silence becomes an alert.
//! - `reports`: regular per-contact reports (uptime, incidents, p95, expiry,
//!   deliveries), scheduled in the report's zone and committed once per period.
//! - `web`: the operator UI under `/ui/`, status pages, badges, their assets.
//! - `storage`: SQLite (one writer, group commit) or PostgreSQL, migrations per area.
//! - `telemetry`, `logging`: `/metrics` (with the `process_*` families) and logs.

pub mod agent;
pub mod app;
pub mod bridge;
pub mod checks;
pub mod cli;
pub mod config;
pub mod heartbeat;
pub mod http;
pub mod logging;
pub mod net;
pub mod probe;
pub mod reports;
pub mod settings;
pub mod storage;
pub mod telemetry;
pub mod web;
