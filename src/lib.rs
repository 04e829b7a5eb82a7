//! checkit: a blackbox_exporter-compatible probe exporter and an Alertmanager
//! bridge in one binary.
//!
//! - `config`: blackbox.yml plus checkit's keys, parsed, validated, frozen.
//! - `probe`: one file per prober behind one enum; a fresh registry per probe.
//! - `server`: the HTTP endpoints (`/probe`, `/metrics`, reload, `/logs`).
//! - `bridge`: Alertmanager/Grafana webhooks to people, with a durable outbox.

pub mod config;
pub mod bridge;
