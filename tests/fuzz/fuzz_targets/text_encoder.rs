//! The probe registry's text encoder: any labels and values, under names and
//! HELP texts from a table (they are the probers' `&'static str` constants,
//! never input), encode without panicking, one sample line per series.
#![no_main]

use checkit::probe::metrics::{Registry, format_float};
use libfuzzer_sys::fuzz_target;

/// Names and HELP texts, with what a HELP text may hold that needs escaping.
const NAMES: [&str; 4] = ["probe_success", "probe_duration_seconds", "a", "probe_http_status_code"];
const HELPS: [&str; 4] = ["Displays whether or not the probe was a success", "back\\slash", "new\nline", "\"quoted\" ü"];

fuzz_target!(|input: (Vec<(u8, u8, Vec<(String, String)>, f64)>, f64)| {
    let (series, extra) = input;
    let _ = format_float(extra);
    let mut registry = Registry::new();
    for (name, help, labels, value) in series.iter().take(64) {
        let labels: Vec<(&str, &str)> = labels.iter().take(8).map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let name = NAMES[usize::from(*name) % NAMES.len()];
        let help = HELPS[usize::from(*help) % HELPS.len()];
        registry.set_with(name, help, &labels, *value);
    }
    let text = registry.encode();
    assert!(text.len() < 64 * 1024 * 1024);
});
