//! Rate limits: "at most N sends per window", evaluated as sliding windows
//! over the recorded send times, so a restart cannot reset a budget.
//!
//! Written as `"10/h"`, `"30/d"`, `"5/15m"` or a list of those, all of which
//! must hold (GoAlert's SMS defaults read `["1/m", "5/15m", "12/h", "20/3h"]`).
//! A send at time `s` counts against a window of length `w` until `s + w`.

use crate::config::Problems;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// Longest window accepted; the store keeps this much send history at most.
pub const MAX_WINDOW: Duration = Duration::from_secs(31 * 24 * 3600);

/// One or more limits that must all hold. Deserializes from a string or a
/// list of strings; a malformed entry is kept and reported by `validate`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RateLimit {
    specs: Vec<String>,
    windows: Vec<Window>,
}

/// At most `count` sends in any `length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    count: u32,
    length: Duration,
}

impl RateLimit {
    /// Parses one `N/window` limit (e.g. `10/h`), or fails with a message.
    pub fn parse(text: &str) -> Result<RateLimit, String> {
        RateLimit::parse_all(&[text.to_string()])
    }

    /// Parses several limits that must all hold.
    pub fn parse_all(specs: &[String]) -> Result<RateLimit, String> {
        let windows = specs.iter().map(|spec| parse_window(spec)).collect::<Result<Vec<_>, _>>()?;
        Ok(RateLimit { specs: specs.to_vec(), windows })
    }

    /// The limits as written.
    pub fn specs(&self) -> &[String] {
        &self.specs
    }

    /// Records every problem below `path`, e.g. `contacts.bob.rate_limit[1]`.
    pub fn validate(&self, path: &str, problems: &mut Problems) {
        let single = self.specs.len() == 1;
        for (index, spec) in self.specs.iter().enumerate() {
            if let Err(message) = parse_window(spec) {
                let entry_path = if single { path.to_string() } else { format!("{path}[{index}]") };
                problems.push(entry_path, message);
            }
        }
    }

    /// `None` when a send is allowed at `now`; otherwise the earliest instant
    /// at which every window has budget again, assuming no further sends.
    /// `recent_sends` need not be sorted; sends older than `max_window`
    /// (`Self::max_window`) do not matter.
    pub fn next_allowed(&self, recent_sends: &[DateTime<Utc>], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut newest_first = recent_sends.to_vec();
        newest_first.sort_unstable_by(|a, b| b.cmp(a));
        // Each window frees up once its count-th most recent send has aged
        // out; the conditions are independent, so the latest one decides.
        let allowed_at = self
            .windows
            .iter()
            .filter_map(|window| {
                let blocking = newest_first.get(window.count as usize - 1)?;
                let length = chrono::Duration::from_std(window.length).ok()?;
                Some(*blocking + length)
            })
            .max()?;
        (allowed_at > now).then_some(allowed_at)
    }

    /// The longest window: how much send history `next_allowed` needs.
    pub fn max_window(&self) -> Duration {
        self.windows.iter().map(|window| window.length).max().unwrap_or(Duration::ZERO)
    }
}

/// Parses `N/window` where window is `[k]unit` with unit `s`, `m`, `h`, `d`
/// or `w`: `10/h`, `5/15m`, `100/7d`.
fn parse_window(spec: &str) -> Result<Window, String> {
    let invalid = |why: &str| format!("invalid rate limit {spec:?}: {why}; write N/window such as 10/h, 30/d or 5/15m");
    let (count, window) = spec.trim().split_once('/').ok_or_else(|| invalid("missing '/'"))?;
    let count: u32 = count.trim().parse().map_err(|_| invalid("the count must be a whole number"))?;
    if count == 0 {
        return Err(invalid("the count must be at least 1"));
    }
    let window = window.trim();
    let unit_start = window.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| invalid("missing unit"))?;
    let (multiplier, unit) = window.split_at(unit_start);
    let multiplier: u64 =
        if multiplier.is_empty() { 1 } else { multiplier.parse().map_err(|_| invalid("bad window length"))? };
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(invalid("unknown unit, use s, m, h, d or w")),
    };
    let length = Duration::from_secs(multiplier.saturating_mul(unit_seconds));
    if length.is_zero() {
        return Err(invalid("the window must be longer than zero"));
    }
    if length > MAX_WINDOW {
        return Err(invalid("the window may be at most 31d"));
    }
    Ok(Window { count, length })
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let specs = crate::config::types::one_or_many(deserializer)?;
        // Keep malformed entries so that `validate` reports each with its path.
        let windows = specs.iter().filter_map(|spec| parse_window(spec).ok()).collect();
        Ok(RateLimit { specs, windows })
    }
}

impl Serialize for RateLimit {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.specs.as_slice() {
            [single] => serializer.serialize_str(single),
            specs => specs.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn limit(specs: &[&str]) -> RateLimit {
        RateLimit::parse_all(&specs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn parses_counts_and_windows() {
        let cases = [
            ("10/h", 10, 3600),
            ("30/d", 30, 86_400),
            ("5/15m", 5, 900),
            ("1/30s", 1, 30),
            ("100/7d", 100, 604_800),
            (" 2 / 2w ", 2, 1_209_600),
        ];
        for (spec, count, seconds) in cases {
            assert_eq!(parse_window(spec), Ok(Window { count, length: Duration::from_secs(seconds) }), "{spec}");
        }
        for bad in ["10", "0/h", "x/h", "10/", "10/h2", "10/0m", "10/y", "-1/h", "1/32d"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allows_until_the_budget_is_spent() {
        let limit = limit(&["3/h"]);
        let now = t(10_000);
        assert_eq!(limit.next_allowed(&[], now), None);
        assert_eq!(limit.next_allowed(&[t(9_000), t(9_500)], now), None);
        // Three sends in the last hour: the oldest of them frees a slot.
        let sends = [t(9_500), t(7_000), t(9_000)];
        assert_eq!(limit.next_allowed(&sends, now), Some(t(7_000 + 3_600)));
        // Sends older than the window do not count.
        let sends = [t(9_500), t(9_000), t(6_400)];
        assert_eq!(limit.next_allowed(&sends, now), None);
        // A send exactly one window ago has just aged out.
        let sends = [t(9_500), t(9_000), t(6_400)];
        assert_eq!(limit.next_allowed(&sends, t(6_400 + 3_600)), None);
        assert_eq!(limit.next_allowed(&sends, t(6_400 + 3_599)), Some(t(6_400 + 3_600)));
    }

    #[test]
    fn every_window_must_hold() {
        // GoAlert-style SMS limits.
        let limit = limit(&["1/m", "5/15m", "12/h"]);
        let now = t(100_000);
        // One send 30 s ago blocks the 1/m window for another 30 s.
        assert_eq!(limit.next_allowed(&[t(99_970)], now), Some(t(100_030)));
        // Five sends in 15 minutes: the 5/15m window decides.
        let sends: Vec<_> = (0..5).map(|i| t(99_200 + i * 120)).collect();
        assert_eq!(limit.next_allowed(&sends, now), Some(t(99_200 + 900)));
        // Twelve sends spread over the hour: the 12/h window decides even
        // though the shorter windows have room.
        let sends: Vec<_> = (0..12).map(|i| t(96_500 + i * 290)).collect();
        assert_eq!(limit.next_allowed(&sends, now), Some(t(96_500 + 3_600)));
        assert_eq!(limit.max_window(), Duration::from_secs(3_600));
    }

    #[test]
    fn next_allowed_is_really_allowed() {
        let limit = limit(&["2/10m", "3/h"]);
        let mut sends = Vec::new();
        let mut now = t(0);
        // Send as fast as allowed for three hours; check the windows never
        // overflow and that each wait was needed.
        while now < t(3 * 3_600) {
            match limit.next_allowed(&sends, now) {
                None => sends.push(now),
                Some(next) => {
                    assert!(next > now);
                    now = next;
                    continue;
                }
            }
            for (count, length) in [(2, 600), (3, 3_600)] {
                let in_window = sends.iter().filter(|s| **s > now - chrono::Duration::seconds(length)).count();
                assert!(in_window <= count, "{in_window} sends in {length}s at {now}");
            }
        }
        assert_eq!(sends.len(), 9, "3 per hour for 3 hours");
    }

    #[test]
    fn deserializes_one_or_many_and_validates_each() {
        let yaml = crate::config::yaml::parse_value("[\"10/h\", \"5/q\", \"0/d\"]").unwrap();
        let many: RateLimit = crate::config::yaml::from_value(yaml, "r").unwrap();
        assert_eq!(many.specs().len(), 3);
        let mut problems = Problems::default();
        many.validate("contacts.bob.rate_limit", &mut problems);
        let paths = problems.paths();
        assert_eq!(paths, ["contacts.bob.rate_limit[1]", "contacts.bob.rate_limit[2]"]);
        // Only the valid window limits until the config is fixed.
        assert_eq!(many.max_window(), Duration::from_secs(3_600));

        let yaml = crate::config::yaml::parse_value("\"30/d\"").unwrap();
        let one: RateLimit = crate::config::yaml::from_value(yaml, "r").unwrap();
        assert_eq!(one, limit(&["30/d"]));
        assert_eq!(crate::config::yaml::to_string(&one).trim(), "30/d");
        let mut problems = Problems::default();
        RateLimit::parse("3/h").unwrap().validate("p", &mut problems);
        assert!(problems.is_empty());
        let bad: RateLimit =
            crate::config::yaml::from_value(crate::config::yaml::parse_value("nope").unwrap(), "r").unwrap();
        bad.validate("p", &mut problems);
        assert_eq!(problems.0[0].path, "p");
    }
}
