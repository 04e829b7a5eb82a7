//! Integration tests: one module per area, shared helpers in `support`.

mod bridge_channels;
mod config;
mod exporter;
mod peers;
mod support;
