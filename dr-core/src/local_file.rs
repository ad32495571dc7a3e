//! Files read from the operator's machine (flags such as `--passphrase-file`,
//! `--kubeconfig`, `--s3-ca-bundle`, and the manifests of `backup --from-manifests`).
//!
//! Whatever the path names, the product reads it only when it is a regular file, and only up
//! to a stated limit: a path that names a FIFO would block the command forever, `/dev/zero`
//! or a huge file would grow memory without end, and opening some devices has side effects
//! (a watchdog starts counting), so the type is checked with `stat` before the file is opened
//! and again, on the open file, before a byte is read.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The most read from any one file that is not a secret: a manifest, a kubeconfig, a CA
/// bundle. The same as a point's manifest and catalog lines (16 MiB): a Kubernetes object
/// is at most about 1.5 MiB (etcd's request limit), so no real file comes near it.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The most read as a secret (a passphrase or a token): room for any, and small enough to
/// be allocated up front, so the buffer never reallocates and leaves no unwiped copy.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LocalFileError {
    #[error("cannot read {what} {path}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{what} {path} is {kind}, not a regular file: give a regular file")]
    NotRegular { what: &'static str, path: PathBuf, kind: &'static str },
    #[error("{what} {path} is too large: it holds more than {}, the most kubectl-dr reads from one file", human(*limit))]
    TooLarge { what: &'static str, path: PathBuf, limit: u64 },
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// What a file that is not regular is, for the message.
pub fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else {
        "a special file"
    }
}

/// Whether symbolic links are followed when the file is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    /// The path was given by the operator (a flag): a link to a regular file is that file
    /// (kubeconfigs and mounted Secrets are often links).
    Follow,
    /// The path was found by walking a directory, whose links the walker resolved already:
    /// a link here means the tree changed under the walker, and is refused.
    Refuse,
}

/// Opens `path` for reading when it is a regular file, and returns it with its size.
/// `what` names the file in messages ("the passphrase file", "manifest").
pub fn open_regular(path: &Path, what: &'static str, links: Links) -> Result<(File, u64), LocalFileError> {
    let io = |source| LocalFileError::Io { what, path: path.to_owned(), source };
    let not_regular = |t| LocalFileError::NotRegular { what, path: path.to_owned(), kind: kind_of(t) };
    let meta = match links {
        Links::Follow => std::fs::metadata(path),
        Links::Refuse => std::fs::symlink_metadata(path),
    }
    .map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(not_regular(meta.file_type()));
    }
    // O_NONBLOCK: should the path become a FIFO between the check and the open, the open
    // returns at once instead of waiting for a writer (it means nothing for a regular file).
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path).map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) if links == Links::Refuse => LocalFileError::NotRegular { what, path: path.to_owned(), kind: "a symbolic link" },
        _ => io(e),
    })?;
    // The file opened is the one checked: the type is read again from the open file.
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(not_regular(meta.file_type()));
    }
    Ok((file, meta.len()))
}

/// The whole of a regular file of at most `limit` bytes.
pub fn read(path: &Path, what: &'static str, limit: u64, links: Links) -> Result<Vec<u8>, LocalFileError> {
    let (file, len) = open_regular(path, what, links)?;
    let too_large = || LocalFileError::TooLarge { what, path: path.to_owned(), limit };
    if len > limit {
        return Err(too_large());
    }
    // Sized from the file, but read to the limit only: a file that grows while it is read
    // (or that reports a size of 0, as /proc files do) is still cut at the limit.
    let mut bytes = Vec::with_capacity(len as usize + 1);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|source| LocalFileError::Io { what, path: path.to_owned(), source })?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// [`read`] as UTF-8 text.
pub fn read_to_string(path: &Path, what: &'static str, limit: u64, links: Links) -> Result<String, LocalFileError> {
    let bytes = read(path, what, limit, links)?;
    String::from_utf8(bytes).map_err(|e| LocalFileError::Io {
        what,
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("it is not UTF-8 text ({})", e.utf8_error())),
    })
}

/// Checks, without keeping its content, that `path` names a regular file of at most `limit`
/// bytes: for files a library reads itself (the kubeconfig), so that it never meets a FIFO
/// or a device, and is not handed a file it would read without end.
pub fn check(path: &Path, what: &'static str, limit: u64) -> Result<(), LocalFileError> {
    let (_, len) = open_regular(path, what, Links::Follow)?;
    if len > limit {
        return Err(LocalFileError::TooLarge { what, path: path.to_owned(), limit });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read(&file, "file", 5, Links::Follow).unwrap(), b"12345");
        let err = read(&file, "file", 4, Links::Follow).unwrap_err().to_string();
        assert!(err.contains("too large") && err.contains("4 bytes") && err.contains(&file.display().to_string()), "{err}");

        // A FIFO is refused before it is opened: the call returns instead of waiting for a writer.
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read(&fifo, "manifest", MAX_FILE_BYTES, Links::Follow).unwrap_err().to_string();
        assert!(err.contains("FIFO") && err.contains("not a regular file"), "{err}");

        // A device, also through a link; and a link where links are refused.
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let err = read(&zero, "the passphrase file", 64, Links::Follow).unwrap_err().to_string();
        assert!(err.contains("character device"), "{err}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read(&link, "file", 5, Links::Follow).unwrap(), b"12345");
        let err = read(&link, "file", 5, Links::Refuse).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        let err = check(dir.path(), "kubeconfig", MAX_FILE_BYTES).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        assert_eq!(human(MAX_FILE_BYTES), "16 MiB");
    }
}
