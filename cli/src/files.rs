//! Replacing files that other processes read and rewrite: whole or not at all, one `tokenctl`
//! writer at a time.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// Replaces `path` with `bytes`: a temporary file in the same directory, flushed to disk, then
/// renamed over it, so a reader or a crash sees the old content or the new, never a truncated
/// file. A file that exists keeps its permissions; a new one is private to its owner (0600).
/// A symbolic link is refused: the rename would replace the link rather than its target.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let existing = match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_symlink() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symbolic link; name the file it points to",
            ));
        }
        Ok(metadata) => Some(metadata),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let dir = parent_dir(path);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut temp =
        tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".tmp").tempfile_in(&dir)?;
    if let Some(metadata) = existing {
        temp.as_file().set_permissions(metadata.permissions())?;
    }
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    // The rename itself lasts only once the directory entry is on disk.
    File::open(&dir)?.sync_all()
}

/// An exclusive lock on a file beside `path`, released when dropped (or when the process dies). Held
/// across a read-modify-write of `path`, it keeps concurrent writers from losing each other's
/// changes. The lock is on a file of its own because the write replaces `path`'s inode.
pub struct WriteLock {
    _file: File,
}

/// Waits for, then takes, the [`WriteLock`] of `path`: `.<name>.lock` beside it.
pub fn lock_for_writing(path: &Path) -> io::Result<WriteLock> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let lock_path = parent_dir(path).join(format!(".{name}.lock"));
    let file = OpenOptions::new().create(true).append(true).open(lock_path)?;
    flock(&file, FlockOperation::LockExclusive)?;
    Ok(WriteLock { _file: file })
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn temp_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn a_replaced_file_keeps_its_mode_and_no_temporary_file_is_left() {
        let dir = temp_dir();
        let path = dir.path().join("seed.toml");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        let names: Vec<_> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["seed.toml"]);
    }

    #[test]
    fn a_new_file_is_private() {
        let dir = temp_dir();
        let path = dir.path().join("new.toml");
        write_atomically(&path, b"x").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_symbolic_link_is_refused_and_left_alone() {
        let dir = temp_dir();
        let target = dir.path().join("target.toml");
        let link = dir.path().join("link.toml");
        fs::write(&target, "old").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(write_atomically(&link, b"new").is_err());
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&target).unwrap(), "old");
    }
}
