//! The Alertmanager bridge. This stub lists only the leaf modules built on the
//! `bridge-channels` branch; the `bridge-core` branch owns the real file.

pub mod channels;
pub mod quiet;
pub mod ratelimit;
pub mod render;
