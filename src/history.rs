//! Recent probe results for `/` and `/logs`: a ring of the last N results
//! plus a ring of evicted failures, so recent failures stay visible longer.

use std::collections::VecDeque;

/// One stored probe.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Monotonic id (`/logs?id=`).
    pub id: u64,
    /// Module name.
    pub module: String,
    /// Target.
    pub target: String,
    /// Whether it succeeded.
    pub success: bool,
    /// The debug output.
    pub debug_output: String,
}

/// Bounded history.
#[derive(Debug)]
pub struct History {
    limit: usize,
    next_id: u64,
    recent: VecDeque<Entry>,
    failures: VecDeque<Entry>,
}

impl History {
    /// Keeps up to `limit` recent results and `limit` older failures.
    pub fn new(limit: usize) -> History {
        History { limit, next_id: 0, recent: VecDeque::new(), failures: VecDeque::new() }
    }

    /// Stores a result and returns its id.
    pub fn add(&mut self, module: &str, target: &str, success: bool, debug_output: String) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if self.limit == 0 {
            return id;
        }
        self.recent.push_back(Entry { id, module: module.into(), target: target.into(), success, debug_output });
        while self.recent.len() > self.limit {
            if let Some(evicted) = self.recent.pop_front() {
                if !evicted.success {
                    self.failures.push_back(evicted);
                    while self.failures.len() > self.limit {
                        self.failures.pop_front();
                    }
                }
            }
        }
        id
    }

    /// Newest first, then preserved failures newest first.
    pub fn list(&self) -> Vec<&Entry> {
        self.recent.iter().rev().chain(self.failures.iter().rev()).collect()
    }

    /// The entry with `id`.
    pub fn get(&self, id: u64) -> Option<&Entry> {
        self.list().into_iter().find(|entry| entry.id == id)
    }

    /// The newest entry for `target` (and `module`, when given).
    pub fn latest(&self, target: &str, module: Option<&str>) -> Option<&Entry> {
        self.list()
            .into_iter()
            .find(|entry| entry.target == target && module.is_none_or(|module| entry.module == module))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_outlive_successes() {
        let mut history = History::new(2);
        history.add("m", "failed", false, "f".into());
        for index in 0..5 {
            history.add("m", &format!("ok{index}"), true, String::new());
        }
        let targets: Vec<&str> = history.list().iter().map(|entry| entry.target.as_str()).collect();
        assert_eq!(targets, ["ok4", "ok3", "failed"]);
        assert_eq!(history.get(0).map(|entry| entry.debug_output.as_str()), Some("f"));
        assert!(history.latest("ok3", Some("m")).is_some());
        assert!(history.latest("ok3", Some("other")).is_none());
    }
}
