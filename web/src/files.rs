//! `/plots/<file>` and `/logs/<file>`: files below a root directory and
//! nothing else. The path arrives percent-decoded from the router, so
//! `%2e%2e%2f` is already `../` here; symbolic links are resolved and must
//! stay inside the (resolved) root. Directories answer 404: no listings.

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::io::AsyncReadExt;

/// Why a request path was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// `..`, absolute paths, backslashes, NUL: never a valid request.
    BadPath,
    /// Missing, a directory, or resolving outside the root.
    NotFound,
}

/// Resolves `rel` below `root`; the result exists, is a regular file and
/// lies inside the canonical root even after following symlinks.
pub fn resolve(root: &Path, rel: &str) -> Result<PathBuf, Refused> {
    if rel.is_empty() || rel.contains('\0') || rel.contains('\\') {
        return Err(Refused::BadPath);
    }
    let p = Path::new(rel);
    for c in p.components() {
        match c {
            Component::Normal(_) => {}
            // `./` is harmless, but no client sends it: refuse it with the rest.
            _ => return Err(Refused::BadPath),
        }
    }
    let root = root.canonicalize().map_err(|_| Refused::NotFound)?;
    let full = root.join(p).canonicalize().map_err(|_| Refused::NotFound)?;
    if !full.starts_with(&root) {
        return Err(Refused::NotFound);
    }
    match std::fs::metadata(&full) {
        Ok(m) if m.is_file() => Ok(full),
        _ => Err(Refused::NotFound),
    }
}

pub fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("svg") => "image/svg+xml",
        Some("pdf") => "application/pdf",
        Some("json" | "jsonl") => "application/json",
        Some("csv") => "text/csv; charset=utf-8",
        // Logs, `.dat` dumps and anything else: shown as text or downloaded,
        // never interpreted as a page of this origin.
        Some("log" | "txt" | "out" | "err") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Serves one file below `root`, streamed in chunks (daily logs can be
/// large).
pub async fn serve(root: &Path, rel: &str) -> Response {
    let root = root.to_path_buf();
    let rel_owned = rel.to_string();
    let resolved = tokio::task::spawn_blocking(move || resolve(&root, &rel_owned))
        .await
        .unwrap_or(Err(Refused::NotFound));
    let path = match resolved {
        Ok(p) => p,
        Err(Refused::BadPath) => return (StatusCode::BAD_REQUEST, "bad path\n").into_response(),
        Err(Refused::NotFound) => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
    };
    let Ok(file) = tokio::fs::File::open(&path).await else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let body = Body::from_stream(stream::unfold(Some(file), |f| async move {
        let mut f = f?;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    }));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&path)),
    );
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    // An SVG or a stray HTML file in the plot folder cannot run script as
    // this origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox",
        ),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_escapes() {
        let tmp = std::env::temp_dir().join(format!("km3web-files-{}", std::process::id()));
        let root = tmp.join("plots");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.png"), b"x").unwrap();
        std::fs::write(root.join("sub/b.png"), b"x").unwrap();
        std::fs::write(tmp.join("secret.txt"), b"s").unwrap();
        #[cfg(unix)]
        {
            let _ = std::os::unix::fs::symlink(tmp.join("secret.txt"), root.join("link.png"));
            let _ = std::os::unix::fs::symlink(root.join("a.png"), root.join("inside.png"));
        }
        assert!(resolve(&root, "a.png").is_ok());
        assert!(resolve(&root, "sub/b.png").is_ok());
        assert_eq!(resolve(&root, "../secret.txt"), Err(Refused::BadPath));
        assert_eq!(
            resolve(&root, "sub/../../secret.txt"),
            Err(Refused::BadPath)
        );
        assert_eq!(resolve(&root, "/etc/passwd"), Err(Refused::BadPath));
        assert_eq!(resolve(&root, "..\\secret.txt"), Err(Refused::BadPath));
        assert_eq!(resolve(&root, "sub"), Err(Refused::NotFound));
        assert_eq!(resolve(&root, "missing.png"), Err(Refused::NotFound));
        #[cfg(unix)]
        {
            assert_eq!(resolve(&root, "link.png"), Err(Refused::NotFound));
            assert!(resolve(&root, "inside.png").is_ok());
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
