//! Integration tests: one module per area, shared helpers in `support`.

mod bridge_channels;
mod config;
mod exporter;
mod peers;
mod probe_ftp;
mod probe_imap;
mod probe_pop3;
mod probe_smtp;
mod support;
