//! The access log's writer: requests append their line to one shared buffer, and one
//! thread that owns the file swaps the buffer out and writes it, so the request path never
//! waits on a disk.
//!
//! NOTE: a buffer rather than a channel of lines: a line then costs one uncontended lock and
//! a copy into memory that is reused, with no allocation per line, no free on another thread
//! and no wake-up of the writer. (Against a channel of `String`s the measured difference
//! was inside the noise of a 2-core machine; see bench/README.md.)
//!
//! When the disk is slower than the traffic, the buffer reaches [`CAPACITY`] bytes and
//! further lines are dropped and counted ([`AccessLog::dropped`]) rather than slowing requests
//! down or growing memory without bound: an access log that costs availability defeats the
//! point of the proxy. The thread wakes every [`WRITE_EVERY`], writes what is buffered and
//! flushes, so a line is on disk within about that of the request. The file is opened again
//! on request ([`AccessLog::reopen`], on SIGHUP or a reload), which is how log rotation works:
//! rename the file, then signal.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::date::DateCache;
use super::json::ArrayBuffer;
use super::line::Line;
use super::wall_clock::WallClock;
use crate::config::telemetry::{AccessLogConfig, AccessLogTarget};

/// Bytes waiting for the writer at most (some 30k lines); past this lines are dropped.
pub(crate) const CAPACITY: usize = 8 * 1024 * 1024;

/// How often the writer wakes to write what is buffered. It polls rather than being woken
/// per line: a wake-up is a futex syscall on the request path and a context switch.
const WRITE_EVERY: Duration = Duration::from_millis(50);

/// Where the request path writes lines.
#[derive(Debug)]
pub(crate) struct AccessLog {
    /// Where lines go, to tell on reload whether the writer can be kept.
    pub target: AccessLogTarget,
    /// When requests arrived, in wall-clock time.
    pub clock: WallClock,
    shared: Arc<Shared>,
}

/// Bytes of a line, its time excepted, written on the stack: a line is about 300, a trace id
/// and an error some 90 more. (The stack buffer is zeroed for every line.)
const LINE: usize = 400;

/// What a line is appended to, under the log's lock.
#[derive(Debug)]
struct Pending {
    /// Lines not yet written.
    lines: Vec<u8>,
    /// The date up to the second, written once a second.
    dates: DateCache,
}

/// What the request path and the writer share.
#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    /// Bytes `pending` may hold.
    capacity: usize,
    dropped: AtomicU64,
    reopen: AtomicBool,
    /// Set when the last `AccessLog` is dropped: the writer writes what is left and ends.
    closed: AtomicBool,
}

impl AccessLog {
    /// Opens the target and starts its writer thread.
    pub(crate) fn start(config: &AccessLogConfig) -> std::io::Result<Self> {
        let output = Output::open(&config.target)?;
        let log = Self::unstarted(config.target.clone(), CAPACITY);
        let shared = log.shared.clone();
        std::thread::Builder::new()
            .name("blastwall-access-log".to_owned())
            .spawn(move || write_lines(&shared, output))?;
        Ok(log)
    }

    /// The log, without a writer (tests drain it with `take`).
    fn unstarted(target: AccessLogTarget, capacity: usize) -> Self {
        Self {
            target,
            clock: WallClock::new(),
            shared: Arc::new(Shared {
                pending: Mutex::new(Pending {
                    lines: Vec::with_capacity(64 * 1024),
                    dates: DateCache::default(),
                }),
                capacity,
                dropped: AtomicU64::new(0),
                reopen: AtomicBool::new(false),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Appends `line`; drops it (and counts it) if the writer is behind.
    ///
    /// NOTE: all but the time is written on the stack, outside the lock; under it go only the
    /// time (the date cache lives there, under a lock a line takes anyway) and one copy. A
    /// line too long for the stack is written under the lock, rather than allocate.
    pub(crate) fn append(&self, line: &Line<'_>) {
        let mut bytes = [0; LINE];
        let mut rest = ArrayBuffer::new(&mut bytes);
        line.write_rest(&mut rest);
        self.write_with(|pending| {
            line.write_time(&mut pending.lines, &mut pending.dates);
            match rest.written() {
                Some(rest) => pending.lines.extend_from_slice(rest),
                None => line.write_rest(&mut pending.lines),
            }
        });
    }

    /// Appends one line, which `line` writes to [`Pending::lines`] (newline included); drops
    /// it (and counts it) if the writer is behind.
    fn write_with(&self, line: impl FnOnce(&mut Pending)) {
        let mut pending = self.shared.lock();
        if pending.lines.len() >= self.shared.capacity {
            drop(pending);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        line(&mut pending);
    }

    /// Appends one line already written.
    #[cfg(test)]
    fn write(&self, line: &str) {
        self.write_with(|pending| pending.lines.extend_from_slice(line.as_bytes()));
    }

    /// Lines dropped so far because the writer was behind.
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Asks the writer to open the file again (after log rotation).
    pub(crate) fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Relaxed);
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Swaps the pending lines out for `spare` (emptied; its capacity is reused).
    fn take(&self, spare: &mut Vec<u8>) {
        spare.clear();
        std::mem::swap(&mut self.lock().lines, spare);
    }
}

/// Where the writer writes.
///
/// NOTE: a file is written unbuffered: a batch is already one buffer, written with one
/// `write`; a `BufWriter` would only copy every line once more.
enum Output {
    Stdout,
    File(File, std::path::PathBuf),
}

impl Output {
    fn open(target: &AccessLogTarget) -> std::io::Result<Self> {
        Ok(match target {
            AccessLogTarget::Stdout => Output::Stdout,
            AccessLogTarget::File(path) => Output::File(append(path)?, path.clone()),
        })
    }

    fn write(&mut self, lines: &[u8]) {
        let result = match self {
            // NOTE: one write of whole lines under stdout's lock, so lines never interleave
            // with the readiness lines the binary prints.
            Output::Stdout => std::io::stdout().lock().write_all(lines),
            Output::File(file, _) => file.write_all(lines),
        };
        if let Err(error) = result {
            tracing::warn!(%error, "access log write failed");
        }
    }

    fn flush(&mut self) {
        let result = match self {
            Output::Stdout => std::io::stdout().lock().flush(),
            Output::File(file, _) => file.flush(),
        };
        if let Err(error) = result {
            tracing::warn!(%error, "access log flush failed");
        }
    }

    fn reopen(&mut self) {
        self.flush();
        if let Output::File(file, path) = self {
            match append(path) {
                Ok(fresh) => *file = fresh,
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "access log could not be opened again; writing to the old file");
                }
            }
        }
    }
}

/// Opens `path` to append to, creating it if need be.
fn append(path: &std::path::Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The writer thread: until the log is dropped, write what is buffered every
/// [`WRITE_EVERY`], flushing each time.
fn write_lines(shared: &Shared, mut output: Output) {
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        std::thread::sleep(WRITE_EVERY);
        let closed = shared.closed.load(Ordering::Acquire);
        shared.take(&mut batch);
        if !batch.is_empty() {
            output.write(&batch);
            output.flush();
        }
        if closed {
            return;
        }
        if shared.reopen.swap(false, Ordering::Relaxed) {
            output.reopen();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_capacity_are_dropped_and_counted() {
        let log = AccessLog::unstarted(AccessLogTarget::Stdout, 4);
        for n in 0..5 {
            log.write(&format!("{n}\n"));
        }
        assert_eq!(log.dropped(), 3);
        let mut batch = Vec::new();
        log.shared.take(&mut batch);
        assert_eq!(batch, b"0\n1\n");
        log.write("5\n");
        assert_eq!(log.dropped(), 3, "room again once the writer caught up");
    }

    #[test]
    fn the_writer_appends_lines_and_reopens_a_rotated_file() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("access.log");
        let config = AccessLogConfig {
            target: AccessLogTarget::File(path.clone()),
            sample: 1.0,
        };
        let log = AccessLog::start(&config).unwrap();
        log.write("first\n");
        let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
        wait_until(|| read(&path) == "first\n");
        let rotated = folder.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        log.reopen();
        wait_until(|| path.exists());
        log.write("second\n");
        wait_until(|| read(&path) == "second\n");
        assert_eq!(read(&rotated), "first\n");
    }

    #[test]
    fn a_line_is_written_whole_whether_or_not_it_fits_on_the_stack() {
        let log = AccessLog::unstarted(AccessLogTarget::Stdout, CAPACITY);
        let long_route = "r".repeat(LINE);
        let mut line = crate::telemetry::line::example();
        let mut expected = line.to_line();
        log.append(&line);
        line.route = &long_route;
        expected.push_str(&line.to_line());
        log.append(&line);
        let mut batch = Vec::new();
        log.shared.take(&mut batch);
        assert_eq!(String::from_utf8(batch).unwrap(), expected);
    }

    /// Polls a state the writer thread will reach, for at most 10 seconds.
    fn wait_until(check: impl Fn() -> bool) {
        let reached = crate::eventually::eventually_blocking(Duration::from_secs(10), check);
        assert!(reached, "the writer never got there");
    }
}
