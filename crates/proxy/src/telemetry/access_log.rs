//! The access log's writer: lines go through a bounded channel to one thread that owns the
//! file, so the request path never waits on a disk.
//!
//! When the disk is slower than the traffic, the channel fills and further lines are dropped
//! and counted ([`AccessLog::dropped`]) rather than slowing requests down or growing memory
//! without bound: an access log that costs availability defeats the point of the proxy. The
//! thread wakes every [`WRITE_EVERY`], writes everything queued and flushes, so a line is on
//! disk within about that of the request ([`CAPACITY`] lines per wake is 160k lines/s). The file is opened again on request ([`AccessLog::reopen`], on SIGHUP or a
//! reload), which is how log rotation works: rename the file, then signal.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::Duration;

use crate::config::telemetry::{AccessLogConfig, AccessLogTarget};

/// Lines waiting for the writer at most; past this they are dropped.
pub const CAPACITY: usize = 8192;

/// How often the writer wakes to write what is queued. It polls rather than waits on the
/// channel: a writer blocked in `recv` would be woken (a futex syscall on the request path,
/// and a context switch) for every line, which measured as most of the access log's cost.
const WRITE_EVERY: Duration = Duration::from_millis(50);

/// Where the request path sends lines.
#[derive(Debug)]
pub struct AccessLog {
    /// Where lines go, to tell on reload whether the writer can be kept.
    pub target: AccessLogTarget,
    sender: SyncSender<String>,
    shared: Arc<Shared>,
}

/// What the request path and the writer share.
#[derive(Debug, Default)]
struct Shared {
    dropped: AtomicU64,
    reopen: AtomicBool,
}

impl AccessLog {
    /// Opens the target and starts its writer thread.
    pub fn start(config: &AccessLogConfig) -> std::io::Result<Self> {
        let output = Output::open(&config.target)?;
        let (log, receiver) = Self::unstarted(config.target.clone(), CAPACITY);
        let shared = log.shared.clone();
        std::thread::Builder::new()
            .name("blastwall-access-log".to_owned())
            .spawn(move || write_lines(&receiver, output, &shared))?;
        Ok(log)
    }

    /// The log and the receiving end its writer would drain.
    fn unstarted(target: AccessLogTarget, capacity: usize) -> (Self, Receiver<String>) {
        let (sender, receiver) = sync_channel(capacity);
        let log = Self {
            target,
            sender,
            shared: Arc::default(),
        };
        (log, receiver)
    }

    /// Queues a line; drops it (and counts it) if the writer is behind.
    pub fn write(&self, line: String) {
        match self.sender.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped so far because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Asks the writer to open the file again (after log rotation).
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Relaxed);
    }
}

/// Where the writer writes.
enum Output {
    Stdout,
    File(BufWriter<File>, std::path::PathBuf),
}

impl Output {
    fn open(target: &AccessLogTarget) -> std::io::Result<Self> {
        Ok(match target {
            AccessLogTarget::Stdout => Output::Stdout,
            AccessLogTarget::File(path) => Output::File(
                BufWriter::with_capacity(
                    64 * 1024,
                    OpenOptions::new().create(true).append(true).open(path)?,
                ),
                path.clone(),
            ),
        })
    }

    fn write(&mut self, line: &str) {
        let result = match self {
            // NOTE: one write of a whole line under stdout's lock, so lines never interleave
            // with the readiness lines the binary prints.
            Output::Stdout => std::io::stdout().lock().write_all(line.as_bytes()),
            Output::File(file, _) => file.write_all(line.as_bytes()),
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
            match OpenOptions::new().create(true).append(true).open(&*path) {
                Ok(fresh) => *file = BufWriter::with_capacity(64 * 1024, fresh),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "access log could not be opened again; writing to the old file");
                }
            }
        }
    }
}

/// The writer thread: until every sender is gone, write what is queued every
/// [`WRITE_EVERY`], flushing each time.
fn write_lines(receiver: &Receiver<String>, mut output: Output, shared: &Shared) {
    loop {
        std::thread::sleep(WRITE_EVERY);
        let mut wrote = false;
        loop {
            match receiver.try_recv() {
                Ok(line) => {
                    output.write(&line);
                    wrote = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    output.flush();
                    return;
                }
            }
        }
        if wrote {
            output.flush();
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
        let (log, receiver) = AccessLog::unstarted(AccessLogTarget::Stdout, 2);
        for n in 0..5 {
            log.write(format!("{n}\n"));
        }
        assert_eq!(log.dropped(), 3);
        assert_eq!(receiver.try_recv().unwrap(), "0\n");
        assert_eq!(receiver.try_recv().unwrap(), "1\n");
        log.write("5\n".to_owned());
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
        log.write("first\n".to_owned());
        let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
        wait_until(|| read(&path) == "first\n");
        let rotated = folder.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        log.reopen();
        wait_until(|| path.exists());
        log.write("second\n".to_owned());
        wait_until(|| read(&path) == "second\n");
        assert_eq!(read(&rotated), "first\n");
    }

    /// Polls a state the writer thread will reach, for at most 10 seconds.
    fn wait_until(check: impl Fn() -> bool) {
        for _ in 0..1000 {
            if check() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the writer never got there");
    }
}
