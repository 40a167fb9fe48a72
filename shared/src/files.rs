//! Local files that hold secrets (the key file; the seed file can use the same helpers): written
//! whole or not at all, owner-only, never through a symbolic link, and read-modify-write cycles
//! serialised between processes.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// Mode of a file holding private keys or secrets.
pub const PRIVATE_MODE: u32 = 0o600;

/// Replaces `path` with `bytes`, readable by its owner only (0600) whatever mode the old file
/// had. A crash leaves the old content or the new, never a truncated file; a symbolic link at
/// `path` is refused.
pub fn write_atomically_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically(path, bytes, PRIVATE_MODE)
}

/// Replaces `path` with `bytes` under `mode`: the bytes go to a temporary file created with
/// `mode` in the same directory (so the rename cannot cross file systems), are flushed to disk,
/// and the temporary file is renamed over `path`; then the directory entry is flushed too.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let temporary = written_beside(path, bytes, mode)?;
    temporary.persist(path).map_err(|e| e.error)?;
    sync_directory(path)
}

/// Replaces `path` with `bytes` as [`write_atomically`] does, keeping the mode the file has, or
/// owner-only (0600) for a new file: for files the operator may have shared on purpose (a seed
/// file), which still may hold secrets.
pub fn write_atomically_keeping_mode(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mode = match std::fs::symlink_metadata(path) {
        Ok(metadata) if !metadata.file_type().is_symlink() => {
            metadata.permissions().mode() & 0o7777
        }
        Ok(_) => return refuse_symlink(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => PRIVATE_MODE,
        Err(e) => return Err(e),
    };
    write_atomically(path, bytes, mode)
}

/// Creates `path` holding `bytes` (0600) only if nothing is there yet, else fails with
/// `AlreadyExists`: of concurrent first runs one wins and the others read its file. The file
/// appears whole (linked in once written), so a reader never sees it half written.
pub fn create_new_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temporary = written_beside(path, bytes, PRIVATE_MODE)?;
    temporary.persist_noclobber(path).map_err(|e| e.error)?;
    sync_directory(path)
}

/// An exclusive advisory lock on `<path>.lock`, held until dropped (and released by the kernel
/// if the process dies). Every read-modify-write of `path` takes it, so two concurrent
/// commands cannot each rewrite the file from the same old content and lose one update.
pub struct FileLock {
    _file: File,
}

pub fn lock(path: &Path) -> io::Result<FileLock> {
    let lock_path = sibling(path, ".lock");
    // O_NOFOLLOW rather than a check before opening: a link swapped in between would be
    // followed, and the lock file created wherever it points.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(PRIVATE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is a symbolic link: refusing to lock through it", lock_path.display()),
            ),
            _ => e,
        })?;
    // Named in full: `File::lock` of the standard library is newer than this crate's MSRV.
    fs4::FileExt::lock(&file)?;
    Ok(FileLock { _file: file })
}

/// A symbolic link where a secret is about to be written is not the operator's file: replacing
/// the link would silently break whatever it pointed to, and following it would write the
/// secret wherever it points.
fn refuse_symlink(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_symlink() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a symbolic link: refusing to write a secret through it; \
             point the setting at a regular file instead",
        )),
        _ => Ok(()),
    }
}

fn written_beside(path: &Path, bytes: &[u8], mode: u32) -> io::Result<NamedTempFile> {
    refuse_symlink(path)?;
    let mut temporary = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(directory(path))?;
    temporary.write_all(bytes)?;
    temporary.as_file().sync_all()?;
    Ok(temporary)
}

fn directory(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A rename is durable once the directory holding it is flushed.
fn sync_directory(path: &Path) -> io::Result<()> {
    File::open(directory(path))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("files-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_private_write_replaces_the_file_owner_only_and_leaves_no_temporary_file() {
        let dir = scratch("replace");
        let path = dir.join("secret.json");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomically_private(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(mode(&path), 0o600);
        let names: Vec<_> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("secret.json")]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_symlink_is_neither_replaced_nor_written_through() {
        let dir = scratch("symlink");
        let (target, link) = (dir.join("target"), dir.join("link"));
        std::fs::write(&target, b"theirs").unwrap();
        std::os::unix::fs::symlink(&target, &link).unwrap();
        for attempt in [write_atomically_private(&link, b"x"), create_new_private(&link, b"x")] {
            let error = attempt.expect_err("refused");
            assert!(error.to_string().contains("symbolic link"), "{error}");
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"theirs");
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A link at the lock's path is never followed, so no lock file is created where it points.
    #[test]
    fn a_lock_is_never_taken_through_a_symlink() {
        let dir = scratch("lock-link");
        let (elsewhere, seed) = (dir.join("elsewhere"), dir.join("seed.toml"));
        std::os::unix::fs::symlink(&elsewhere, dir.join("seed.toml.lock")).unwrap();
        let error = lock(&seed).err().expect("refused");
        assert!(error.to_string().contains("seed.toml.lock is a symbolic link"), "{error}");
        assert!(!elsewhere.exists(), "nothing created where the link points");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn create_new_never_replaces_an_existing_file() {
        let dir = scratch("create-new");
        let path = dir.join("secret.json");
        create_new_private(&path, b"first").unwrap();
        assert_eq!(mode(&path), 0o600);
        let second = create_new_private(&path, b"second").expect_err("already there");
        assert_eq!(second.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_kept_at_its_mode_keeps_it_a_new_one_is_private_and_a_link_is_refused() {
        let dir = scratch("keeping");
        let shared = dir.join("seed.toml");
        std::fs::write(&shared, b"old").unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically_keeping_mode(&shared, b"new").unwrap();
        assert_eq!(std::fs::read(&shared).unwrap(), b"new");
        assert_eq!(mode(&shared), 0o640);

        let fresh = dir.join("new.toml");
        write_atomically_keeping_mode(&fresh, b"x").unwrap();
        assert_eq!(mode(&fresh), 0o600);

        let link = dir.join("link.toml");
        std::os::unix::fs::symlink(&shared, &link).unwrap();
        assert!(write_atomically_keeping_mode(&link, b"evil").is_err());
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&shared).unwrap(), b"new");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
