//! The three report files, written into one folder, each atomically: a reader (a CI step
//! collecting `junit.xml`, a browser reloading `report.html`) sees the previous file or the
//! whole new one, never half of one.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::model::VerifyReport;

/// Where [`write_all`] wrote each report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `report.json`: the findings, every figure.
    pub json: PathBuf,
    /// `junit.xml`: one test case per check, for CI.
    pub junit: PathBuf,
    /// `report.html`: the page with the plots.
    pub html: PathBuf,
}

/// Writes `report.json`, `junit.xml` and `report.html` into `dir`, creating it if need be.
/// Each file is written to a temporary file beside it and renamed over it.
///
/// # Errors
///
/// What the file system says, with the path it was said about.
pub fn write_all(report: &VerifyReport, dir: &Path) -> io::Result<Paths> {
    fs::create_dir_all(dir).map_err(|error| about(dir, error))?;
    let paths = Paths {
        json: dir.join("report.json"),
        junit: dir.join("junit.xml"),
        html: dir.join("report.html"),
    };
    write_atomically(&paths.json, super::json(report).as_bytes())?;
    write_atomically(&paths.junit, super::junit(report).as_bytes())?;
    write_atomically(&paths.html, super::html(report).as_bytes())?;
    Ok(paths)
}

/// Makes sure the reports can be written in `dir` before a run: the folder made, a file
/// written in it and removed. A run of minutes must not end on "cannot write".
///
/// # Errors
///
/// What the file system says, with the path it was said about.
pub fn prepare(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir).map_err(|error| about(dir, error))?;
    let probe = dir.join(format!(".probe.{}.tmp", std::process::id()));
    fs::write(&probe, b"").map_err(|error| about(&probe, error))?;
    fs::remove_file(&probe).map_err(|error| about(&probe, error))
}

/// Writes `contents` to `path` through a temporary file in the same folder and a rename.
fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| fs::rename(&temporary, path));
    if let Err(error) = renamed {
        let _ = fs::remove_file(&temporary);
        return Err(about(path, error));
    }
    Ok(())
}

/// `error`, saying which path it was about.
fn about(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}
