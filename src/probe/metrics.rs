//! The per-probe registry and its text encoder.
//!
//! Written by hand instead of using `prometheus-client` because `/probe` must
//! be byte-compatible with blackbox_exporter: text format 0.0.4, blackbox's
//! exact HELP strings (client_rust appends a full stop and infers suffixes),
//! Go's float formatting, families sorted by name. Every family is a gauge.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A fresh, per-probe set of gauge families.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    families: BTreeMap<String, Family>,
}

#[derive(Debug, Clone)]
struct Family {
    help: String,
    samples: Vec<Sample>,
}

#[derive(Debug, Clone)]
struct Sample {
    /// Label pairs sorted by name, as Go's client emits them.
    labels: Vec<(String, String)>,
    value: f64,
}

impl Registry {
    /// Creates an empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets an unlabelled gauge.
    pub fn set(&mut self, name: &str, help: &str, value: f64) {
        self.set_with(name, help, &[], value);
    }

    /// Sets a labelled gauge, replacing the sample with the same label values.
    pub fn set_with(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        *self.sample_mut(name, help, labels) = value;
    }

    /// Adds to a labelled gauge (phases are summed across redirects).
    pub fn add_with(&mut self, name: &str, help: &str, labels: &[(&str, &str)], delta: f64) {
        *self.sample_mut(name, help, labels) += delta;
    }

    /// Creates each `phase` sample at 0 so the series exist even when a phase never ran.
    pub fn seed_phases(&mut self, name: &str, help: &str, phases: &[&str]) {
        for phase in phases {
            self.sample_mut(name, help, &[("phase", phase)]);
        }
    }

    /// Adds `delta` to the `phase` sample of `name`.
    pub fn add_phase(&mut self, name: &str, help: &str, phase: &str, delta: f64) {
        self.add_with(name, help, &[("phase", phase)], delta);
    }

    fn sample_mut(&mut self, name: &str, help: &str, labels: &[(&str, &str)]) -> &mut f64 {
        let family = self
            .families
            .entry(name.to_string())
            .or_insert_with(|| Family { help: help.to_string(), samples: Vec::new() });
        let mut sorted: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        sorted.sort();
        let index = match family.samples.iter().position(|sample| sample.labels == sorted) {
            Some(index) => index,
            None => {
                family.samples.push(Sample { labels: sorted, value: 0.0 });
                family.samples.len() - 1
            }
        };
        &mut family.samples[index].value
    }

    /// The value of a sample, for tests and for the handler.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut sorted: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        sorted.sort();
        self.families.get(name)?.samples.iter().find(|sample| sample.labels == sorted).map(|sample| sample.value)
    }

    /// True when the family exists.
    pub fn contains(&self, name: &str) -> bool {
        self.families.contains_key(name)
    }

    /// Removes a family (e.g. one that only exists in some cases).
    pub fn remove(&mut self, name: &str) {
        self.families.remove(name);
    }

    /// Every sample as (family, help, sorted labels, value), families sorted
    /// by name; for re-exposing a probe's families with more labels.
    pub fn samples(&self) -> impl Iterator<Item = (&str, &str, &[(String, String)], f64)> {
        self.families.iter().flat_map(|(name, family)| {
            family
                .samples
                .iter()
                .map(move |sample| (name.as_str(), family.help.as_str(), sample.labels.as_slice(), sample.value))
        })
    }

    /// Family names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.families.keys().map(String::as_str)
    }

    /// Encodes in the Prometheus text format 0.0.4, families sorted by name and
    /// samples by label values, as Go's registry gathers them.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.families.len() * 128);
        for (name, family) in &self.families {
            let mut samples: Vec<&Sample> = family.samples.iter().collect();
            samples.sort_by(|a, b| a.labels.cmp(&b.labels));
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&family.help));
            let _ = writeln!(out, "# TYPE {name} gauge");
            for sample in samples {
                out.push_str(name);
                if !sample.labels.is_empty() {
                    out.push('{');
                    for (index, (label, value)) in sample.labels.iter().enumerate() {
                        if index > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{label}=\"{}\"", escape_label_value(value));
                    }
                    out.push('}');
                }
                out.push(' ');
                out.push_str(&format_float(sample.value));
                out.push('\n');
            }
        }
        out
    }
}

pub(crate) fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

pub(crate) fn escape_label_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Formats a float as Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which is what
/// the Go client writes: shortest round-trip digits, exponent form when the
/// decimal exponent is below -4 or at least 6, two-digit exponents.
pub fn format_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // Rust's `{:e}` gives the same shortest round-trip digits: "1.797959492e9".
    let sci = format!("{value:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let digit_count = digits.len() as i32;
    // Go uses precision 6 for the %e/%f decision when formatting shortest.
    let eprec = 6;
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if exponent < -4 || exponent >= eprec {
        out.push_str(&digits[..1]);
        if digit_count > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exponent.abs());
    } else if exponent < 0 {
        out.push_str("0.");
        for _ in 0..(-exponent - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let integer_len = (exponent + 1) as usize;
        if digits.len() <= integer_len {
            out.push_str(&digits);
            for _ in digits.len()..integer_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..integer_len]);
            out.push('.');
            out.push_str(&digits[integer_len..]);
        }
    }
    out
}

/// FNV-1a (32 bit) over the address bytes, as blackbox's `probe_ip_addr_hash`.
pub fn ip_hash(ip: std::net::IpAddr) -> f64 {
    let bytes: Vec<u8> = match ip {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets().to_vec(),
            None => v6.octets().to_vec(),
        },
    };
    let mut hash: u32 = 0x811c_9dc5;
    for byte in bytes {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    f64::from(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_format_like_go() {
        for (value, expected) in [
            (1.0, "1"),
            (0.0, "0"),
            (200.0, "200"),
            (64.0, "64"),
            (1.1, "1.1"),
            (1_797_959_492.0, "1.797959492e+09"),
            (-62_135_596_800.0, "-6.21355968e+10"),
            (1_445_412_480.0, "1.44541248e+09"),
            (2_024_010_101.0, "2.024010101e+09"),
            (3_668_918_509.0, "3.668918509e+09"),
            (0.000962941, "0.000962941"),
            (1.4903e-05, "1.4903e-05"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e6, "1e+06"),
            (100000.0, "100000"),
            (0.5, "0.5"),
            (-1.0, "-1"),
            (4096.0, "4096"),
        ] {
            assert_eq!(format_float(value), expected, "{value}");
        }
    }

    #[test]
    fn ip_hash_matches_blackbox() {
        assert_eq!(ip_hash("127.0.0.1".parse().unwrap()), 3_668_918_509.0);
    }

    #[test]
    fn encodes_sorted_text_format() {
        let mut registry = Registry::new();
        registry.set("probe_success", "Displays whether or not the probe was a success", 1.0);
        registry.seed_phases(
            "probe_http_duration_seconds",
            "Duration of http request by phase, summed over all redirects",
            &["tls", "connect"],
        );
        registry.add_phase(
            "probe_http_duration_seconds",
            "Duration of http request by phase, summed over all redirects",
            "connect",
            0.25,
        );
        registry.set_with(
            "probe_tls_version_info",
            "Returns the TLS version used or NaN when unknown",
            &[("version", "TLS 1.3")],
            1.0,
        );
        assert_eq!(
            registry.encode(),
            "# HELP probe_http_duration_seconds Duration of http request by phase, summed over all redirects\n\
             # TYPE probe_http_duration_seconds gauge\n\
             probe_http_duration_seconds{phase=\"connect\"} 0.25\n\
             probe_http_duration_seconds{phase=\"tls\"} 0\n\
             # HELP probe_success Displays whether or not the probe was a success\n\
             # TYPE probe_success gauge\n\
             probe_success 1\n\
             # HELP probe_tls_version_info Returns the TLS version used or NaN when unknown\n\
             # TYPE probe_tls_version_info gauge\n\
             probe_tls_version_info{version=\"TLS 1.3\"} 1\n"
        );
    }
}
