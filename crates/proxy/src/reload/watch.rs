//! Noticing that the config file changed, without a signal.
//!
//! The file is polled: once a second its content is read and hashed, and a hash different
//! from the last one seen is a change. Polling rather than inotify (the `notify` crate)
//! because it has no blind spots that matter here: editors and deploy tools that replace
//! the file by renaming a new one over it, Kubernetes ConfigMaps that swap a symlink, and
//! network or overlay filesystems that send no events are all seen the same way, and
//! reading a few kilobytes a second costs nothing. The content is compared, not the
//! modification time, so a same-second rewrite is noticed and a `touch` is not a change.
//!
//! A file caught half-written would be refused as invalid; so a change is confirmed by
//! reading the file again a moment later, and taken only if it is still the same.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::{MissedTickBehavior, interval};

use crate::config::Source;

/// Polls a config file for changes of content.
#[derive(Debug)]
pub struct ConfigWatcher {
    path: PathBuf,
    every: Duration,
    seen: String,
    unreadable: bool,
}

/// What one look at the file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    /// The content hashes to what was last seen.
    Same,
    /// The content hashes to this, which was not seen before.
    Changed(String),
    /// The file cannot be read now (being replaced, or removed).
    Unreadable(String),
}

impl ConfigWatcher {
    /// Watches `path`, whose content in force hashes to `seen`, looking every `every`.
    pub fn new(path: &Path, seen: String, every: Duration) -> Self {
        Self {
            path: path.to_owned(),
            every,
            seen,
            unreadable: false,
        }
    }

    /// Records that a reload has seen the file with this hash, so it is not a change.
    pub fn saw(&mut self, hash: String) {
        self.seen = hash;
    }

    /// Looks at the file once.
    pub fn look(&self) -> FileState {
        look(&self.path, &self.seen)
    }

    /// Resolves with the new hash when the file's content has changed and held still for a
    /// moment; the change then counts as seen.
    pub async fn changed(&mut self) -> String {
        let mut ticks = interval(self.every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let settle = (self.every / 10).max(Duration::from_millis(20));
        loop {
            ticks.tick().await;
            let candidate = match self.look_off_thread().await {
                FileState::Same => {
                    self.unreadable = false;
                    continue;
                }
                FileState::Unreadable(error) => {
                    if !std::mem::replace(&mut self.unreadable, true) {
                        tracing::warn!(path = %self.path.display(), %error, "config file unreadable; the config in force stays");
                    }
                    continue;
                }
                FileState::Changed(hash) => hash,
            };
            self.unreadable = false;
            tokio::time::sleep(settle).await;
            if self.look_off_thread().await == FileState::Changed(candidate.clone()) {
                self.seen.clone_from(&candidate);
                return candidate;
            }
        }
    }

    /// [`ConfigWatcher::look`] on a blocking thread: a file read may stall on a network
    /// filesystem, and must not stall the proxy's workers.
    async fn look_off_thread(&self) -> FileState {
        let (path, seen) = (self.path.clone(), self.seen.clone());
        tokio::task::spawn_blocking(move || look(&path, &seen))
            .await
            .unwrap_or_else(|error| FileState::Unreadable(error.to_string()))
    }
}

fn look(path: &Path, seen: &str) -> FileState {
    match std::fs::read(path) {
        Ok(content) => {
            let hash = Source::hash_of(&content);
            if hash == seen {
                FileState::Same
            } else {
                FileState::Changed(hash)
            }
        }
        Err(error) => FileState::Unreadable(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(text: &str) -> (tempfile::TempDir, PathBuf, ConfigWatcher) {
        let folder = tempfile::tempdir().expect("temporary folder");
        let path = folder.path().join("blastwall.toml");
        std::fs::write(&path, text).expect("written");
        let watcher = ConfigWatcher::new(
            &path,
            Source::hash_of(text.as_bytes()),
            Duration::from_secs(1),
        );
        (folder, path, watcher)
    }

    #[test]
    fn the_file_in_force_is_not_a_change() {
        let (_folder, path, watcher) = watched("a = 1\n");
        assert_eq!(watcher.look(), FileState::Same);
        std::fs::write(&path, "a = 1\n").expect("rewritten");
        assert_eq!(watcher.look(), FileState::Same, "same content, newer mtime");
    }

    #[test]
    fn a_rewrite_in_place_is_a_change() {
        let (_folder, path, watcher) = watched("a = 1\n");
        std::fs::write(&path, "a = 2\n").expect("rewritten");
        assert_eq!(
            watcher.look(),
            FileState::Changed(Source::hash_of(b"a = 2\n"))
        );
    }

    #[test]
    fn a_file_replaced_by_rename_is_a_change() {
        let (folder, path, mut watcher) = watched("a = 1\n");
        let fresh = folder.path().join(".blastwall.toml.swp");
        std::fs::write(&fresh, "a = 3\n").expect("written");
        std::fs::rename(&fresh, &path).expect("renamed over");
        let hash = Source::hash_of(b"a = 3\n");
        assert_eq!(watcher.look(), FileState::Changed(hash.clone()));
        watcher.saw(hash);
        assert_eq!(watcher.look(), FileState::Same, "seen once, not again");
    }

    #[test]
    fn a_missing_file_is_unreadable_not_a_change() {
        let (_folder, path, watcher) = watched("a = 1\n");
        std::fs::remove_file(&path).expect("removed");
        assert!(matches!(watcher.look(), FileState::Unreadable(_)));
    }
}
