//! The real browser the HTML tests drive: Debian's `chromium` through `playwright-core` from
//! npm (its scripts and `node_modules` in `tests/dashboard/`). `.ci/run` installs both and
//! sets `BLASTWALL_REQUIRE_BROWSER=1`, so there a missing browser fails the test; elsewhere
//! the test is skipped, loudly.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The scripts' folder when the browser can run; `None` (after saying so) when it cannot
/// and nobody requires it. Panics when `BLASTWALL_REQUIRE_BROWSER=1` and it cannot run.
pub fn browser_or_skip(test: &str) -> Option<PathBuf> {
    match browser() {
        Ok(folder) => Some(folder),
        Err(missing) if std::env::var("BLASTWALL_REQUIRE_BROWSER").as_deref() == Ok("1") => {
            panic!("BLASTWALL_REQUIRE_BROWSER=1 but the {test} cannot run: {missing}")
        }
        Err(missing) => {
            eprintln!("\n!!!! SKIPPED the {test}: {missing} !!!!\n");
            None
        }
    }
}

/// The scripts' folder, and why the browser cannot run, if it cannot.
fn browser() -> Result<PathBuf, String> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(format!(
            "no chromium at {chromium} (apt-get install chromium)"
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("no node on the PATH".into());
    }
    if !folder.join("node_modules/playwright-core").exists() {
        return Err(format!(
            "no playwright-core: run npm ci in {}",
            folder.display()
        ));
    }
    Ok(folder)
}
