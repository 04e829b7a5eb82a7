//! The probe registry's text encoder: any names, help, labels and values
//! encode without panicking, one sample line per series.
#![no_main]

use checkit::probe::metrics::{Registry, format_float};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<(String, String, Vec<(String, String)>, f64)>, f64)| {
    let (series, extra) = input;
    let _ = format_float(extra);
    let mut registry = Registry::new();
    for (name, help, labels, value) in series.iter().take(64) {
        let labels: Vec<(&str, &str)> = labels.iter().take(8).map(|(k, v)| (k.as_str(), v.as_str())).collect();
        registry.set_with(name, help, &labels, *value);
    }
    let text = registry.encode();
    assert!(text.len() < 64 * 1024 * 1024);
});
