//! When checks run, and the loop that runs one.
//!
//! Each check runs at `k × interval + offset` (times since the Unix epoch),
//! where the offset is a stable hash of its name: 10,000 checks spread over
//! the interval instead of firing in the same second, and a restart or reload
//! keeps each check's slots. One task per check runs it, so a check never
//! overlaps itself; a slot missed because the previous run overran is
//! skipped, not queued. A shared semaphore bounds probes in flight. With
//! replicas on PostgreSQL every replica keeps every check's schedule and runs
//! a slot only when the check is its own (`super::Shared::runs_here`).

use super::Shared;
use super::Slot;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The stable offset of check `name` inside its `interval`.
pub fn offset(name: &str, interval: std::time::Duration) -> Duration {
    let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX).max(1);
    let digest = Sha256::digest(name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let offset_ms = u64::from_be_bytes(first) % interval_ms;
    Duration::milliseconds(i64::try_from(offset_ms).unwrap_or(0))
}

/// The first slot at or after `at`.
pub fn next_slot(at: DateTime<Utc>, interval: std::time::Duration, offset: Duration) -> DateTime<Utc> {
    let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
    let since = at.timestamp_millis() - offset.num_milliseconds();
    let slots = since.div_euclid(interval_ms) + i64::from(since.rem_euclid(interval_ms) != 0);
    DateTime::from_timestamp_millis(slots.saturating_mul(interval_ms).saturating_add(offset.num_milliseconds()))
        .unwrap_or(at)
}

/// Runs `slot`'s check at each of its slots until it is stopped.
pub(super) async fn run_check(shared: Arc<Shared>, slot: Arc<Slot>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut not_before = shared.clock.now();
    // Whether this replica ran the check last time (its state in memory is current).
    let mut ran_here = true;
    loop {
        let check = slot.check();
        let planned = next_slot(not_before, check.interval, offset(&check.name, check.interval));
        tokio::select! {
            () = shared.clock.sleep_until(planned) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        // A reload may have changed the interval while this task slept.
        let check = slot.check();
        let here = shared.runs_here(&check.name);
        if here && !ran_here {
            shared.take_over(&slot).await;
        }
        ran_here = here;
        // Agents run checks with `locations`; their results arrive by push.
        if here && !slot.is_paused() && check.locations.is_empty() {
            let permit = tokio::select! {
                permit = Arc::clone(&shared.probes).acquire_owned() => permit,
                _ = stop.changed() => return,
            };
            let started = shared.clock.now();
            shared.metrics.lateness.observe((started - planned).num_milliseconds().max(0) as f64 / 1000.0);
            // Boxed: a run's future (probe, store, notification) is ~10 KiB,
            // and unboxed every check's task would hold one while it sleeps.
            Box::pin(super::run_once(&shared, &slot, &check, started)).await;
            drop(permit);
        }
        // The next slot strictly after this one and after now: missed slots are skipped.
        not_before = std::cmp::max(planned + Duration::milliseconds(1), shared.clock.now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn offsets_are_stable_spread_and_inside_the_interval() {
        let interval = std::time::Duration::from_secs(15);
        assert_eq!(offset("web", interval), offset("web", interval));
        let mut seconds = std::collections::HashSet::new();
        for index in 0..1000 {
            let offset = offset(&format!("check-{index}"), interval);
            assert!(offset >= Duration::zero() && offset < Duration::seconds(15));
            seconds.insert(offset.num_seconds());
        }
        assert_eq!(seconds.len(), 15, "1000 checks use every second of a 15s interval");
    }

    #[test]
    fn slots_are_interval_apart_from_the_offset() {
        let interval = std::time::Duration::from_secs(60);
        let offset = Duration::seconds(7);
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 30).unwrap();
        assert_eq!(next_slot(at, interval, offset), Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 7).unwrap());
        let exact = Utc.with_ymd_and_hms(2026, 1, 1, 0, 1, 7).unwrap();
        assert_eq!(next_slot(exact, interval, offset), exact, "a slot is due at its own time");
        assert_eq!(next_slot(exact + Duration::milliseconds(1), interval, offset), exact + Duration::seconds(60));
    }
}
