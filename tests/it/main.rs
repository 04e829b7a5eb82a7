//! Integration tests: one module per area, shared helpers in `support`.

mod bridge_channels;
mod compat_grpc;
mod compat_http;
mod config;
mod exporter;
mod peers;
mod probe_ftp;
mod probe_grpc;
mod probe_http;
mod probe_imap;
mod probe_pop3;
mod probe_rdap;
mod probe_smtp;
mod probe_tls;
mod support;
