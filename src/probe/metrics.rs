//! The per-probe registry and its text encoder.
//!
//! Written by hand instead of using `prometheus-client` because `/probe` must
//! be byte-compatible with blackbox_exporter: text format 0.0.4, blackbox's
//! exact HELP strings (client_rust appends a full stop and infers suffixes),
//! Go's float formatting, families sorted by name. Every family is a gauge.

/// A fresh, per-probe set of gauge families.
///
/// Families are kept sorted by name in a `Vec`: a probe has a few dozen at
/// most, and looking one up by `&str` allocates nothing, where a `BTreeMap`
/// keyed by `String` needs an owned key for every `set`. Names and HELP
/// texts are the probers' constants, borrowed rather than copied into every
/// probe, and samples are kept in label order as they are added, so encoding
/// neither allocates nor sorts.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    families: Vec<(&'static str, Family)>,
}

#[derive(Debug, Clone)]
struct Family {
    help: &'static str,
    samples: Vec<Sample>,
}

#[derive(Debug, Clone)]
struct Sample {
    /// Label pairs sorted by name, as Go's client emits them.
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    /// True when the sample has exactly these label pairs, in any order
    /// (label names are unique within a sample).
    fn has_labels(&self, labels: &[(&str, &str)]) -> bool {
        self.labels.len() == labels.len()
            && labels.iter().all(|(name, value)| self.labels.iter().any(|(n, v)| n == name && v == value))
    }
}

impl Registry {
    /// Creates an empty registry, with room for a probe's families (7 for
    /// `tcp`, 13 for `http`) so that filling it does not regrow it.
    pub fn new() -> Self {
        Registry { families: Vec::with_capacity(16) }
    }

    /// Sets an unlabelled gauge.
    pub fn set(&mut self, name: &'static str, help: &'static str, value: f64) {
        self.set_with(name, help, &[], value);
    }

    /// Sets a labelled gauge, replacing the sample with the same label values.
    pub fn set_with(&mut self, name: &'static str, help: &'static str, labels: &[(&str, &str)], value: f64) {
        *self.sample_mut(name, help, labels) = value;
    }

    /// Adds to a labelled gauge (phases are summed across redirects).
    pub fn add_with(&mut self, name: &'static str, help: &'static str, labels: &[(&str, &str)], delta: f64) {
        *self.sample_mut(name, help, labels) += delta;
    }

    /// Creates each `phase` sample at 0 so the series exist even when a phase never ran.
    pub fn seed_phases(&mut self, name: &'static str, help: &'static str, phases: &[&str]) {
        for phase in phases {
            self.sample_mut(name, help, &[("phase", phase)]);
        }
    }

    /// Adds `delta` to the `phase` sample of `name`.
    pub fn add_phase(&mut self, name: &'static str, help: &'static str, phase: &str, delta: f64) {
        self.add_with(name, help, &[("phase", phase)], delta);
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.families.binary_search_by(|(family, _)| (*family).cmp(name))
    }

    fn family(&self, name: &str) -> Option<&Family> {
        self.position(name).ok().map(|index| &self.families[index].1)
    }

    /// The sample, created at 0 if new; allocates only for a new family or sample.
    fn sample_mut(&mut self, name: &'static str, help: &'static str, labels: &[(&str, &str)]) -> &mut f64 {
        let index = self.position(name).unwrap_or_else(|index| {
            self.families.insert(index, (name, Family { help, samples: Vec::new() }));
            index
        });
        let family = &mut self.families[index].1;
        let sample = match family.samples.iter().position(|sample| sample.has_labels(labels)) {
            Some(sample) => sample,
            None => {
                let mut sorted: Vec<(String, String)> =
                    labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                sorted.sort();
                let at = family.samples.partition_point(|sample| sample.labels < sorted);
                family.samples.insert(at, Sample { labels: sorted, value: 0.0 });
                at
            }
        };
        &mut family.samples[sample].value
    }

    /// The value of a sample, for tests and for the handler.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.family(name)?.samples.iter().find(|sample| sample.has_labels(labels)).map(|sample| sample.value)
    }

    /// True when the family exists.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    /// Removes a family (e.g. one that only exists in some cases).
    pub fn remove(&mut self, name: &str) {
        if let Ok(index) = self.position(name) {
            self.families.remove(index);
        }
    }

    /// Every sample as (family, help, sorted labels, value), families sorted
    /// by name; for re-exposing a probe's families with more labels.
    pub fn samples(&self) -> impl Iterator<Item = (&str, &str, &[(String, String)], f64)> {
        self.families.iter().flat_map(|(name, family)| {
            family.samples.iter().map(move |sample| (*name, family.help, sample.labels.as_slice(), sample.value))
        })
    }

    /// Family names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.families.iter().map(|(name, _)| *name)
    }

    /// Encodes in the Prometheus text format 0.0.4, families sorted by name and
    /// samples by label values, as Go's registry gathers them.
    pub fn encode(&self) -> String {
        // Sized up front: growing the answer copied it three or four times.
        let comments: usize = self.families.iter().map(|(name, family)| 2 * name.len() + family.help.len() + 24).sum();
        let lines: usize = self
            .samples()
            .map(|(name, _, labels, _)| {
                name.len() + 28 + labels.iter().map(|(l, v)| l.len() + v.len() + 4).sum::<usize>()
            })
            .sum();
        let size = comments + lines;
        let mut out = String::with_capacity(size);
        for (name, family) in &self.families {
            out.push_str("# HELP ");
            out.push_str(name);
            out.push(' ');
            escape_into(&mut out, family.help, false);
            out.push_str("\n# TYPE ");
            out.push_str(name);
            out.push_str(" gauge\n");
            for sample in &family.samples {
                out.push_str(name);
                if !sample.labels.is_empty() {
                    out.push('{');
                    for (index, (label, value)) in sample.labels.iter().enumerate() {
                        if index > 0 {
                            out.push(',');
                        }
                        out.push_str(label);
                        out.push_str("=\"");
                        escape_into(&mut out, value, true);
                        out.push('"');
                    }
                    out.push('}');
                }
                out.push(' ');
                write_float(&mut out, sample.value);
                out.push('\n');
            }
        }
        out
    }
}

pub(crate) fn escape_help(help: &str) -> String {
    let mut out = String::with_capacity(help.len());
    escape_into(&mut out, help, false);
    out
}

pub(crate) fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    escape_into(&mut out, value, true);
    out
}

/// Appends `text` escaped as the text format wants: backslash and newline
/// always, the double quote in label values. Runs without one are copied
/// whole (found with memchr's vectorised scan): HELP texts rarely have any,
/// and scanning them a character at a time was the largest part of encoding
/// a probe's answer.
fn escape_into(out: &mut String, text: &str, label_value: bool) {
    let mut rest = text;
    loop {
        let bytes = rest.as_bytes();
        let found =
            if label_value { memchr::memchr3(b'\\', b'\n', b'"', bytes) } else { memchr::memchr2(b'\\', b'\n', bytes) };
        let Some(at) = found else { break };
        out.push_str(&rest[..at]);
        out.push_str(match bytes[at] {
            b'\\' => "\\\\",
            b'\n' => "\\n",
            _ => "\\\"",
        });
        // The three escaped characters are ASCII: `at + 1` is a char boundary.
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

/// Appends [`format_float`]'s text; whole numbers below 1e6 (success flags,
/// status codes, versions), which Go writes as plain integers, skip its
/// formatting work.
fn write_float(out: &mut String, value: f64) {
    if value.fract() == 0.0 && value.abs() < 1e6 && !(value == 0.0 && value.is_sign_negative()) {
        // In range: |value| < 1e6 is exact as an i64.
        out.push_str(itoa::Buffer::new().format(value as i64));
    } else {
        write_go_float(out, value);
    }
}

/// Formats a float as Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which is what
/// the Go client writes: shortest round-trip digits, exponent form when the
/// decimal exponent is below -4 or at least 6, two-digit exponents.
pub fn format_float(value: f64) -> String {
    let mut out = String::new();
    write_go_float(&mut out, value);
    out
}

/// [`format_float`] appended to `out`. Every probe answer writes a few floats
/// (durations, the address hash): ryu finds the digits, which are Go's (both
/// are the shortest that round-trip), and only the layout is Go's own.
fn write_go_float(out: &mut String, value: f64) {
    if value.is_nan() {
        return out.push_str("NaN");
    }
    if value.is_infinite() {
        return out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    }
    if value == 0.0 {
        return out.push_str(if value.is_sign_negative() { "-0" } else { "0" });
    }
    let mut buffer = [0; 32];
    let (digits, exponent) = shortest_digits(value.abs(), &mut buffer);
    if value < 0.0 {
        out.push('-');
    }
    let (first, rest) = digits.split_at(1);
    // Go uses precision 6 for the %e/%f decision when formatting shortest.
    let eprec = 6;
    if exponent < -4 || exponent >= eprec {
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push_str(if exponent < 0 { "e-" } else { "e+" });
        if exponent.unsigned_abs() < 10 {
            out.push('0');
        }
        out.push_str(itoa::Buffer::new().format(exponent.unsigned_abs()));
    } else if exponent < 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', exponent.unsigned_abs() as usize - 1));
        out.push_str(digits);
    } else {
        let integer_len = exponent.unsigned_abs() as usize + 1;
        if digits.len() <= integer_len {
            out.push_str(digits);
            out.extend(std::iter::repeat_n('0', integer_len - digits.len()));
        } else {
            let (integer, fraction) = digits.split_at(integer_len);
            out.push_str(integer);
            out.push('.');
            out.push_str(fraction);
        }
    }
}

/// The shortest round-trip significant digits of a finite `value > 0`
/// (no leading or trailing zeros, at least one digit) and the decimal
/// exponent of the first, read from ryu's text ("1234.5", "0.00012",
/// "1.2e-7", "1e30").
fn shortest_digits(value: f64, buffer: &mut [u8; 32]) -> (&str, i32) {
    let mut ryu = ryu::Buffer::new();
    let text = ryu.format_finite(value);
    let (mantissa, exponent) = match text.split_once('e') {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // Digits to skip (a "0." and the fraction's leading zeros) and the first
    // significant digit's power of ten.
    let (skip, first) = if integer == "0" {
        let zeros = fraction.bytes().take_while(|&b| b == b'0').count();
        (zeros + 1, -i32::try_from(zeros + 1).unwrap_or(i32::MAX))
    } else {
        (0, i32::try_from(integer.len()).unwrap_or(1) - 1)
    };
    let mut len = 0;
    for (slot, digit) in buffer.iter_mut().zip(integer.bytes().chain(fraction.bytes()).skip(skip)) {
        *slot = digit;
        len += 1;
    }
    // ryu writes at most 17 significant digits and a few zeros: all fit.
    while len > 1 && buffer.get(len - 1) == Some(&b'0') {
        len -= 1;
    }
    let digits = std::str::from_utf8(buffer.get(..len.max(1)).unwrap_or(b"0")).unwrap_or("0");
    (digits, first.saturating_add(exponent))
}

/// FNV-1a (32 bit) over the address bytes, as blackbox's `probe_ip_addr_hash`.
pub fn ip_hash(ip: std::net::IpAddr) -> f64 {
    let (v4, v6);
    let bytes: &[u8] = match ip {
        std::net::IpAddr::V4(ip) => {
            v4 = ip.octets();
            &v4
        }
        std::net::IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(ip) => {
                v4 = ip.octets();
                &v4
            }
            None => {
                v6 = ip.octets();
                &v6
            }
        },
    };
    let mut hash: u32 = 0x811c_9dc5;
    for &byte in bytes {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    f64::from(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_digits_are_core_s_shortest_digits() {
        // core's `{:e}` also prints the shortest round-trip digits; ryu's
        // layout, read back, must give as many digits, the same exponent,
        // and the value again. (The digits themselves may differ in the last
        // place on an exact tie between two 17-digit candidates, which ryu
        // rounds to even and core rounds up.)
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..20_000 {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let value = match round % 3 {
                0 => f64::from_bits(state >> 1),
                1 => (state >> 11) as f64 / 1e9,
                _ => (state >> 40) as f64 * 1e-6,
            };
            if !value.is_finite() || value == 0.0 {
                continue;
            }
            let core = format!("{value:e}");
            let (mantissa, exponent) = core.split_once('e').unwrap();
            let mut buffer = [0; 32];
            let (digits, power) = shortest_digits(value, &mut buffer);
            assert_eq!(digits.len(), mantissa.replace('.', "").len(), "{value}");
            assert_eq!(power, exponent.parse::<i32>().unwrap(), "{value}");
            let (first, rest) = digits.split_at(1);
            assert_eq!(format!("{first}.{rest}e{power}").parse::<f64>().unwrap(), value, "{value}");
        }
    }

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
            (-0.0, "-0"),
            (999_999.0, "999999"),
            (1e-7, "1e-07"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (0.1, "0.1"),
            (12.5, "12.5"),
            (123_456.789, "123456.789"),
            (1_234_567.5, "1.2345675e+06"),
            (1e15, "1e+15"),
            (1e21, "1e+21"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
        ] {
            assert_eq!(format_float(value), expected, "{value}");
            let mut written = String::new();
            write_float(&mut written, value);
            assert_eq!(written, expected, "{value}");
        }
    }

    #[test]
    fn ip_hash_matches_blackbox() {
        assert_eq!(ip_hash("127.0.0.1".parse().unwrap()), 3_668_918_509.0);
    }

    #[test]
    fn escapes_like_the_text_format() {
        assert_eq!(escape_help("plain"), "plain");
        assert_eq!(escape_help("a\\b\nc \"q\" é\n"), "a\\\\b\\nc \"q\" é\\n");
        assert_eq!(escape_label_value("\"x\"\\\né"), "\\\"x\\\"\\\\\\né");
        assert_eq!(escape_label_value(""), "");
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
