//! Integration tests: one module per area, shared helpers in `support`.

mod bridge_channels;
mod compat_grpc;
mod compat_http;
mod compat_net;
mod config;
mod exporter;
mod peers;
mod probe_dns;
mod probe_ftp;
mod probe_grpc;
mod probe_http;
mod probe_icmp;
mod probe_imap;
mod probe_mssql;
mod probe_mysql;
mod probe_pop3;
mod probe_postgres;
mod probe_rdap;
mod probe_smtp;
mod probe_tcp;
mod probe_tls;
mod probe_unix;
mod support;
