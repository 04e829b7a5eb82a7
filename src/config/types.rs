//! Typed config values parsed at load: Go durations, RE2-style regexes,
//! base-2 byte sizes and secrets that never print.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_with::{DeserializeFromStr, SerializeDisplay};
use std::fmt;
use std::time::Duration;

/// A duration in Go syntax (`1m30s`, `500ms`, `1.5h`).
///
/// Written by hand because blackbox.yml uses Go's `time.ParseDuration`
/// grammar, which general-purpose crates do not match (they accept `1d`,
/// spaces or bare numbers, and reject `1.5h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash, DeserializeFromStr, SerializeDisplay)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    /// Parses Go duration syntax. Negative durations are rejected: no config key takes one.
    pub fn parse(text: &str) -> Result<Self, String> {
        let original = text;
        let text = text.strip_prefix('+').unwrap_or(text);
        if text.starts_with('-') {
            return Err(format!("negative duration {original:?} is not allowed"));
        }
        if text == "0" {
            return Ok(GoDuration(Duration::ZERO));
        }
        if text.is_empty() {
            return Err(format!("invalid duration {original:?}"));
        }
        let mut rest = text;
        let mut total_nanos: f64 = 0.0;
        while !rest.is_empty() {
            let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
            let number = &rest[..number_len];
            if number.is_empty() || number == "." {
                return Err(format!("invalid duration {original:?}"));
            }
            let value: f64 = number.parse().map_err(|_| format!("invalid duration {original:?}"))?;
            rest = &rest[number_len..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let nanos_per_unit = match unit {
                "ns" => 1.0,
                "us" | "µs" | "μs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                "" => return Err(format!("missing unit in duration {original:?}")),
                other => return Err(format!("unknown unit {other:?} in duration {original:?}")),
            };
            total_nanos += value * nanos_per_unit;
        }
        // Go's limit (an int64 of nanoseconds, ~292 years): larger values
        // would overflow the clock arithmetic that later adds them to now.
        if total_nanos > i64::MAX as f64 {
            return Err(format!("duration {original:?} is too long (at most 2562047h)"));
        }
        Ok(GoDuration(Duration::from_nanos(total_nanos.round() as u64)))
    }

    /// The wrapped duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for GoDuration {
    /// Formats like Go's `Duration.String()`: `0s`, `500ms`, `1m30s`, `1h0m0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        if nanos < 1_000 {
            return write!(f, "{nanos}ns");
        }
        if nanos < 1_000_000 {
            return write!(f, "{}µs", trim_fraction(nanos as f64 / 1e3));
        }
        if nanos < 1_000_000_000 {
            return write!(f, "{}ms", trim_fraction(nanos as f64 / 1e6));
        }
        let hours = nanos / 3_600_000_000_000;
        let minutes = (nanos / 60_000_000_000) % 60;
        let seconds = (nanos % 60_000_000_000) as f64 / 1e9;
        if hours > 0 {
            write!(f, "{hours}h{minutes}m{}s", trim_fraction(seconds))
        } else if minutes > 0 {
            write!(f, "{minutes}m{}s", trim_fraction(seconds))
        } else {
            write!(f, "{}s", trim_fraction(seconds))
        }
    }
}

fn trim_fraction(value: f64) -> String {
    let text = format!("{value:.9}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

impl std::str::FromStr for GoDuration {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        GoDuration::parse(text)
    }
}

/// A regular expression compiled at load time. Like Go's RE2 it is
/// unanchored: `is_match` finds it anywhere in the input.
#[derive(Clone, DeserializeFromStr, SerializeDisplay)]
pub struct Regex(pub regex::Regex);

impl Regex {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Self, String> {
        regex::Regex::new(pattern).map(Regex).map_err(|err| format!("invalid regular expression {pattern:?}: {err}"))
    }
    /// The original pattern.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::ops::Deref for Regex {
    type Target = regex::Regex;
    fn deref(&self) -> &regex::Regex {
        &self.0
    }
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0.as_str())
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl std::str::FromStr for Regex {
    type Err = String;
    fn from_str(pattern: &str) -> Result<Self, String> {
        Regex::new(pattern)
    }
}

/// The original pattern, as `/config` shows it.
impl fmt::Display for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A size with base-2 units, as prometheus/common reads it: `1MB` = 1 MiB.
/// Zero or negative means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ByteSize(pub i64);

impl ByteSize {
    /// Parses `512`, `10KB`, `1MiB`, `2GB`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let split = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '-')).unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let number: i64 = number.parse().map_err(|_| format!("invalid size {text:?}"))?;
        let shift = match unit.trim() {
            "" | "B" => 0,
            "KB" | "KiB" | "K" => 10,
            "MB" | "MiB" | "M" => 20,
            "GB" | "GiB" | "G" => 30,
            "TB" | "TiB" | "T" => 40,
            "PB" | "PiB" | "P" => 50,
            "EB" | "EiB" | "E" => 60,
            other => return Err(format!("unknown unit {other:?} in size {text:?}")),
        };
        number.checked_mul(1i64 << shift).map(ByteSize).ok_or_else(|| format!("size {text:?} is too large"))
    }
    /// The limit in bytes, or `None` when unlimited.
    pub fn limit(self) -> Option<u64> {
        (self.0 > 0).then_some(self.0 as u64)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(number) => Ok(ByteSize(number)),
            Raw::Text(text) => ByteSize::parse(&text).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.0)
    }
}

/// A secret string: shown as `<secret>` in `/config`, debug output and logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl Secret {
    /// The secret value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<secret>")
    }
}

/// What a URL password is replaced with, as Go's `url.URL.Redacted` does
/// (so `/config` reads like blackbox's).
pub const REDACTED_PASSWORD: &str = "xxxxx";

/// Replaces the password of every `scheme://user:password@host` in `text`
/// with [`REDACTED_PASSWORD`]; the rest of the text is kept. Used for every
/// URL checkit shows: `/config`, debug output, `/logs` and log lines.
pub fn redact_url_passwords(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("://") || !text.contains('@') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let authority_start = start + 3;
        out.push_str(&rest[..authority_start]);
        let after = &rest[authority_start..];
        let authority_len = after
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`') || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..authority_len];
        match authority.rsplit_once('@').and_then(|(userinfo, host)| Some((userinfo.split_once(':')?.0, host))) {
            Some((user, host)) => {
                out.push_str(user);
                out.push(':');
                out.push_str(REDACTED_PASSWORD);
                out.push('@');
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        rest = &after[authority_len..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// Serialises a URL with its password redacted (`serialize_with` for config
/// fields that may hold credentials, such as `proxy_url`).
pub fn serialize_redacted_url<S: Serializer, T: AsRef<str>>(url: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_url_passwords(url.as_ref()))
}

/// [`serialize_redacted_url`] for an optional URL.
pub fn serialize_redacted_url_option<S: Serializer>(url: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => serialize_redacted_url(url, serializer),
        None => serializer.serialize_none(),
    }
}

/// Reads a secret from a `*_file` path, trimming one trailing newline the way
/// editors leave it.
pub fn read_secret_file(path: &str) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("cannot read secret file {path:?}: {err}"))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    Ok(Secret(text.to_string()))
}

/// Deserializes one string or a list of strings (`a` or `[a, b]`, as
/// Alertmanager's `matchers:` takes them) into a list.
pub fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Raw::deserialize(deserializer)? {
        Raw::One(text) => vec![text],
        Raw::Many(texts) => texts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_and_print_like_go() {
        for (text, millis, shown) in [
            ("5s", 5_000, "5s"),
            ("1m30s", 90_000, "1m30s"),
            ("500ms", 500, "500ms"),
            ("1.5h", 5_400_000, "1h30m0s"),
            ("0", 0, "0s"),
            ("2h", 7_200_000, "2h0m0s"),
            ("1.5s", 1_500, "1.5s"),
        ] {
            let parsed = GoDuration::parse(text).unwrap();
            assert_eq!(parsed.0, Duration::from_millis(millis), "{text}");
            assert_eq!(parsed.to_string(), shown, "{text}");
        }
        assert_eq!(GoDuration::parse("2562047h").unwrap().0, Duration::from_secs(2_562_047 * 3600));
        for bad in ["1d", "", "5", "s", "1 s", "-1s", "1x", "2562048h", "5000000h", "99999999999999999999999h"] {
            assert!(GoDuration::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(
            redact_url_passwords(
                "proxy http://u:p%40ss@h:1/x and https://h/y?a=b@c and ftp://only@h msg=\"s://a:b@c\""
            ),
            "proxy http://u:xxxxx@h:1/x and https://h/y?a=b@c and ftp://only@h msg=\"s://a:xxxxx@c\""
        );
        assert!(matches!(redact_url_passwords("no urls here"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn sizes_are_base_two() {
        assert_eq!(ByteSize::parse("1MB").unwrap().0, 1 << 20);
        assert_eq!(ByteSize::parse("10KB").unwrap().0, 10 << 10);
        assert_eq!(ByteSize::parse("512").unwrap().0, 512);
        assert!(ByteSize::parse("1XB").is_err());
        assert_eq!(ByteSize(-1).limit(), None);
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret("hunter2".into());
        assert_eq!(format!("{secret:?}"), "<secret>");
        assert_eq!(super::super::yaml::to_string(&secret).trim(), "<secret>");
    }
}
