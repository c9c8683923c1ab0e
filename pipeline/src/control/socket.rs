//! The control socket: a Unix socket (mode 0600: only the user who runs
//! km3mon may steer it) speaking JSON Lines — one [`Request`] per line in,
//! one [`Reply`] per line out — served on a thread of its own.

use std::io::{BufRead, BufReader, Read as _, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Control, Reply};

/// One line on the socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// A command line, e.g. `stop dom_rates`.
    pub command: String,
    /// Who asks (for the audit line).
    #[serde(default)]
    pub user: String,
}

/// Longest request line accepted.
const MAX_LINE: u64 = 64 * 1024;

/// A listening control socket; dropping it stops the thread and removes
/// the socket file.
pub struct SocketServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SocketServer {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Listens on `path`: a stale socket (nobody answering) is replaced; a live
/// one means another instance runs, and that is an error, as is any other
/// kind of file at `path`.
pub fn serve(control: Arc<Control>, path: &Path) -> std::io::Result<SocketServer> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!(
                    "another km3mon instance listens on {} (stop it, or pick another --control path)",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    if let Some(d) = path.parent() {
        if !d.as_os_str().is_empty() {
            std::fs::create_dir_all(d)?;
        }
    }
    // Bound under a temporary name and renamed once it is 0600, so that
    // nobody can connect while it still has the umask's mode.
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("sock");
    let tmp = path.with_file_name(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_t = stop.clone();
    let thread = std::thread::Builder::new()
        .name("control-socket".into())
        .spawn(move || {
            let active = Arc::new(AtomicUsize::new(0));
            for conn in listener.incoming() {
                if stop_t.load(Ordering::SeqCst) {
                    break;
                }
                match conn {
                    Ok(s) => spawn_client(&control, &active, s),
                    Err(e) => tracing::warn!("control socket: accept: {e}"),
                }
            }
        })?;
    Ok(SocketServer {
        path: path.to_path_buf(),
        stop,
        thread: Some(thread),
    })
}

/// Clients served at once; one more gets an error reply and is closed.
/// (Only the owner of the 0600 socket can connect, so this guards against
/// stuck scripts, not strangers.)
const MAX_CLIENTS: usize = 16;

/// How long a client may stay silent before its connection is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Each client on a thread of its own, so that a silent or slow client
/// never delays another (`km3mon ctl` answers at once while scripts hold
/// connections open).
fn spawn_client(control: &Arc<Control>, active: &Arc<AtomicUsize>, mut s: UnixStream) {
    if active.fetch_add(1, Ordering::SeqCst) >= MAX_CLIENTS {
        active.fetch_sub(1, Ordering::SeqCst);
        let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
        let r = Reply::error(format!(
            "too many control clients connected (at most {MAX_CLIENTS}); try again"
        ));
        let _ = write_reply(&mut s, &r);
        return;
    }
    let (control, active2) = (control.clone(), active.clone());
    let spawned = std::thread::Builder::new()
        .name("control-client".into())
        .stack_size(256 << 10)
        .spawn(move || {
            if let Err(e) = handle(&control, s) {
                tracing::debug!("control socket: {e}");
            }
            active2.fetch_sub(1, Ordering::SeqCst);
        });
    if let Err(e) = spawned {
        active.fetch_sub(1, Ordering::SeqCst);
        tracing::warn!("control socket: no thread for a client: {e}");
    }
}

/// Serves one connection: requests are answered in turn until the client
/// closes or stays silent for IDLE_TIMEOUT.
fn handle(control: &Control, s: UnixStream) -> std::io::Result<()> {
    s.set_read_timeout(Some(IDLE_TIMEOUT))?;
    s.set_write_timeout(Some(IDLE_TIMEOUT))?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    loop {
        let mut line = String::new();
        let n = r.by_ref().take(MAX_LINE).read_line(&mut line)?;
        if n == 0 {
            return Ok(());
        }
        let reply = if !line.ends_with('\n') && n as u64 >= MAX_LINE {
            let r = Reply::error(format!("request longer than {MAX_LINE} bytes"));
            write_reply(&mut w, &r)?;
            return Ok(());
        } else {
            match serde_json::from_str::<Request>(line.trim()) {
                Ok(req) => control.execute(&req.command, &req.user),
                Err(e) => Reply::error(format!(
                    "bad request (expected {{\"command\": \"…\", \"user\": \"…\"}}): {e}"
                )),
            }
        };
        write_reply(&mut w, &reply)?;
    }
}

fn write_reply(w: &mut UnixStream, r: &Reply) -> std::io::Result<()> {
    let mut b = serde_json::to_vec(r).map_err(std::io::Error::other)?;
    b.push(b'\n');
    w.write_all(&b)?;
    w.flush()
}

/// Sends one request and reads its reply (the `km3mon ctl` side).
pub fn request(path: &Path, req: &Request, timeout: Duration) -> std::io::Result<Reply> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut b = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    b.push(b'\n');
    s.write_all(&b)?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad reply from {}: {e}", path.display()),
        )
    })
}
