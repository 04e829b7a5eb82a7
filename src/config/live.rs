//! The config in force: read by every request, replaced whole by a reload.

use std::sync::{Arc, RwLock};

/// The current config (`T`: the whole one, or a part's block). Readers get an
/// `Arc` snapshot that stays valid across a reload; only the composition root
/// (`app`) replaces it.
#[derive(Debug)]
pub struct Live<T>(RwLock<Arc<T>>);

impl<T> Live<T> {
    /// Holds `config` as the one in force.
    pub fn new(config: T) -> Live<T> {
        Live(RwLock::new(Arc::new(config)))
    }

    /// The config in force now.
    pub fn get(&self) -> Arc<T> {
        match self.0.read() {
            Ok(config) => Arc::clone(&config),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the config in force.
    pub fn set(&self, config: T) {
        match self.0.write() {
            Ok(mut slot) => *slot = Arc::new(config),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(config),
        }
    }
}
