//! Integration tests: one module per area, shared helpers in `support`.

mod bridge_channels;
mod compat_grpc;
mod config;
mod exporter;
mod peers;
mod probe_grpc;
mod probe_rdap;
mod probe_tls;
mod support;
