//! Every file wgtrain reads or writes by a user-given name goes through here, so the rules
//! hold everywhere:
//! - reads open regular files only (a FIFO would block forever, `/dev/zero` never ends) and
//!   never take more than the file holds;
//! - writes go to a temp file beside the *target* (a symlink is followed, so the link stays
//!   and its target is replaced), fsync'd, renamed over it: a crash leaves the old file whole;
//!   a device, FIFO or directory at the path is an error, never replaced;
//! - temp files of processes that no longer exist (a SIGKILLed run) are removed before the
//!   next write beside them, so they cannot pile up.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Fails unless `path` is a regular file (after following symlinks); returns its size.
pub fn regular_file_len(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(io_error(path))?;
    if !meta.is_file() {
        return Err(Error::invalid_data(
            path,
            "file",
            format!("not a regular file ({})", kind(&meta.file_type())),
        ));
    }
    Ok(meta.len())
}

/// The whole of a regular file, and no more than it held when opened.
pub fn read_regular(path: &Path) -> Result<Vec<u8>> {
    let len = regular_file_len(path)?;
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len)
        .read_to_end(&mut bytes)
        .map_err(io_error(path))?;
    Ok(bytes)
}

fn kind(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        } else if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        } else if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "not a plain file"
    }
}

/// Where a write to `path` lands: the symlink's final target if `path` is one, checked to be a
/// regular file (or absent) in an existing directory. What output flags are checked with
/// before any work starts.
pub fn output_target(path: &Path) -> Result<PathBuf> {
    let target = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => match std::fs::canonicalize(path) {
            Ok(real) => real,
            // A dangling link: write where it points.
            Err(_) => {
                let link = std::fs::read_link(path).map_err(io_error(path))?;
                path.parent().unwrap_or(Path::new(".")).join(link)
            }
        },
        _ => path.to_path_buf(),
    };
    if let Ok(meta) = std::fs::metadata(&target)
        && !meta.is_file()
    {
        return Err(Error::invalid_data(
            path,
            "output",
            format!(
                "is {}: outputs are written to regular files only",
                kind(&meta.file_type())
            ),
        ));
    }
    let dir = parent(&target);
    if !dir.is_dir() {
        return Err(Error::invalid_data(
            path,
            "output",
            format!("its directory {} does not exist", dir.display()),
        ));
    }
    Ok(target)
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The temp file this process writes `target` through.
pub fn temp_path(target: &Path) -> PathBuf {
    target.with_file_name(format!(".{}.tmp-{}", file_name(target), std::process::id()))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Removes `.NAME.tmp-PID` files beside `target` whose process is gone.
pub fn remove_stale_temps(target: &Path) {
    let prefix = format!(".{}.tmp-", file_name(target));
    let Ok(entries) = std::fs::read_dir(parent(target)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes `bytes` to `path` atomically (see the module doc): temp file in the target's
/// directory, fsync, rename, fsync of the directory so the rename itself is durable.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let target = output_target(path)?;
    remove_stale_temps(&target);
    let temp = temp_path(&target);
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, &target)?;
        if let Ok(d) = std::fs::File::open(parent(&target)) {
            d.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(io_error(path))
}

/// Whether two paths name the same file: the same inode when both exist, else the same
/// resolved path (an output that does not exist yet).
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    resolved(a) == resolved(b)
}

/// `path` made absolute through its (existing) directory, for comparing outputs not yet
/// written.
fn resolved(path: &Path) -> Option<PathBuf> {
    let target = output_target(path).ok()?;
    let dir = std::fs::canonicalize(parent(&target)).ok()?;
    Some(dir.join(target.file_name()?))
}
