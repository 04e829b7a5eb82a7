//! Integration tests: one module per area, shared helpers in `support`.

mod bridge_channels;
mod compat_net;
mod config;
mod exporter;
mod peers;
mod probe_dns;
mod probe_icmp;
mod probe_tcp;
mod probe_unix;
mod support;
