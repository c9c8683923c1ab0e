//! The one way km3mon writes a whole file (state files, plots, JSON
//! snapshots, the shifters file, the DB cache and cookie, `init`'s
//! files): readers — the web server, a restarted run, a person — see the
//! old content or the new, never a part, also after a crash or a power
//! cut, and a failed write (a full disk) leaves no temporary file.
//!
//! The content goes to a temporary file in the same folder (unnamed on
//! Linux, so nothing is left behind even if the process dies), which is
//! fsynced and renamed over the target, and the folder is fsynced so that
//! the rename itself is durable ([`atomic_write_file`] does all of it).
//! Missing folders are created. Append-only outputs (CSV, JSON Lines,
//! logs) do not come here.
//!
//! Plots are redrawn every few seconds, and the fsyncs cost more than the
//! drawing on a busy disk (tens of ms each, seconds under contention,
//! which starved the plot renderer's time budget): [`replace_with`] is
//! the same temporary file and rename without them. A crash may lose the
//! last drawing of such a file, never leave half of one.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use atomic_write_file::unix::OpenOptionsExt as _;
use atomic_write_file::{AtomicWriteFile, OpenOptions};

/// Writes `bytes` to `path`. An existing file keeps its mode; a new one
/// gets 0666 less the umask.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(path, |w| w.write_all(bytes))
}

/// [`write`] for secrets (passwords, tokens, cookies): mode 0600 from the
/// moment the temporary file exists, whatever mode an older file had.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = AtomicWriteFile::options();
    options.preserve_mode(false).mode(0o600);
    commit(options, path, |w| w.write_all(bytes))
}

/// [`write`] with content produced by `fill` (an encoder writing into the
/// file, buffered). Nothing is replaced unless `fill` succeeds.
pub fn write_with<E: From<io::Error>>(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), E>,
) -> Result<(), E> {
    commit(AtomicWriteFile::options(), path, fill)
}

/// [`write_with`] without the fsyncs, for files that are redrawn all
/// the time (plots): atomic, not durable. Mode 0644, whatever the umask.
pub fn replace_with<E: From<io::Error>>(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), E>,
) -> Result<(), E> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir
        }
        None => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // Removed when dropped (an error below) unless persisted.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)?;
    {
        let mut w = BufWriter::new(tmp.as_file_mut());
        fill(&mut w)?;
        w.flush()?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn commit<E: From<io::Error>>(
    options: OpenOptions,
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), E>,
) -> Result<(), E> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = options.open(path)?;
    {
        let mut w = BufWriter::new(&mut file);
        fill(&mut w)?;
        w.flush()?;
    }
    // Dropping an uncommitted file (an error above) removes it.
    file.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_the_content_creates_folders_and_leaves_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("a/b/state.json");
        write(&path, b"one").unwrap();
        write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(names(&d.path().join("a/b")), ["state.json"]);
    }

    #[test]
    fn a_failing_fill_keeps_the_old_file_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("plot.png");
        write(&path, b"old").unwrap();
        let r: io::Result<()> = write_with(&path, |w| {
            w.write_all(b"half of a new")?;
            Err(io::Error::other("encoder failed"))
        });
        assert_eq!(r.unwrap_err().to_string(), "encoder failed");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(names(d.path()), ["plot.png"]);
    }

    #[test]
    fn replace_is_atomic_and_cleans_up_too() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("plots/dom_rates.png");
        replace_with(&path, |w| w.write_all(b"one")).unwrap();
        let r: io::Result<()> = replace_with(&path, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        assert_eq!(names(&d.path().join("plots")), ["dom_rates.png"]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn secrets_are_0600_also_over_a_readable_file_and_modes_are_kept_otherwise() {
        let d = tempfile::tempdir().unwrap();
        let secret = d.path().join("cookie");
        std::fs::write(&secret, "old").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&secret, b"sid").unwrap();
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read(&secret).unwrap(), b"sid");
        // An ordinary write keeps the mode the operator gave the file.
        let shifters = d.path().join("shifters");
        std::fs::write(&shifters, "x").unwrap();
        std::fs::set_permissions(&shifters, std::fs::Permissions::from_mode(0o640)).unwrap();
        write(&shifters, b"y").unwrap();
        let mode = std::fs::metadata(&shifters).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }

    #[test]
    fn an_unwritable_folder_is_an_error_and_the_file_stays() {
        let d = tempfile::tempdir().unwrap();
        // A file where the folder should be.
        std::fs::write(d.path().join("plots"), "a file").unwrap();
        let e = write(&d.path().join("plots/x.png"), b"png").unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory
            ),
            "{e:?}"
        );
        assert_eq!(std::fs::read(d.path().join("plots")).unwrap(), b"a file");
    }
}
