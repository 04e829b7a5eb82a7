//! Integration tests: one module per area, shared helpers in `support`.

mod compat_http;
mod config;
mod exporter;
mod peers;
mod probe_http;
mod support;
