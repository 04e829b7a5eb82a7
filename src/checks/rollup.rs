//! Hourly and daily roll-ups: runs, successes, duration sum/min/max and a
//! small fixed histogram from which a p95 is estimated.
//!
//! Uptime is `successes / runs` over the roll-ups a window covers, so it is
//! exact to the roll-up boundary (the hour for 24h and 7d, the UTC day for
//! longer windows). Runs inside maintenance windows are counted apart
//! (`maintenance_runs`) and left out of `runs`, so maintenance never counts
//! as downtime nor as uptime. Runs without a measured duration (a
//! heartbeat's ping without a start, a missed deadline) count in `runs` but
//! not in the durations: those are over the histogram's runs.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Serialize;

/// Upper bounds (seconds) of the duration histogram; the last bucket is +Inf.
pub const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Histogram columns: one per bound plus +Inf.
pub const BUCKET_COUNT: usize = BUCKETS.len() + 1;

/// The roll-up periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// One hour.
    Hour,
    /// One UTC day.
    Day,
}

impl Period {
    /// The stored code.
    pub fn code(self) -> i64 {
        match self {
            Period::Hour => 0,
            Period::Day => 1,
        }
    }

    /// Length.
    pub fn length(self) -> Duration {
        match self {
            Period::Hour => Duration::hours(1),
            Period::Day => Duration::days(1),
        }
    }

    /// Start of the bucket holding `at`.
    pub fn floor(self, at: DateTime<Utc>) -> DateTime<Utc> {
        at.duration_trunc(self.length()).unwrap_or(at)
    }

    /// The period whose buckets a window of `length` reads: hours up to a
    /// week (168 rows a check), days beyond.
    pub fn for_window(length: Duration) -> Period {
        if length <= Duration::days(7) { Period::Hour } else { Period::Day }
    }
}

/// The histogram bucket of a duration.
pub fn bucket_of(seconds: f64) -> usize {
    BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(BUCKETS.len())
}

/// One roll-up bucket (or the sum of several).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rollup {
    /// Runs outside maintenance.
    pub runs: u64,
    /// Successful runs outside maintenance.
    pub successes: u64,
    /// Runs inside maintenance windows (not in `runs`).
    pub maintenance_runs: u64,
    /// Sum of the measured durations of `runs`, microseconds.
    pub duration_sum_us: u64,
    /// Shortest measured duration, microseconds (0 with none).
    pub duration_min_us: u64,
    /// Longest duration, microseconds.
    pub duration_max_us: u64,
    /// Duration histogram over [`BUCKETS`]: one count per timed run.
    #[serde(skip)]
    pub histogram: [u64; BUCKET_COUNT],
}

impl Rollup {
    /// Adds `other` (a later or earlier bucket) to this one.
    pub fn merge(&mut self, other: &Rollup) {
        if other.timed_runs() > 0 {
            self.duration_min_us = if self.timed_runs() == 0 {
                other.duration_min_us
            } else {
                self.duration_min_us.min(other.duration_min_us)
            };
            self.duration_max_us = self.duration_max_us.max(other.duration_max_us);
        }
        self.runs += other.runs;
        self.successes += other.successes;
        self.maintenance_runs += other.maintenance_runs;
        self.duration_sum_us += other.duration_sum_us;
        for (mine, theirs) in self.histogram.iter_mut().zip(other.histogram) {
            *mine += theirs;
        }
    }

    /// `successes / runs`, or `None` with no runs.
    pub fn uptime(&self) -> Option<f64> {
        (self.runs > 0).then(|| self.successes as f64 / self.runs as f64)
    }

    /// Runs with a measured duration (the durations' count).
    pub fn timed_runs(&self) -> u64 {
        self.histogram.iter().sum()
    }

    /// Mean measured duration in seconds.
    pub fn mean_seconds(&self) -> Option<f64> {
        let timed = self.timed_runs();
        (timed > 0).then(|| self.duration_sum_us as f64 / timed as f64 / 1e6)
    }

    /// Shortest and longest measured durations in seconds.
    pub fn min_max_seconds(&self) -> Option<(f64, f64)> {
        (self.timed_runs() > 0).then(|| (self.duration_min_us as f64 / 1e6, self.duration_max_us as f64 / 1e6))
    }

    /// The p95 duration estimated from the histogram: linear inside the
    /// bucket holding the 95th percentile, clamped to the observed min/max.
    pub fn p95_seconds(&self) -> Option<f64> {
        let total = self.timed_runs();
        if total == 0 {
            return None;
        }
        let rank = 0.95 * total as f64;
        let mut below = 0u64;
        for (index, count) in self.histogram.iter().enumerate() {
            if *count > 0 && (below + count) as f64 >= rank {
                let lower = if index == 0 { 0.0 } else { BUCKETS[index - 1] };
                let upper = BUCKETS.get(index).copied().unwrap_or(self.duration_max_us as f64 / 1e6);
                let estimate = lower + (upper - lower) * ((rank - below as f64) / *count as f64);
                let (min, max) = (self.duration_min_us as f64 / 1e6, self.duration_max_us as f64 / 1e6);
                return Some(estimate.clamp(min, max.max(min)));
            }
            below += count;
        }
        None
    }
}

/// The standard uptime windows, by name.
pub const WINDOWS: [(&str, i64); 5] =
    [("24h", 24), ("7d", 7 * 24), ("30d", 30 * 24), ("90d", 90 * 24), ("1y", 365 * 24)];

/// Parses a window such as `24h`, `7d`, `30d`, `1y`, `90m` (minutes are
/// rounded up to the roll-up hour).
pub fn parse_window(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid window {text:?}: use a number and one of m, h, d, w, y (e.g. 24h, 30d)");
    let unit = text.chars().last().ok_or_else(invalid)?;
    let number: i64 = text[..text.len() - unit.len_utf8()].parse().map_err(|_| invalid())?;
    if number <= 0 {
        return Err(invalid());
    }
    let hours = match unit {
        'm' => return Ok(Duration::minutes(number.min(60 * 24 * 3660))),
        'h' => number,
        'd' => number.saturating_mul(24),
        'w' => number.saturating_mul(7 * 24),
        'y' => number.saturating_mul(365 * 24),
        _ => return Err(invalid()),
    };
    if hours > 10 * 365 * 24 {
        return Err(format!("window {text:?} is longer than 10 years"));
    }
    Ok(Duration::hours(hours))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollup_of(durations: &[f64], successes: u64) -> Rollup {
        let mut rollup = Rollup::default();
        for seconds in durations {
            let us = (seconds * 1e6) as u64;
            let one = Rollup {
                runs: 1,
                duration_sum_us: us,
                duration_min_us: us,
                duration_max_us: us,
                histogram: {
                    let mut histogram = [0; BUCKET_COUNT];
                    histogram[bucket_of(*seconds)] = 1;
                    histogram
                },
                ..Rollup::default()
            };
            rollup.merge(&one);
        }
        rollup.successes = successes;
        rollup
    }

    #[test]
    fn p95_estimate_lands_in_the_right_bucket_and_merges_keep_min_max() {
        let mut durations = vec![0.02; 95];
        durations.extend([0.4; 5]);
        let rollup = rollup_of(&durations, 99);
        let p95 = rollup.p95_seconds().unwrap();
        assert!((0.01..=0.025).contains(&p95), "{p95}");
        assert_eq!(rollup.uptime(), Some(0.99));
        assert_eq!((rollup.duration_min_us, rollup.duration_max_us), (20_000, 400_000));
        let mut durations = vec![0.02; 90];
        durations.extend([0.4; 10]);
        let p95 = rollup_of(&durations, 100).p95_seconds().unwrap();
        assert!((0.25..=0.4).contains(&p95), "{p95}");
        assert_eq!(Rollup::default().p95_seconds(), None);
        assert_eq!(rollup_of(&[30.0], 1).p95_seconds(), Some(30.0), "+Inf bucket is capped by the max");
    }

    #[test]
    fn untimed_runs_count_but_leave_the_durations_alone() {
        let untimed = Rollup { runs: 3, successes: 2, ..Rollup::default() };
        let mut rollup = untimed.clone();
        rollup.merge(&rollup_of(&[2.0, 4.0], 2));
        rollup.merge(&untimed);
        assert_eq!((rollup.runs, rollup.successes, rollup.timed_runs()), (8, 6, 2));
        assert_eq!(rollup.mean_seconds(), Some(3.0));
        assert_eq!(rollup.min_max_seconds(), Some((2.0, 4.0)));
        assert_eq!((untimed.mean_seconds(), untimed.min_max_seconds(), untimed.p95_seconds()), (None, None, None));
    }

    #[test]
    fn windows_parse_and_choose_their_period() {
        assert_eq!(parse_window("24h"), Ok(Duration::hours(24)));
        assert_eq!(parse_window("1y"), Ok(Duration::days(365)));
        assert!(parse_window("0d").is_err());
        assert!(parse_window("5x").is_err());
        assert!(parse_window("").is_err());
        assert!(parse_window("11y").is_err());
        assert_eq!(Period::for_window(Duration::days(7)), Period::Hour);
        assert_eq!(Period::for_window(Duration::days(30)), Period::Day);
    }
}
