//! Any text given as a fault-tolerance spec is either a valid spec or located errors: never
//! a panic, and every error's location lies inside the text.
#![no_main]

use std::path::Path;

use blastwall_chaos::spec::Spec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(errors) = Spec::parse(text, Path::new("fuzz.toml")) {
        let lines = text.lines().count().max(1);
        for error in &errors.0 {
            if let Some((line, column)) = error.at {
                assert!(line >= 1 && line <= lines + 1, "{error}");
                assert!(column >= 1, "{error}");
            }
            let _ = error.to_string();
        }
    }
});
