//! One child process of a topology: a `blastwall` started with its output in log files,
//! whose readiness is the lines it prints.
//!
//! The child's stdout is piped and copied line by line to its log file by a task that also
//! hands each line to whoever waits for one (the address a mock or the proxy prints when
//! it is ready); the task runs as long as the child writes, so the pipe never fills up and
//! blocks it. Its stderr (the log) goes straight to a file. When a child dies before it is
//! ready, the error carries the end of that file: what it said about why.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use rustix::process::{Pid, Signal, kill_process};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child as TokioChild, ChildStdout, Command};
use tokio::sync::mpsc;

/// How long a child may take to print that it is ready.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// Stdout lines held for whoever waits for one; past that they are only in the log.
const LINES_KEPT: usize = 256;

/// How much of a dead child's stderr an error quotes.
const STDERR_TAIL_BYTES: usize = 2048;

/// A started child, killed when dropped.
#[derive(Debug)]
pub(super) struct Child {
    /// What it is, for errors: `mock "payments"`, `blastwall run`.
    what: String,
    process: TokioChild,
    pid: u32,
    lines: mpsc::Receiver<String>,
    stderr_log: PathBuf,
    /// Whether it was sent SIGSTOP and not SIGCONT since.
    stopped: bool,
}

impl Child {
    /// Starts `exe` with `args`, appending its stdout to `LOGS/STEM.stdout.log` and its
    /// stderr to `LOGS/STEM.stderr.log` (appending, so a restart keeps the first run's).
    pub(super) fn spawn(
        what: String,
        exe: &Path,
        args: &[&str],
        logs: &Path,
        stem: &str,
    ) -> anyhow::Result<Self> {
        let stdout_log = logs.join(format!("{stem}.stdout.log"));
        let stderr_log = logs.join(format!("{stem}.stderr.log"));
        let stderr = append(&stderr_log)?;
        let stdout_file = append(&stdout_log)?;
        let mut process = Command::new(exe)
            .args(args)
            // An error a child exits with is its last words in its log, not buried under a
            // backtrace (a panic's still has one under RUST_BACKTRACE).
            .env("RUST_LIB_BACKTRACE", "0")
            // It dies with verify, even a verify killed outright (super::die_with_parent).
            .env(super::PARENT_PID_ENV, std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {what} ({})", exe.display()))?;
        let pid = process
            .id()
            .with_context(|| format!("{what} exited as it started"))?;
        let stdout = process
            .stdout
            .take()
            .with_context(|| format!("{what}: stdout is not piped"))?;
        let (sender, lines) = mpsc::channel(LINES_KEPT);
        tokio::spawn(copy_lines(
            stdout,
            tokio::fs::File::from_std(stdout_file),
            sender,
        ));
        Ok(Self {
            what,
            process,
            pid,
            lines,
            stderr_log,
            stopped: false,
        })
    }

    /// Its process id.
    #[allow(dead_code)] // tests/topology.rs reads it, through Topology::pids
    pub(super) fn pid(&self) -> u32 {
        self.pid
    }

    /// The rest of the first stdout line that starts with `prefix`, waiting for it; an
    /// error when the child exits or stays silent too long.
    pub(super) async fn line_after(&mut self, prefix: &str) -> anyhow::Result<String> {
        let mut lines = self.lines_until(prefix).await?;
        let last = lines.pop().unwrap_or_default();
        Ok(last[prefix.len()..].to_owned())
    }

    /// Every stdout line up to and including the first that starts with `prefix`, waiting
    /// for it; an error when the child exits or stays silent too long.
    pub(super) async fn lines_until(&mut self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let mut seen = Vec::new();
        let wait = async {
            while let Some(line) = self.lines.recv().await {
                let done = line.starts_with(prefix);
                seen.push(line);
                if done {
                    return true;
                }
            }
            false
        };
        match tokio::time::timeout(READY_WITHIN, wait).await {
            Ok(true) => Ok(seen),
            Ok(false) => {
                let status = self.process.wait().await.ok();
                bail!(
                    "{} exited{} before printing {prefix:?}; its stderr ({}) ends with:\n{}",
                    self.what,
                    status
                        .map(|status| format!(" ({status})"))
                        .unwrap_or_default(),
                    self.stderr_log.display(),
                    stderr_tail(&self.stderr_log),
                )
            }
            Err(_) => bail!(
                "{} did not print {prefix:?} within {READY_WITHIN:?}; see {}",
                self.what,
                self.stderr_log.display()
            ),
        }
    }

    /// Sends SIGSTOP: it stops running, its sockets stay open and nothing answers.
    pub(super) fn stop(&mut self) -> anyhow::Result<()> {
        self.signal(Signal::STOP, "SIGSTOP")?;
        self.stopped = true;
        Ok(())
    }

    /// Sends SIGCONT: a stopped child runs again.
    pub(super) fn resume(&mut self) -> anyhow::Result<()> {
        self.signal(Signal::CONT, "SIGCONT")?;
        self.stopped = false;
        Ok(())
    }

    /// Whether it is stopped (SIGSTOP without SIGCONT since).
    pub(super) fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Sends SIGKILL and waits until it is gone (reaped, so its pid is free).
    pub(super) async fn kill(mut self) -> anyhow::Result<ExitStatus> {
        self.start_kill();
        self.process
            .wait()
            .await
            .with_context(|| format!("cannot wait for {} to exit", self.what))
    }

    /// SIGKILL, without waiting: a stopped child is resumed first. It would die of SIGKILL
    /// stopped as well, but resumed it is never left stopped should the kill fail.
    fn start_kill(&mut self) {
        if self.stopped {
            // NOTE: best effort; SIGKILL follows whatever this returns.
            let _ = self.resume();
        }
        if let Err(error) = self.process.start_kill() {
            tracing::debug!(%error, what = %self.what, "cannot kill a child (already gone?)");
        }
    }

    fn signal(&self, signal: Signal, name: &str) -> anyhow::Result<()> {
        let pid = i32::try_from(self.pid)
            .ok()
            .and_then(Pid::from_raw)
            .with_context(|| format!("{}: no valid pid ({})", self.what, self.pid))?;
        kill_process(pid, signal)
            .with_context(|| format!("cannot send {name} to {} (pid {})", self.what, self.pid))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // `kill_on_drop` sends SIGKILL too; this resumes a stopped child first.
        self.start_kill();
    }
}

/// A log file opened for appending, created if need be.
fn append(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the log file {}", path.display()))
}

/// Copies every stdout line to the log file and hands it on, until the child closes stdout.
async fn copy_lines(stdout: ChildStdout, mut log: tokio::fs::File, lines: mpsc::Sender<String>) {
    let mut reader = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        // NOTE: a log that cannot be written loses lines, never the child's readiness.
        let _ = log.write_all(format!("{line}\n").as_bytes()).await;
        // Nobody waiting any more, or lines nobody reads (a proxy logging every request to
        // stdout after it is ready) is fine: the line is in the log, and memory stays bounded.
        let _ = lines.try_send(line);
    }
    let _ = log.flush().await;
}

/// The end of a log file, or why it cannot be read.
fn stderr_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(STDERR_TAIL_BYTES);
            String::from_utf8_lossy(&bytes[start..])
                .trim_end()
                .to_owned()
        }
        Err(error) => format!("(cannot read it: {error})"),
    }
}
