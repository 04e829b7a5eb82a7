//! Recent probe results for `/` and `/logs`: a ring of the last N results
//! plus a ring of evicted failures, so recent failures stay visible longer.

use crate::config::types::redact_url_passwords;
use std::collections::VecDeque;

/// One stored probe.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Monotonic id (`/logs?id=`).
    pub id: u64,
    /// Module name.
    pub module: String,
    /// Target, with any URL password redacted: `/` and `/logs` show it.
    pub target: String,
    /// Whether it succeeded.
    pub success: bool,
    /// The probe's log lines.
    pub log: crate::probe::ProbeLog,
    /// The metrics it returned, encoded (smaller to keep than the registry),
    /// sharing the bytes of the `/probe` answer.
    pub metrics: bytes::Bytes,
    /// The config the probe ran with: its module is rendered as YAML only
    /// when the entry is shown.
    pub config: std::sync::Arc<crate::settings::Config>,
}

impl Entry {
    /// blackbox's three-section debug output, rendered only when asked for:
    /// rendering on every probe would cost more than most probes do.
    pub fn debug_output(&self) -> String {
        let module_yaml = self.config.module_yaml(&self.module);
        crate::probe::debug::debug_output(&self.log, &String::from_utf8_lossy(&self.metrics), &module_yaml)
    }
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
    pub fn add(
        &mut self,
        module: &str,
        target: &str,
        success: bool,
        log: crate::probe::ProbeLog,
        metrics: bytes::Bytes,
        config: std::sync::Arc<crate::settings::Config>,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if self.limit == 0 {
            return id;
        }
        self.recent.push_back(Entry {
            id,
            module: module.into(),
            target: redact_url_passwords(target).into_owned(),
            success,
            log,
            metrics,
            config,
        });
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

    /// The newest entry for `target` (and `module`, when given); `target`
    /// may be given with its password or redacted.
    pub fn latest(&self, target: &str, module: Option<&str>) -> Option<&Entry> {
        let target = redact_url_passwords(target);
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
        let config = std::sync::Arc::new(crate::settings::Config::parse("modules:\n  m:\n    prober: tcp\n").unwrap());
        let mut log = crate::probe::ProbeLog::default();
        log.error("line");
        history.add("m", "failed", false, log, "probe_success 0\n".into(), config.clone());
        for index in 0..5 {
            history.add(
                "m",
                &format!("ok{index}"),
                true,
                Default::default(),
                "probe_success 1\n".into(),
                config.clone(),
            );
        }
        let targets: Vec<&str> = history.list().iter().map(|entry| entry.target.as_str()).collect();
        assert_eq!(targets, ["ok4", "ok3", "failed"]);
        let debug_output = history.get(0).map(Entry::debug_output).unwrap_or_default();
        assert!(debug_output.starts_with("Logs for the probe:\nts="), "{debug_output}");
        assert!(debug_output.contains(" level=error msg=\"line\"\n"), "{debug_output}");
        assert!(debug_output.contains("Module configuration:\nprober: tcp\n"), "{debug_output}");
        assert!(history.latest("ok3", Some("m")).is_some());
        assert!(history.latest("ok3", Some("other")).is_none());
    }
}
