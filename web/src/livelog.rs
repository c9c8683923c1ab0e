//! Tails `MSG.log` for the live log page (the original ran frontail in a
//! separate container). Polls size and inode: a file that shrank or was
//! replaced has been rotated (msg_dumper renames it to `MSG_<date>.log` at
//! UTC midnight of the data time and starts a new one; a truncated file is
//! handled the same way) and is read again from its start.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

/// Lines sent to a browser when it connects.
pub const BACKLOG: usize = 200;
/// At most this much is read per poll, so a huge burst cannot stall it.
const MAX_READ: u64 = 4 << 20;

/// A batch of new lines, or the news that the file was rotated.
#[derive(Debug, Clone)]
pub enum LogEvent {
    Lines(Arc<Vec<String>>),
    Rotated,
}

struct Tail {
    /// (device, inode) of the file being followed.
    id: Option<(u64, u64)>,
    offset: u64,
    partial: Vec<u8>,
}

struct Shared {
    backlog: VecDeque<String>,
    tx: broadcast::Sender<LogEvent>,
}

pub struct LiveLog {
    path: PathBuf,
    shared: Mutex<Shared>,
    tail: Mutex<Tail>,
}

#[cfg(unix)]
fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}
#[cfg(not(unix))]
fn file_id(_: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

impl LiveLog {
    /// Starts at the end of the file, with its last lines as the backlog.
    pub fn new(path: PathBuf) -> Arc<LiveLog> {
        let (tx, _) = broadcast::channel(1024);
        let mut tail = Tail {
            id: None,
            offset: 0,
            partial: Vec::new(),
        };
        let mut backlog = VecDeque::new();
        if let Ok(mut f) = std::fs::File::open(&path) {
            if let Ok(m) = f.metadata() {
                tail.id = Some(file_id(&m));
                // 200 lines of DAQ messages fit easily in the last 256 kB.
                let start = m.len().saturating_sub(256 * 1024);
                let mut buf = Vec::new();
                if f.seek(SeekFrom::Start(start)).is_ok() && f.read_to_end(&mut buf).is_ok() {
                    tail.offset = start + buf.len() as u64;
                    let complete = buf.iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1);
                    tail.partial = buf[complete..].to_vec();
                    let mut lines = split_lines(&buf[..complete]);
                    if start > 0 && !lines.is_empty() {
                        lines.remove(0); // probably cut in the middle
                    }
                    let skip = lines.len().saturating_sub(BACKLOG);
                    backlog.extend(lines.into_iter().skip(skip));
                }
            }
        }
        Arc::new(LiveLog {
            path,
            shared: Mutex::new(Shared { backlog, tx }),
            tail: Mutex::new(tail),
        })
    }

    /// The backlog and a receiver for what follows, atomically: no line is
    /// lost or repeated between the two.
    pub fn connect(&self) -> (Vec<String>, broadcast::Receiver<LogEvent>) {
        let s = self.shared.lock().expect("livelog lock");
        (s.backlog.iter().cloned().collect(), s.tx.subscribe())
    }

    fn publish(&self, ev: LogEvent) {
        let mut s = self.shared.lock().expect("livelog lock");
        match &ev {
            LogEvent::Lines(lines) => {
                for l in lines.iter() {
                    if s.backlog.len() == BACKLOG {
                        s.backlog.pop_front();
                    }
                    s.backlog.push_back(l.clone());
                }
            }
            LogEvent::Rotated => {}
        }
        let _ = s.tx.send(ev);
    }

    /// One poll: reads what was appended since the last one.
    pub fn poll(&self) {
        let mut t = self.tail.lock().expect("tail lock");
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return; // not there (yet, or between rotation steps)
        };
        let id = file_id(&meta);
        if t.id != Some(id) || meta.len() < t.offset {
            let was_following = t.id.is_some();
            t.id = Some(id);
            t.offset = 0;
            t.partial.clear();
            if was_following {
                self.publish(LogEvent::Rotated);
            }
        }
        if meta.len() == t.offset {
            return;
        }
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return;
        };
        if f.seek(SeekFrom::Start(t.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        let Ok(n) = f.take(MAX_READ).read_to_end(&mut buf) else {
            return;
        };
        t.offset += n as u64;
        let mut data = std::mem::take(&mut t.partial);
        data.extend_from_slice(&buf);
        let complete = data.iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1);
        t.partial = data[complete..].to_vec();
        let lines = split_lines(&data[..complete]);
        if !lines.is_empty() {
            self.publish(LogEvent::Lines(Arc::new(lines)));
        }
    }

    pub async fn watch(self: Arc<Self>, every: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let me = self.clone();
            if tokio::task::spawn_blocking(move || me.poll())
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

fn split_lines(b: &[u8]) -> Vec<String> {
    b.split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(l.strip_suffix(b"\r").unwrap_or(l)).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines(rx: &mut broadcast::Receiver<LogEvent>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            match ev {
                LogEvent::Lines(l) => out.extend(l.iter().cloned()),
                LogEvent::Rotated => out.push("<rotated>".into()),
            }
        }
        out
    }

    #[test]
    fn tails_and_survives_rotation() {
        let dir = std::env::temp_dir().join(format!("km3web-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("MSG.log");
        let mut f = std::fs::File::create(&path).unwrap();
        for i in 0..300 {
            writeln!(f, "line {i}").unwrap();
        }
        let log = LiveLog::new(path.clone());
        let (backlog, mut rx) = log.connect();
        assert_eq!(backlog.len(), BACKLOG);
        assert_eq!(backlog[BACKLOG - 1], "line 299");
        write!(f, "new A\npart").unwrap();
        log.poll();
        assert_eq!(lines(&mut rx), ["new A"]);
        writeln!(f, "ial").unwrap();
        log.poll();
        assert_eq!(lines(&mut rx), ["partial"]);
        // msg_dumper's rotation: copy, then truncate in place.
        std::fs::copy(&path, dir.join("MSG_2024-01-01.log")).unwrap();
        drop(f);
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(f, "after").unwrap();
        log.poll();
        assert_eq!(lines(&mut rx), ["<rotated>", "after"]);
        // Replacement by a new file (rename + create).
        std::fs::rename(&path, dir.join("old.log")).unwrap();
        std::fs::write(&path, "fresh file, longer than before\n").unwrap();
        log.poll();
        assert_eq!(
            lines(&mut rx),
            ["<rotated>", "fresh file, longer than before"]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
