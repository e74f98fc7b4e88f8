//! Any text given to `blastwall load --expect` is a threshold or an error naming what is
//! wrong: never a panic. A threshold that parses prints back as text that parses to the same
//! figure and comparison (the bound is shown rounded).
#![no_main]

use blastwall_chaos::load::Threshold;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    match text.parse::<Threshold>() {
        Ok(threshold) => {
            let again: Threshold = threshold
                .to_string()
                .parse()
                .expect("a threshold's text parses");
            assert_eq!(again.figure, threshold.figure);
            assert_eq!(again.comparison, threshold.comparison);
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
