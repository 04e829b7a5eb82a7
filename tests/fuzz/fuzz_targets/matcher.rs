//! Alertmanager matchers: parsing never panics and a parsed matcher set can
//! be evaluated against labels.
#![no_main]

use checkit::bridge::matcher::Matchers;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(matchers) = Matchers::parse(text) {
        let labels: BTreeMap<String, String> =
            [("alertname", "Down"), ("severity", "page"), ("", "")].map(|(k, v)| (k.into(), v.into())).into();
        let _ = matchers.matches(&labels);
    }
});
