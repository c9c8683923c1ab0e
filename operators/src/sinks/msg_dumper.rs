//! `type = "msg_dumper"`: the DAQ log archive (spec §3.12, fixed).
//!
//! Lines go to `<dir>/<prefix>.log` as `MSG.log [<Source>]: <text>` (the
//! first token is literally the file name, the source the msg_dumper
//! category), written in data-time order (the shell, `crate::shell`), with
//! no user-space buffer. Continuation lines of a multi-line payload are
//! indented by four spaces, so every file line still belongs to exactly one
//! message.
//!
//! Rotation is by data time, not by the arrival of the next message: a
//! shell timer at the last tick of a UTC day (so after all of its lines), the live file is *renamed* to
//! `<prefix>_<YYYY-MM-DD>.log` of the day its lines belong to. That day is
//! kept in a sidecar `.<prefix>.log.day`, so a restart (even days later)
//! archives the old lines under their own date. A late line of a day that
//! is already archived is appended to that day's archive. In a replay the
//! end of the input closes the last day too; a live shutdown keeps the
//! live file for the next start.
//!
//! All file I/O runs on a writer thread. A failing write (disk full) is
//! undone (the file is truncated back to its length before the write, so a
//! retry never duplicates a partial line) and turns the node FAILED naming
//! the file. Live, it is retried with back-off until it succeeds (the node
//! then runs again); a replay gives the archive up at the first failure
//! and counts the lines it could not write, so a full disk cannot hold
//! the replay up.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use pipeline::control::NodeControl;
use pipeline::item::{Item, Time};
use pipeline::operator::{
    check_relative, BuildContext, ItemStream, Mode, Node, NodeConfig, Resource, Role,
};
use pipeline::runtime::io::write_atomic;
use pipeline::runtime::queue::WriterQueue;
use pipeline::runtime::RunEnv;
use pipeline::StreamKind;
use serde::Deserialize;

use crate::shell::{ordered, Monitor, Out};

use crate::shell::msg::{date, day_of, day_start, parse::category, parse_date, text_of};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MsgDumper {
    /// Directory under `--out`.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// File prefix: `<prefix>.log`, `<prefix>_<date>.log`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
}

fn default_dir() -> PathBuf {
    PathBuf::from("logs")
}
fn default_prefix() -> String {
    "MSG".into()
}

impl NodeConfig for MsgDumper {
    const TYPE: &'static str = "msg_dumper";
    const ROLE: Role = Role::Sink;
    const ABOUT: &'static str =
        "archives MSG lines in MSG.log, renamed to MSG_YYYY-MM-DD.log at UTC midnight (data time)";
    const EXAMPLE: &'static str = r#"inputs = ["daq"]
dir = "logs""#;
}

/// One archive line (or several, for a multi-line payload), newline-ended.
pub fn format_line(prefix: &str, text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(b".log [");
    out.extend_from_slice(category(text).as_bytes());
    out.extend_from_slice(b"]: ");
    let mut lines = text.split('\n');
    out.extend_from_slice(lines.next().unwrap_or("").trim_end_matches('\r').as_bytes());
    for more in lines {
        out.extend_from_slice(b"\n    ");
        out.extend_from_slice(more.trim_end_matches('\r').as_bytes());
    }
    out.push(b'\n');
}

/// An I/O error with the file it happened to.
#[derive(Debug)]
struct Named {
    path: PathBuf,
    source: io::Error,
}

impl std::fmt::Display for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for Named {}

fn at(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |source| {
        io::Error::new(
            source.kind(),
            Named {
                path: path.to_path_buf(),
                source,
            },
        )
    }
}

/// The live file and the day its lines belong to.
pub struct Archive {
    dir: PathBuf,
    prefix: String,
    file: Option<File>,
    /// Day of the lines in the live file; `None` = no lines yet.
    day: Option<i64>,
}

impl Archive {
    /// Opens the archive directory, recovering the day of a live file left
    /// by an earlier run (sidecar; for a file without one, e.g. from the
    /// original Python dumper, its modification time).
    pub fn open(dir: &Path, prefix: &str) -> io::Result<Archive> {
        std::fs::create_dir_all(dir).map_err(at(dir))?;
        let mut a = Archive {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            file: None,
            day: None,
        };
        let live_len = std::fs::metadata(a.live()).map(|m| m.len()).unwrap_or(0);
        if live_len > 0 {
            a.day = std::fs::read_to_string(a.sidecar())
                .ok()
                .and_then(|s| parse_date(&s))
                .or_else(|| {
                    let mtime = std::fs::metadata(a.live()).ok()?.modified().ok()?;
                    let s = mtime.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
                    Some((s / 86_400) as i64)
                });
        } else {
            let _ = std::fs::remove_file(a.sidecar());
        }
        Ok(a)
    }

    pub fn live(&self) -> PathBuf {
        self.dir.join(format!("{}.log", self.prefix))
    }
    fn sidecar(&self) -> PathBuf {
        self.dir.join(format!(".{}.log.day", self.prefix))
    }
    pub fn archive(&self, day: i64) -> PathBuf {
        self.dir.join(format!("{}_{}.log", self.prefix, date(day)))
    }
    pub fn day(&self) -> Option<i64> {
        self.day
    }

    /// Appends the formatted lines of `day`.
    pub fn append(&mut self, day: i64, bytes: &[u8]) -> io::Result<()> {
        match self.day {
            Some(d) if d < day => self.rotate()?,
            // Late lines of an archived day join their day's archive.
            Some(d) if d > day => {
                let p = self.archive(day);
                return open_append(&p)
                    .and_then(|mut f| append_undoable(&mut f, bytes))
                    .map_err(at(&p));
            }
            _ => {}
        }
        if self.day.is_none() {
            // The sidecar first: a crash after it leaves an empty or short
            // live file of the right day, never lines of an unknown day.
            let sidecar = self.sidecar();
            write_atomic(&sidecar, date(day).as_bytes()).map_err(at(&sidecar))?;
            self.day = Some(day);
        }
        let live = self.live();
        if self.file.is_none() {
            self.file = Some(open_append(&live).map_err(at(&live))?);
        }
        append_undoable(self.file.as_mut().expect("opened"), bytes).map_err(at(&live))
    }

    /// Every line before `day` has been written: archive an older live file.
    pub fn close_before(&mut self, day: i64) -> io::Result<()> {
        match self.day {
            Some(d) if d < day => self.rotate(),
            _ => Ok(()),
        }
    }

    fn rotate(&mut self) -> io::Result<()> {
        let Some(day) = self.day else { return Ok(()) };
        let (live, target) = (self.live(), self.archive(day));
        if let Some(f) = self.file.take() {
            f.sync_data().map_err(at(&live))?;
        }
        if live.exists() {
            if target.exists() {
                // Late lines made the archive already: add ours after them.
                let bytes = std::fs::read(&live).map_err(at(&live))?;
                open_append(&target)
                    .and_then(|mut f| append_undoable(&mut f, &bytes))
                    .map_err(at(&target))?;
                std::fs::remove_file(&live).map_err(at(&live))?;
            } else {
                std::fs::rename(&live, &target).map_err(at(&target))?;
            }
            tracing::info!("archived {}", target.display());
        }
        match std::fs::remove_file(self.sidecar()) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(at(&self.sidecar())(e)),
            _ => {}
        }
        self.day = None;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Writes all of `bytes` or nothing: a partial write is truncated away.
fn append_undoable(f: &mut File, bytes: &[u8]) -> io::Result<()> {
    let len = f.metadata()?.len();
    if let Err(e) = f.write_all(bytes).and_then(|()| f.flush()) {
        let _ = f.set_len(len);
        return Err(e);
    }
    Ok(())
}

/// What the worker hands to the writer thread.
#[derive(Debug)]
pub enum Cmd {
    Lines {
        day: i64,
        bytes: Vec<u8>,
        lines: u64,
    },
    /// The frontier passed the start of this day.
    CloseBefore(i64),
}

/// Runs `f` until it succeeds, `live`: with back-off (50 ms doubling to
/// 5 s), giving up only when the run is shutting down and the error
/// persists for a few more attempts; a replay tries once. Failures go to
/// `control` (FAILED naming the file, each file logged once), or without
/// one to the log (the first and then every 10th); a success after
/// failures makes the node run again. `false`: gave up.
pub fn retry(
    what: &str,
    live: bool,
    stop: &dyn Fn() -> bool,
    control: Option<&NodeControl>,
    mut f: impl FnMut() -> io::Result<()>,
) -> bool {
    let mut delay = Duration::from_millis(50);
    for failures in 0u64.. {
        match f() {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!("{what}: resumed after {failures} failed attempts");
                }
                if let Some(c) = control {
                    c.write_ok(None);
                }
                return true;
            }
            Err(e) => {
                let named = e.get_ref().and_then(|i| i.downcast_ref::<Named>());
                match (control, named) {
                    (Some(c), Some(n)) => c.write_failed(&n.path, &n.source),
                    (Some(c), None) => c.write_failed(Path::new(what), &e),
                    (None, _) if failures % 10 == 0 => {
                        tracing::error!("{what}: {e} (retrying)")
                    }
                    (None, _) => {}
                }
                if !live || (stop() && failures >= 3) {
                    return false;
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    unreachable!()
}

fn writer(
    dir: PathBuf,
    prefix: String,
    rx: Receiver<Cmd>,
    env: Arc<RunEnv>,
    control: Arc<NodeControl>,
) {
    let stop = || env.shutdown_requested();
    let live = matches!(env.mode, Mode::Live);
    let what = format!("msg_dumper {}", dir.display());
    let mut archive = None;
    let opened = retry(&what, live, &stop, Some(&control), || {
        archive = Some(Archive::open(&dir, &prefix)?);
        Ok(())
    });
    // Lines not written: a replay gives up at the first failure.
    let mut lost = 0u64;
    let mut gave_up = !opened;
    for cmd in rx {
        let ok = match (&cmd, archive.as_mut()) {
            _ if gave_up => false,
            (_, None) => false,
            (Cmd::Lines { day, bytes, .. }, Some(a)) => {
                retry(&what, live, &stop, Some(&control), || a.append(*day, bytes))
            }
            (Cmd::CloseBefore(day), Some(a)) => {
                retry(&what, live, &stop, Some(&control), || a.close_before(*day))
            }
        };
        if !ok {
            gave_up |= !live;
            if let Cmd::Lines { lines, .. } = &cmd {
                lost += lines;
            }
        }
    }
    if lost > 0 {
        tracing::error!(
            "{what}: {lost} line(s) could not be written{}",
            if live { " (gave up at shutdown)" } else { "" }
        );
    }
}

impl Node for MsgDumper {
    fn resources(&self) -> Vec<(String, Resource)> {
        let f = |name: String| Resource::file(&self.dir.join(name));
        vec![
            ("dir".into(), f(format!("{}.log", self.prefix))),
            ("dir".into(), f(format!("{}_*.log", self.prefix))),
        ]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Msg, StreamKind::Messages]
    }
    fn produces(&self) -> Option<StreamKind> {
        None
    }
    fn check(&self) -> Vec<(String, String)> {
        let mut errors: Vec<_> = check_relative("dir", &self.dir).into_iter().collect();
        if self.prefix.is_empty() || self.prefix.contains(['/', '\\']) {
            errors.push((
                "prefix".into(),
                "a plain file name prefix, e.g. `MSG`".into(),
            ));
        }
        errors
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("msg_dumper needs an input"))?;
        let mut tx: Option<WriterQueue<Cmd>> = None;
        if ctx.is_leader() {
            let (s, r) = ctx.writer_queue("msg_dumper writer queue full");
            let (dir, prefix, env, control) = (
                ctx.out_path(&self.dir),
                self.prefix.clone(),
                ctx.env.clone(),
                ctx.node_control(),
            );
            ctx.spawn_io("writer", move || writer(dir, prefix, r, env, control))?;
            tx = Some(s);
        }
        // A replay's end closes the last day; a live shutdown does not.
        let close_at_end = matches!(ctx.env.mode, Mode::Replay { .. });
        let monitor = Dumper {
            prefix: self.prefix.clone(),
            close_at_end,
            tx,
        };
        // Lines of one timestamp keep their order (one source on the
        // leader): no sort.
        ordered(
            ctx,
            crate::shell::msg::only_lines(input),
            "msg_dumper",
            |_: &Item| (),
            monitor,
        );
        Ok(None)
    }
}

/// Lines in data-time order to the writer; a day is closed (its file
/// finished) by a timer at its last tick, also when no line follows.
struct Dumper {
    prefix: String,
    close_at_end: bool,
    tx: Option<WriterQueue<Cmd>>,
}

impl Monitor<Item> for Dumper {
    fn on_data(&mut self, t: Time, data: Vec<Item>, out: &mut Out) {
        let Some(tx) = &self.tx else { return };
        let mut bytes = Vec::new();
        let mut lines = 0;
        for item in &data {
            if let Some(text) = text_of(item) {
                format_line(&self.prefix, &text, &mut bytes);
                lines += 1;
            }
        }
        if !bytes.is_empty() {
            let day = day_of(t);
            out.timer(day_start(day + 1) - 1);
            tx.send(Cmd::Lines { day, bytes, lines }, lines);
        }
    }

    fn on_timer(&mut self, t: Time, _out: &mut Out) {
        if let Some(tx) = &self.tx {
            // Dropped only live with a full queue: the next line of a
            // later day rotates the file all the same.
            tx.send(Cmd::CloseBefore(day_of(t) + 1), 0);
        }
    }

    /// A replay's end closes the last day; a live shutdown does not.
    fn on_end(&mut self, _last: Option<Time>, _out: &mut Out) {
        if let (Some(tx), true) = (&self.tx, self.close_at_end) {
            tx.send(Cmd::CloseBefore(i64::MAX), 0);
        }
        self.tx = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 19_723; // 2024-01-01

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("km3mon-msgdump-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn line(text: &str) -> Vec<u8> {
        let mut v = Vec::new();
        format_line("MSG", text, &mut v);
        v
    }

    fn read(p: PathBuf) -> String {
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn line_format_and_continuations() {
        assert_eq!(
            String::from_utf8(line("2024-01-01T00:00:12+0000 192.168.0.111 F01 WARNING x"))
                .unwrap(),
            "MSG.log [DataFilter]: 2024-01-01T00:00:12+0000 192.168.0.111 F01 WARNING x\n"
        );
        assert_eq!(
            String::from_utf8(line("t 1.2.3.4 A01 DEBUG actionConfigure()\r\na = 1\nb = 2")).unwrap(),
            "MSG.log [AcousticDataFilter]: t 1.2.3.4 A01 DEBUG actionConfigure()\n    a = 1\n    b = 2\n"
        );
        assert_eq!(
            String::from_utf8(line("ALERT (MONITORING) 2024-01-01T00:00:00Z: x")).unwrap(),
            "MSG.log [Other]: ALERT (MONITORING) 2024-01-01T00:00:00Z: x\n"
        );
    }

    #[test]
    fn rotation_at_midnight_and_restarts() {
        let dir = tmp("rotate");
        let mut a = Archive::open(&dir, "MSG").unwrap();
        a.append(DAY, &line("before midnight 1")).unwrap();
        a.append(DAY, &line("before midnight 2")).unwrap();
        // A restart in between: the day is recovered, lines continue.
        drop(a);
        let mut a = Archive::open(&dir, "MSG").unwrap();
        assert_eq!(a.day(), Some(DAY));
        a.append(DAY, &line("before midnight 3")).unwrap();
        a.close_before(DAY).unwrap(); // frontier still in the day: nothing
        assert!(!a.archive(DAY).exists());
        // A message after midnight rotates first (rename, not copy).
        a.append(DAY + 1, &line("after midnight 1")).unwrap();
        let old = read(a.archive(DAY));
        assert_eq!(old.lines().count(), 3, "{old}");
        assert!(old.lines().all(|l| l.contains("before")));
        assert_eq!(read(a.live()), "MSG.log [Other]: after midnight 1\n");
        // A restart on a later day: the live file is archived under its
        // own day when the frontier passes, although no message came.
        drop(a);
        let mut a = Archive::open(&dir, "MSG").unwrap();
        assert_eq!(a.day(), Some(DAY + 1));
        a.close_before(DAY + 3).unwrap();
        assert_eq!(
            read(a.archive(DAY + 1)),
            "MSG.log [Other]: after midnight 1\n"
        );
        assert!(!a.live().exists() && a.day().is_none());
        // A late line of an archived day joins its archive; nothing lost.
        a.append(DAY + 3, &line("day 3")).unwrap();
        a.append(DAY + 1, &line("late")).unwrap();
        assert_eq!(read(a.archive(DAY + 1)).lines().count(), 2);
        assert_eq!(read(a.live()), "MSG.log [Other]: day 3\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rotation_onto_an_existing_archive_appends() {
        let dir = tmp("existing");
        let mut a = Archive::open(&dir, "MSG").unwrap();
        std::fs::write(a.archive(DAY), line("earlier")).unwrap();
        a.append(DAY, &line("later")).unwrap();
        a.close_before(DAY + 1).unwrap();
        assert_eq!(
            read(a.archive(DAY)),
            "MSG.log [Other]: earlier\nMSG.log [Other]: later\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn retry_resumes_after_failures_without_duplicates() {
        let dir = tmp("retry");
        let mut a = Archive::open(&dir, "MSG").unwrap();
        let mut failures = 3;
        let ok = retry("test", true, &|| false, None, || {
            if failures > 0 {
                failures -= 1;
                return Err(io::Error::other("No space left on device"));
            }
            a.append(DAY, &line("once"))
        });
        assert!(ok);
        assert_eq!(read(a.live()), "MSG.log [Other]: once\n");
        assert!(!retry("test", true, &|| true, None, || Err(
            io::Error::other("full")
        )));
        // A replay tries once.
        let mut tries = 0;
        assert!(!retry("test", false, &|| false, None, || {
            tries += 1;
            Err(io::Error::other("full"))
        }));
        assert_eq!(tries, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_failed_write_leaves_no_partial_line() {
        // /dev/full fails every write with ENOSPC.
        let Ok(mut f) = OpenOptions::new().append(true).open("/dev/full") else {
            return;
        };
        assert!(append_undoable(&mut f, b"x\n").is_err());
    }
}
