//! File helpers the cache and its writers share: synced and atomic writes,
//! directory fsync, sizes, listings and content digests of directories.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cache::key::KeyBuilder;
use crate::error::{Result, ResultExt};

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Milliseconds since the Unix epoch (0 if the clock is set before it).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Writes a file and fsyncs it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .context(|| format!("writing {}", path.display()))?;
    f.sync_all()
        .context(|| format!("syncing {}", path.display()))?;
    Ok(())
}

/// Makes a rename or creation in `dir` durable: fsyncs the directory
/// itself (on Unix; elsewhere the file system does not offer it).
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context(|| format!("syncing directory {}", dir.display()))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Marks temporary files written by [`write_atomic`].
pub const TMP_MARK: &str = ".dflow-tmp-";

/// Replaces `path` atomically: a hidden temporary file beside it
/// (`.NAME.dflow-tmp-PID-N`), fsynced, then renamed over it, and the
/// directory fsynced. A run killed in between leaves only the temporary
/// file, which [`remove_tmp_files`] cleans.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}{TMP_MARK}{}-{}",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    write_synced(&tmp, bytes)?;
    fs::rename(&tmp, path).context(|| format!("replacing {}", path.display()))?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

/// Removes temporary files that killed runs left in `dir` (not recursive).
/// This process's own are left alone: another node of the same run may be
/// writing beside them (two exports into one directory).
pub fn remove_tmp_files(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let ours = format!("{TMP_MARK}{}-", std::process::id());
    for e in rd.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(TMP_MARK) && !name.contains(&ours) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Removes `dir` and everything in it; returns the bytes freed (0 when it
/// was not there).
pub fn remove_dir_sized(dir: &Path) -> Result<u64> {
    let bytes = dir_size(dir);
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).context(|| format!("removing {}", dir.display())),
    }
}

/// Total size of the files under `dir`, recursively (0 when it is missing).
pub fn dir_size(dir: &Path) -> u64 {
    walk_files(dir)
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Files under `dir`, sorted, recursively.
pub fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => out.push(e.path()),
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}

/// BLAKE3 of a file's bytes, as hex (what a table partition's digest is).
pub fn digest_file(path: &Path) -> Result<(String, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut f = File::open(path).context(|| format!("reading {}", path.display()))?;
    let bytes =
        std::io::copy(&mut f, &mut hasher).context(|| format!("reading {}", path.display()))?;
    Ok((hasher.finalize().to_hex().to_string(), bytes))
}

/// Content digest of a directory: relative paths and file contents, sorted.
pub fn digest_dir(dir: &Path) -> Result<(String, u64)> {
    let mut k = KeyBuilder::new();
    let mut bytes = 0;
    for file in walk_files(dir) {
        let rel = file.strip_prefix(dir).unwrap_or(&file);
        let (digest, n) = digest_file(&file)?;
        bytes += n;
        k.str("path", &rel.to_string_lossy());
        k.str("content", &digest);
    }
    Ok((k.finish(), bytes))
}
