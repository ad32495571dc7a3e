//! Where the plan keeps a point's objects between reading the point and writing them: one
//! file per tier in a private temporary directory, each object sealed with AES-256-GCM under
//! a key made for this restore that never leaves memory. So the archive is downloaded and
//! decrypted once, memory stays flat in the number of objects, and Secrets never reach the
//! disk in clear; the directory goes when the restore ends (and with the pod's `/tmp`
//! emptyDir if the pod is killed).
//!
//! A record is `length (u32 LE) | counter (u64 LE) | ciphertext and tag`; the counter is the
//! nonce, unique across every file of one key.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::catalog::Entry;

/// A record is one catalog entry; anything this large is not one.
const MAX_RECORD: usize = 64 << 20;

struct Sealer {
    key: LessSafeKey,
    counter: AtomicU64,
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::assume_unique_for_key(n)
}

/// The files of one restore, written by the plan and read by the apply.
pub(super) struct Spill {
    dir: tempfile::TempDir,
    sealer: Arc<Sealer>,
    /// Open writers, by file name; `None` once finished.
    writers: std::collections::BTreeMap<String, BufWriter<File>>,
    /// Bytes written, for the log.
    pub bytes: u64,
}

impl Spill {
    /// A new private directory (0700) under `parent`, or the system's temporary directory.
    pub fn create(parent: Option<&Path>) -> io::Result<Self> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("kubectl-dr-restore-");
        let dir = match parent {
            Some(p) => builder.tempdir_in(p)?,
            None => builder.tempdir()?,
        };
        // Its owner only (tempfile leaves the umask's mode); the records are sealed anyway.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        crate::format::crypto::fill_random(key.as_mut());
        let key = LessSafeKey::new(UnboundKey::new(&aead::AES_256_GCM, key.as_ref()).expect("a 32-byte key"));
        Ok(Self { dir, sealer: Arc::new(Sealer { key, counter: AtomicU64::new(0) }), writers: Default::default(), bytes: 0 })
    }

    /// Appends `entry` to the file `name`.
    pub fn push(&mut self, name: &str, entry: &Entry) -> io::Result<()> {
        let mut record = serde_json::to_vec(entry).map_err(io::Error::other)?;
        let counter = self.sealer.counter.fetch_add(1, Ordering::Relaxed);
        self.sealer.key.seal_in_place_append_tag(nonce(counter), Aad::empty(), &mut record).map_err(|_| io::Error::other("sealing a spilled object failed"))?;
        let writer = match self.writers.get_mut(name) {
            Some(w) => w,
            None => {
                let file = std::fs::OpenOptions::new().create_new(true).write(true).open(self.dir.path().join(name))?;
                self.writers.entry(name.to_owned()).or_insert(BufWriter::with_capacity(1 << 20, file))
            }
        };
        writer.write_all(&(record.len() as u32).to_le_bytes())?;
        writer.write_all(&counter.to_le_bytes())?;
        writer.write_all(&record)?;
        self.bytes += record.len() as u64 + 12;
        Ok(())
    }

    /// Flushes every file; call before reading.
    pub fn finish(&mut self) -> io::Result<()> {
        for (_, mut w) in std::mem::take(&mut self.writers) {
            w.flush()?;
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        Ok(())
    }

    /// The entries of file `name`, in the order they were pushed (none if it was never
    /// written); read on the calling (blocking) thread.
    pub fn reader(&self, name: &str) -> io::Result<SpillReader> {
        let file = match File::open(self.dir.path().join(name)) {
            Ok(f) => Some(BufReader::with_capacity(1 << 20, f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(SpillReader { file, sealer: self.sealer.clone() })
    }
}

pub(super) struct SpillReader {
    file: Option<BufReader<File>>,
    sealer: Arc<Sealer>,
}

impl Iterator for SpillReader {
    type Item = io::Result<Entry>;

    fn next(&mut self) -> Option<io::Result<Entry>> {
        let file = self.file.as_mut()?;
        let mut head = [0u8; 12];
        match file.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return None,
            Err(e) => return Some(Err(e)),
        }
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let counter = u64::from_le_bytes(head[4..].try_into().expect("8 bytes"));
        if len > MAX_RECORD {
            return Some(Err(io::Error::new(io::ErrorKind::InvalidData, "a spilled record is too large: the restore's temporary files were altered")));
        }
        let mut record = vec![0u8; len];
        if let Err(e) = file.read_exact(&mut record) {
            return Some(Err(e));
        }
        let plain = match self.sealer.key.open_in_place(nonce(counter), Aad::empty(), &mut record) {
            Ok(p) => p,
            Err(_) => {
                return Some(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a spilled record failed authentication: the restore's temporary files were altered",
                )))
            }
        };
        let entry = serde_json::from_slice(plain).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
        zeroize::Zeroize::zeroize(&mut record);
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Category;

    #[test]
    fn objects_come_back_in_order_and_are_not_readable_on_disk() {
        let mut spill = Spill::create(None).unwrap();
        let secret = |i: u32| Entry {
            category: Category::Secrets,
            object: serde_json::json!({"kind": "Secret", "data": {"password": format!("hunter{i}")}}),
            source_uid: None,
        };
        for i in 0..100 {
            spill.push(if i % 2 == 0 { "even" } else { "odd" }, &secret(i)).unwrap();
        }
        spill.finish().unwrap();
        let even: Vec<Entry> = spill.reader("even").unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(even.len(), 50);
        assert_eq!(even[1], secret(2));
        assert_eq!(spill.reader("none").unwrap().count(), 0);
        let raw = std::fs::read(spill.dir.path().join("odd")).unwrap();
        assert!(!raw.windows(6).any(|w| w == b"hunter"), "objects are sealed on disk");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(spill.dir.path()).unwrap().permissions().mode() & 0o777, 0o700);
        // A flipped bit is refused, not misread.
        let mut damaged = raw.clone();
        damaged[20] ^= 1;
        std::fs::write(spill.dir.path().join("odd"), damaged).unwrap();
        assert!(spill.reader("odd").unwrap().next().unwrap().is_err());
    }
}
