//! The webhook body parser: any bytes give a notification or a typed error.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let received_at = Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).single().expect("valid time");
    if let Ok(notification) = checkit::bridge::payload::parse(data, received_at) {
        // Whatever parsed is stored as JSON and read back by the outbox.
        let stored = serde_json::to_vec(&notification).expect("a parsed notification serialises");
        let _: checkit::bridge::payload::Notification = serde_json::from_slice(&stored).expect("and reads back");
    }
});
