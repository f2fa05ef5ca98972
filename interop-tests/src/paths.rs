use std::path::{Path, PathBuf};

use crate::error::{io_err, Result};

/// The workspace root (parent of this crate).
pub fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
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
