//! The config loader: any text gives a config or a list of problems; a
//! config that loads renders for `/config`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // `*_file` keys would read whatever path the input names.
    if text.contains("_file") {
        return;
    }
    if let Ok(config) = checkit::settings::Config::parse(text) {
        let _ = config.to_yaml();
    }
});
