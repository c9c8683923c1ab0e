//! File output helpers shared by sinks.

use std::io::Write;
use std::path::Path;

/// Whole files are written the one way of the workspace: atomic, durable
/// (fsync of the file and its folder), no temporary file left behind.
/// `write_atomic_private` is for secrets (mode 0600 from the start);
/// `replace_atomic_with` skips the fsyncs, for plots that are redrawn all
/// the time.
pub use atomicfile::{
    replace_with as replace_atomic_with, write as write_atomic,
    write_private as write_atomic_private, write_with as write_atomic_with,
};

/// Opens `path` for appending, creating it and its folder: the one way
/// the append-only outputs (CSV, JSON Lines, logs) are opened.
pub fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// When a failing output may try again, live: 1 s after the first
/// failure, doubling to 5 min, reset by a success. Wall clock: it paces
/// delivery only and decides nothing about the data.
#[derive(Debug, Default)]
pub struct Backoff {
    next: Option<std::time::Instant>,
    delay: std::time::Duration,
}

impl Backoff {
    const FIRST: std::time::Duration = std::time::Duration::from_secs(1);
    const MAX: std::time::Duration = std::time::Duration::from_secs(300);

    pub fn failed(&mut self) {
        self.delay = if self.delay.is_zero() {
            Self::FIRST
        } else {
            (self.delay * 2).min(Self::MAX)
        };
        self.next = Some(std::time::Instant::now() + self.delay);
    }
    pub fn succeeded(&mut self) {
        self.next = None;
        self.delay = std::time::Duration::ZERO;
    }
    /// Time until the next try (zero: now); `None` when nothing failed.
    pub fn wait(&self) -> Option<std::time::Duration> {
        self.next
            .map(|t| t.saturating_duration_since(std::time::Instant::now()))
    }
    pub fn ready(&self) -> bool {
        self.wait().is_none_or(|w| w.is_zero())
    }
}

/// An append-only output (CSV, JSON Lines) that survives a full disk.
/// Every append is all or nothing (a partial write is truncated away, so
/// a retry never duplicates half a line). Live, what could not be written
/// waits (up to [`RetryingAppender::MAX_PENDING`] bytes; beyond, new data
/// is dropped and counted) and is retried with [`Backoff`]; a replay gives
/// the file up at its first failure, so a full disk ends the replay at
/// once with one error for the file. Failures and recovery go to the
/// node's control block ([`NodeControl::write_failed`], `write_ok`).
///
/// [`NodeControl::write_failed`]: crate::control::NodeControl::write_failed
pub struct RetryingAppender {
    path: std::path::PathBuf,
    live: bool,
    file: Option<std::fs::File>,
    pending: Vec<u8>,
    backoff: Backoff,
    gave_up: bool,
    dropped_bytes: u64,
}

impl RetryingAppender {
    pub const MAX_PENDING: usize = 16 << 20;

    pub fn new(path: &Path, live: bool) -> RetryingAppender {
        RetryingAppender {
            path: path.to_path_buf(),
            live,
            file: None,
            pending: Vec::new(),
            backoff: Backoff::default(),
            gave_up: false,
            dropped_bytes: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file has no bytes yet (neither on disk nor waiting):
    /// for writing a header first.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && std::fs::metadata(&self.path).map_or(true, |m| m.len() == 0)
    }

    /// Creates the file (and its folder) now: an empty output says
    /// "nothing yet", a missing one "not running". A failure counts as a
    /// failed write.
    pub fn create(&mut self, control: &crate::control::NodeControl) {
        match open_append(&self.path) {
            Ok(f) => self.file = Some(f),
            Err(e) => {
                control.write_failed(&self.path, &e);
                if self.live {
                    self.backoff.failed();
                } else {
                    self.gave_up = true;
                }
            }
        }
    }

    /// Appends `bytes` (now, or later when the disk lets it).
    pub fn push(&mut self, bytes: &[u8], control: &crate::control::NodeControl) {
        if self.gave_up {
            return;
        }
        if self.pending.len() + bytes.len() > Self::MAX_PENDING {
            self.dropped_bytes += bytes.len() as u64;
        } else {
            self.pending.extend_from_slice(bytes);
        }
        if self.backoff.ready() {
            self.flush(control);
        }
    }

    /// How long a writer thread may wait for new data before it should
    /// call [`RetryingAppender::flush`] again.
    pub fn retry_in(&self) -> Option<std::time::Duration> {
        (!self.pending.is_empty() && !self.gave_up)
            .then(|| self.backoff.wait())
            .flatten()
    }

    /// Tries to write what waits.
    pub fn flush(&mut self, control: &crate::control::NodeControl) {
        if self.pending.is_empty() || self.gave_up {
            return;
        }
        match self.append() {
            Ok(()) => {
                self.pending.clear();
                self.backoff.succeeded();
                if self.dropped_bytes > 0 {
                    tracing::warn!(
                        "{}: {} bytes were dropped while the file could not be written",
                        self.path.display(),
                        self.dropped_bytes
                    );
                    self.dropped_bytes = 0;
                }
                control.write_ok(Some(&self.path));
            }
            Err(e) => {
                self.file = None;
                control.write_failed(&self.path, &e);
                if self.live {
                    self.backoff.failed();
                } else {
                    self.gave_up = true;
                    self.pending = Vec::new();
                }
            }
        }
    }

    fn append(&mut self) -> std::io::Result<()> {
        if self.file.is_none() {
            self.file = Some(open_append(&self.path)?);
        }
        let f = self.file.as_mut().expect("opened");
        let len = f.metadata()?.len();
        if let Err(e) = f.write_all(&self.pending).and_then(|()| f.flush()) {
            let _ = f.set_len(len);
            return Err(e);
        }
        Ok(())
    }

    /// The last try at the end of the run; says what is lost.
    pub fn finish(mut self, control: &crate::control::NodeControl) {
        self.backoff.succeeded();
        self.flush(control);
        if let Some(f) = &self.file {
            let _ = f.sync_data();
        }
        if !self.pending.is_empty() && !self.gave_up {
            tracing::error!(
                "{}: {} bytes could not be written before the end",
                self.path.display(),
                self.pending.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    fn node() -> std::sync::Arc<crate::control::NodeControl> {
        crate::control::Control::new(None, None).register(
            "out",
            "csv",
            "output",
            crate::operator::Role::Sink,
            Default::default(),
        )
    }

    /// Live: a failing file waits with its data, the node is FAILED naming
    /// it (once), and the first good retry writes everything once and
    /// makes the node run again. A replay gives the file up.
    #[test]
    fn appender_retries_live_and_gives_up_in_a_replay() {
        use crate::control::NodeState;
        let dir = std::env::temp_dir().join(format!("km3mon-io-r-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A file where the folder should be: every open fails.
        let blocker = dir.join("sub");
        std::fs::write(&blocker, b"").unwrap();
        let path = blocker.join("x.csv");
        let n = node();
        let mut out = super::RetryingAppender::new(&path, true);
        assert!(out.is_empty());
        out.push(b"a\n", &n);
        let NodeState::Failed(why) = n.state() else {
            panic!("not failed: {:?}", n.state())
        };
        assert!(why.contains(&path.display().to_string()), "{why}");
        let wait = out.retry_in().expect("a retry is due");
        assert!(wait <= std::time::Duration::from_secs(1), "{wait:?}");
        // Pushed during the back-off: waits, no second try yet.
        out.push(b"b\n", &n);
        std::fs::remove_file(&blocker).unwrap();
        std::thread::sleep(wait);
        out.flush(&n);
        assert_eq!(n.state(), NodeState::Running);
        assert_eq!(std::fs::read(&path).unwrap(), b"a\nb\n");
        out.push(b"c\n", &n);
        out.finish(&n);
        assert_eq!(std::fs::read(&path).unwrap(), b"a\nb\nc\n");

        let blocked = dir.join("other");
        std::fs::write(&blocked, b"").unwrap();
        let n = node();
        let mut out = super::RetryingAppender::new(&blocked.join("y.csv"), false);
        out.push(b"a\n", &n);
        assert!(out.retry_in().is_none(), "a replay does not retry");
        std::fs::remove_file(&blocked).unwrap();
        out.push(b"b\n", &n);
        out.finish(&n);
        assert!(!blocked.exists(), "a replay gave the file up");
        assert!(matches!(n.state(), NodeState::Failed(_)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
