use std::path::{Path, PathBuf};

use crate::error::{io_err, Result};

/// The workspace root (parent of this crate).
pub fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The `peerline` CLI binary, built first with `cargo build -p peerline` (quick: the
/// workspace tests built it already), for tests that run it as a user would.
pub fn peerline_binary() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(&cargo)
        .args(["build", "--quiet", "-p", "peerline", "--bin", "peerline"])
        .current_dir(workspace_dir())
        .status()
        .map_err(io_err(Path::new(&cargo)))?;
    if !status.success() {
        return Err(crate::Error::Peer {
            peer: "peerline".into(),
            reason: format!("cargo build -p peerline: {status}"),
        });
    }
    Ok(target_dir().join("debug/peerline"))
}

/// The workspace target dir: `$CARGO_TARGET_DIR` (relative paths resolved against the
/// workspace root) or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_dir().join(dir)
            }
        }
        _ => workspace_dir().join("target"),
    }
}

/// Config templates the project owns: `interop-tests/configs/`.
pub fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

/// SIPp scenario files the project owns: `interop-tests/scenarios/`.
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// A path for a Unix-domain socket that fits `sun_path` wherever the workspace is cloned
/// (Linux allows 107 bytes, Kamailio's ctl module 104; a test dir under a deep clone can
/// be longer): `/tmp/peerline-<pid>-<n>-<name>`, unique within this process, any stale
/// file at it removed.
pub fn socket_path(name: &str) -> Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let p = PathBuf::from(format!("/tmp/peerline-{}-{n}-{name}", std::process::id()));
    match std::fs::remove_file(&p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) if p.is_dir() => {} // short_dir empties it
        Err(e) => return Err(io_err(&p)(e)),
        Ok(()) => {}
    }
    Ok(p)
}

/// An empty directory at a short path, `/tmp/peerline-<pid>-<n>-<name>/`, for peers that
/// keep paths in small fixed buffers (baresip's `sndfile` truncates its file names past
/// 127 bytes, which a test dir under a deep clone reaches), with a symlink to it at
/// `link` so the test dir still shows what it holds.
pub fn short_dir(name: &str, link: &Path) -> Result<PathBuf> {
    let p = socket_path(name)?;
    if p.exists() {
        std::fs::remove_dir_all(&p).map_err(io_err(&p))?;
    }
    std::fs::create_dir_all(&p).map_err(io_err(&p))?;
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(&p, link).map_err(io_err(link))?;
    Ok(p)
}

/// A per-test working directory, `target/interop/<name>/`, emptied when created.
/// It is kept after the test so logs, configs, recordings and pcaps can be inspected.
#[derive(Debug, Clone)]
pub struct TestDir {
    name: String,
    path: PathBuf,
}

impl TestDir {
    pub fn new(name: &str) -> Result<Self> {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = target_dir().join("interop").join(&safe);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
        }
        std::fs::create_dir_all(&path).map_err(io_err(&path))?;
        Ok(Self { name: safe, path })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A sub-directory (created).
    pub fn subdir(&self, name: &str) -> Result<PathBuf> {
        let p = self.path.join(name);
        std::fs::create_dir_all(&p).map_err(io_err(&p))?;
        Ok(p)
    }

    /// Write a file under the test dir and return its path.
    pub fn write(&self, rel: &str, contents: &str) -> Result<PathBuf> {
        let p = self.path.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        std::fs::write(&p, contents).map_err(io_err(&p))?;
        Ok(p)
    }
}
