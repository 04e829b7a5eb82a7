//! Integration tests: one module per area, shared helpers in `support`.

mod compat_grpc;
mod peers;
mod probe_grpc;
mod probe_rdap;
mod probe_tls;
mod support;
