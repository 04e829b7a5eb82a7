//! Integration tests.
mod probe_icmp;
