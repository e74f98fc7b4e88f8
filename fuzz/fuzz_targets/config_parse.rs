//! Any text given as a config is either a valid config or located errors: never a panic,
//! and every error's location lies inside the text.
#![no_main]

use std::path::Path;

use blastwall_proxy::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(errors) = Config::parse(text, Path::new("fuzz.toml")) {
        let lines = text.lines().count().max(1);
        for error in &errors.0 {
            if let Some(location) = &error.location {
                assert!(location.line >= 1 && location.line <= lines + 1, "{error}");
                assert!(location.column >= 1, "{error}");
            }
            let _ = error.to_string();
        }
    }
});
