//! Integration tests: one module per area, shared helpers in `support`.

mod bridge_channels;
mod bridge_delivery;
mod bridge_intake;
mod bridge_peers;
mod bridge_planner;
mod bridge_store;
mod bridge_support;
mod config;
mod exporter;
mod peers;
mod support;
