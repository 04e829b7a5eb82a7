//! Go durations and base-2 sizes: parsing never panics, and a parsed
//! duration prints as text that parses back to the same value (to the
//! nanosecond rounding of Go's format).
#![no_main]

use checkit::config::types::{ByteSize, GoDuration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(duration) = GoDuration::parse(text) {
        let shown = duration.to_string();
        let again = GoDuration::parse(&shown).unwrap_or_else(|err| panic!("{text:?} printed as {shown:?}: {err}"));
        let difference = again.get().abs_diff(duration.get());
        assert!(difference.as_nanos() <= 1, "{text:?} → {shown:?} → {again:?}");
    }
    let _ = ByteSize::parse(text).map(ByteSize::limit);
});
