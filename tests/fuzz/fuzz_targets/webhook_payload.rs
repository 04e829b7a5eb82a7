//! The webhook body parser: any bytes give a notification or a typed error,
//! and parsing straight into the stored form (what the webhook does) agrees
//! with parsing whole.
#![no_main]

use chrono::{TimeZone, Utc};
use checkit::bridge::payload::{Notification, parse, parse_encoded};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let received_at = Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).single().expect("valid time");
    match (parse(data, received_at), parse_encoded(data, received_at)) {
        (Ok(notification), Ok(encoded)) => {
            // Whatever parsed is stored as JSON and read back by the outbox.
            let stored = serde_json::to_vec(&notification).expect("a parsed notification serialises");
            let _: Notification = serde_json::from_slice(&stored).expect("and reads back");
            assert_eq!(encoded.decode().expect("the stored form reads back"), notification);
        }
        (Err(whole), Err(encoded)) => assert_eq!(whole.to_string(), encoded.to_string()),
        (whole, encoded) => panic!("parse gave {whole:?}, parse_encoded {encoded:?}"),
    }
});
