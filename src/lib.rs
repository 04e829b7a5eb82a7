//! checkit: a blackbox_exporter-compatible probe exporter and an Alertmanager
//! bridge in one binary.
//!
//! - `config`: blackbox.yml plus checkit's keys, parsed, validated, frozen.
//! - `probe`: one file per prober behind one enum; a fresh registry per probe.
//! - `server`: the HTTP endpoints (`/probe`, `/metrics`, reload, `/logs`), on
//!   an already-bound listener so tests run the real app on port 0.
//! - `bridge`: Alertmanager/Grafana webhooks to people, with a durable outbox.
//! - `web`: the operator UI under `/ui/`, status pages, badges, their assets.
//! - `cli`, `logging`, `telemetry`, `history`, `webconfig`: the process around them.

pub mod bridge;
pub mod cli;
pub mod config;
pub mod http;
pub mod logging;
pub mod probe;
pub mod telemetry;
pub mod web;
