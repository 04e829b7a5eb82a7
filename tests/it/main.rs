//! Integration tests: one module per area, shared helpers in `support`.

mod bridge_channels;
mod config;
mod exporter;
mod ops_rules;
mod peers;
mod support;
mod tidy;
