//! Integration tests.

mod bridge_delivery;
mod bridge_intake;
mod bridge_support;
