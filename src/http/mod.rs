//! The HTTP surfaces and the one web layer in front of all of them.

pub mod exporter;
pub mod history;
pub mod webconfig;
