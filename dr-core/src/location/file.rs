//! A directory location: an NFS share mounted in the Job, or any local directory for the plugin.
//! Objects are written to a hidden temporary file and hard-linked into place, so a name is never
//! overwritten.

use super::{Anomaly, History, Inventory, KeyHistory, LocationError, ObjectReader, ObjectUpload, ObjectVersion, StoredObject};
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

/// A directory location.
#[derive(Clone, Debug)]
pub struct FileLocation {
    pub(super) root: PathBuf,
}

impl FileLocation {
    pub(super) fn path_of(&self, key: &str) -> Result<PathBuf, LocationError> {
        // Keys are built by this crate from validated IDs; refuse anything that could escape.
        if key.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
            return Err(LocationError::Invalid(format!("unsafe object key {key:?}")));
        }
        Ok(self.root.join(key))
    }

    pub(super) async fn check_root(&self) -> Result<(), LocationError> {
        match tokio::fs::metadata(&self.root).await {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(LocationError::Invalid(format!("{} is not a directory", self.root.display()))),
            Err(_) => Err(LocationError::DirectoryMissing { path: self.root.clone() }),
        }
    }

    pub(super) fn not_found_or(&self, key: &str, path: &Path, e: std::io::Error) -> LocationError {
        if e.kind() == std::io::ErrorKind::NotFound {
            LocationError::NotFound { location: format!("file://{}", self.root.display()), key: key.into() }
        } else {
            LocationError::Io { action: "cannot read", path: path.to_owned(), source: e }
        }
    }

    pub(super) async fn create(&self, key: &str) -> Result<ObjectUpload, LocationError> {
        self.check_root().await?;
        let path = self.path_of(key)?;
        let dir = path.parent().expect("keys have a directory").to_owned();
        let location = format!("file://{}", self.root.display());
        tokio::fs::create_dir_all(&dir).await.map_err(write_error("cannot create directory", &dir, &location, key))?;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(LocationError::AlreadyExists { location: format!("file://{}", self.root.display()), key: key.into() });
        }
        let mut tag = [0u8; 6];
        crate::format::crypto::fill_random(&mut tag);
        let name = path.file_name().expect("keys name a file").to_string_lossy();
        let temp = dir.join(format!(".{name}.partial-{}", hex::encode(tag)));
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(&temp).await.map_err(write_error("cannot create", &temp, &location, key))?;
        Ok(ObjectUpload::File(FileUpload { file: Some(tokio::io::BufWriter::with_capacity(1 << 20, file)), temp, path, location, key: key.into() }))
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, LocationError> {
        Ok(self.walk(prefix).await?.0)
    }

    /// The files under `prefix` (one version each: a directory keeps no history), and what
    /// is there that kubectl-dr never writes (links, FIFOs, directories named like files).
    pub(super) async fn inventory(&self, prefix: &str) -> Result<Inventory, LocationError> {
        let (objects, anomalies) = self.walk(prefix).await?;
        let keys = objects
            .into_iter()
            .map(|o| {
                // A file's mtime is no evidence: any writer sets it (touch), and a share copied
                // without -t would make every point look dated back.
                let version = ObjectVersion { id: String::new(), size: o.size, stored_at: None, delete_marker: false };
                (o.key, KeyHistory { versions: vec![version] })
            })
            .collect();
        let why = "a directory location keeps no versions, so an overwrite cannot be told from the original".to_owned();
        Ok(Inventory { keys, history: History::CurrentOnly { why }, anomalies })
    }

    async fn walk(&self, prefix: &str) -> Result<(Vec<StoredObject>, Vec<Anomaly>), LocationError> {
        self.check_root().await?;
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut found = Walked::default();
            // Start from the deepest directory the prefix names, not the whole tree.
            let start_rel = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            let start = root.join(start_rel);
            // Not through a link: a planted link must not lead the walk elsewhere.
            if std::fs::symlink_metadata(&start).is_ok_and(|m| m.is_dir()) {
                walk(&root, &start, &prefix, &mut found)?;
            }
            Ok((found.objects, found.anomalies))
        })
        .await
        .expect("listing task panicked")
    }

    /// Opens a regular file only: not through a symbolic link (a link to `/dev/zero` would be
    /// read forever), and without blocking on a FIFO (which would wait for a writer forever).
    pub(super) async fn open(&self, key: &str) -> Result<(u64, ObjectReader), LocationError> {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let path = self.path_of(key)?;
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path))
                .await
                .expect("open task panicked")
        };
        let file = match opened {
            Ok(f) => f,
            // O_NOFOLLOW on a link: ELOOP.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(LocationError::NotARegularFile { path, what: "a symbolic link" }),
            Err(e) => return Err(self.not_found_or(key, &path, e)),
        };
        let meta = file.metadata().map_err(|e| self.not_found_or(key, &path, e))?;
        let t = meta.file_type();
        if !t.is_file() {
            let what = if t.is_fifo() {
                "a FIFO"
            } else if t.is_dir() {
                "a directory"
            } else if t.is_socket() {
                "a socket"
            } else {
                "a device"
            };
            return Err(LocationError::NotARegularFile { path, what });
        }
        Ok((meta.len(), Box::new(tokio::io::BufReader::with_capacity(1 << 20, tokio::fs::File::from_std(file)))))
    }
}

#[derive(Default)]
struct Walked {
    objects: Vec<StoredObject>,
    anomalies: Vec<Anomaly>,
}

/// Lists regular files, never following a link (the entry's own metadata, not its
/// target's). Anything else under the prefix is an anomaly, and so is a directory whose name
/// is an object's (`manifest.kdr` replaced by a directory must not read as "no manifest").
fn walk(root: &Path, dir: &Path, prefix: &str, found: &mut Walked) -> Result<(), LocationError> {
    use std::os::unix::fs::FileTypeExt;
    let entries = std::fs::read_dir(dir).map_err(|source| LocationError::Io { action: "cannot list", path: dir.to_owned(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| LocationError::Io { action: "cannot list", path: dir.to_owned(), source })?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue; // uploads in progress and editor/OS litter
        }
        let meta = std::fs::symlink_metadata(&path).map_err(|source| LocationError::Io { action: "cannot stat", path: path.clone(), source })?;
        let rel = path.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
        let t = meta.file_type();
        if t.is_dir() {
            let as_dir = format!("{rel}/");
            if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                if name.to_string_lossy().ends_with(".kdr") {
                    found.anomalies.push(Anomaly { key: rel, what: "a directory where a file belongs" });
                } else {
                    walk(root, &path, prefix, found)?;
                }
            }
        } else if rel.starts_with(prefix) {
            if t.is_file() {
                let stored_at = meta.modified().ok().map(time::OffsetDateTime::from);
                found.objects.push(StoredObject { key: rel, size: meta.len(), stored_at });
            } else {
                let what = if t.is_symlink() {
                    "a symbolic link"
                } else if t.is_fifo() {
                    "a FIFO"
                } else if t.is_socket() {
                    "a socket"
                } else {
                    "a device"
                };
                found.anomalies.push(Anomaly { key: rel, what });
            }
        }
    }
    Ok(())
}

/// What a failed write at the location is: a full disk (ENOSPC, EDQUOT) and a failing one
/// (EIO) are said as such, with what to do; anything else with the action and the path.
fn write_error(action: &'static str, path: &Path, location: &str, key: &str) -> impl FnOnce(std::io::Error) -> LocationError {
    let (path, location, key) = (path.to_owned(), location.to_owned(), key.to_owned());
    move |source| match source.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => LocationError::NoSpace { location, key, source },
        Some(libc::EIO) => LocationError::DiskFailed { location, key, source },
        _ => LocationError::Io { action, path, source },
    }
}

/// Writes to a hidden temporary file, then fsyncs and links it into place.
pub struct FileUpload {
    pub(super) file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    pub(super) temp: PathBuf,
    path: PathBuf,
    location: String,
    key: String,
}

impl FileUpload {
    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), LocationError> {
        let file = self.file.as_mut().expect("upload not finished");
        file.write_all(bytes).await.map_err(write_error("cannot write", &self.temp, &self.location, &self.key))
    }

    pub(super) async fn finish(mut self) -> Result<(), LocationError> {
        let mut file = self.file.take().expect("upload not finished");
        let io = |action, path: &Path| write_error(action, path, &self.location, &self.key);
        // Failing here, the temporary file is removed and nothing is linked into place.
        let synced = async {
            file.flush().await.map_err(io("cannot write", &self.temp))?;
            file.get_ref().sync_all().await.map_err(io("cannot fsync", &self.temp))
        }
        .await;
        drop(file);
        if let Err(e) = synced {
            let _ = tokio::fs::remove_file(&self.temp).await;
            return Err(e);
        }
        // A hard link fails if the name exists, so even a racing writer cannot overwrite.
        let linked = tokio::fs::hard_link(&self.temp, &self.path).await;
        let _ = tokio::fs::remove_file(&self.temp).await;
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(LocationError::AlreadyExists { location: self.location.clone(), key: self.key.clone() })
            }
            Err(e) => return Err(io("cannot link into place", &self.path)(e)),
        }
        let dir = self.path.parent().expect("has a parent").to_owned();
        if let Ok(d) = tokio::fs::File::open(&dir).await {
            if let Err(e) = d.sync_all().await {
                // Its name may not survive a crash: take it back, so that a backup that fails
                // leaves no manifest that reads as a complete point.
                let _ = tokio::fs::remove_file(&self.path).await;
                return Err(io("cannot fsync directory", &dir)(e));
            }
        }
        Ok(())
    }
}

impl Drop for FileUpload {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
