//! Real disk faults for the file location's tests: a small tmpfs mounted for the test (a full
//! disk: ENOSPC), and an LD_PRELOAD shim, compiled here by gcc, that makes writes and fsyncs
//! under one directory fail with EIO after a number of bytes (a failing disk or NFS server).
//! The tests run as root (here and in CI); a mount or a compile that fails panics with the
//! reason, so no test is skipped in silence.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A tmpfs of a given size, mounted on a temporary directory, unmounted when dropped.
pub struct Tmpfs {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

/// Mounts a tmpfs of `bytes` (rounded up to pages by the kernel).
pub fn tmpfs(bytes: u64) -> Tmpfs {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap();
    let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0755"), "tmpfs"]).arg(&path).output().expect("mount runs");
    assert!(
        out.status.success(),
        "cannot mount a {bytes}-byte tmpfs on {} (the full-disk tests need root and mount(8)): {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Tmpfs { path, _dir: dir }
}

impl Tmpfs {
    /// Gives the file system `bytes` in all: the fault gone (or a smaller disk).
    pub fn resize(&self, bytes: u64) {
        let out = Command::new("mount").args(["-o", &format!("remount,size={bytes}")]).arg(&self.path).output().expect("mount runs");
        assert!(out.status.success(), "cannot resize the tmpfs at {}: {}", self.path.display(), String::from_utf8_lossy(&out.stderr).trim());
    }

    /// Bytes a writer can still use.
    pub fn free_bytes(&self) -> u64 {
        let c = std::ffi::CString::new(self.path.as_os_str().as_encoded_bytes()).unwrap();
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0, "statvfs {}", self.path.display());
        s.f_bavail as u64 * s.f_frsize as u64
    }

    /// Fills the file system until `leave` bytes are free (a page's rounding aside), with a
    /// file named `filler` that is not a restore point's.
    pub fn fill_leaving(&self, leave: u64) {
        let free = self.free_bytes();
        assert!(free > leave, "only {free} bytes free, cannot leave {leave}");
        std::fs::write(self.path.join("filler"), vec![0x5a; (free - leave) as usize]).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a process the test killed may still hold a file open there.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// The shim: every write(2)/pwrite(2)/writev(2) to a file under `KDR_EIO_DIR` counts its bytes;
/// once `KDR_EIO_AFTER_BYTES` have been written there, the rest of that write is refused and so
/// is every later one, with EIO, and so is fsync/fdatasync of such a file (the kernel reports
/// a lost write there too). `KDR_EIO_FSYNC=1` fails every fsync under the directory even while
/// writes pass (writeback failed). A file is "under" the directory when /proc/self/fd names it
/// so. Other files (stdout, the manifests read) are untouched.
const SHIM_C: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *dir;
static size_t dir_len;
static long long budget = -1;
static int fail_fsync;
static atomic_llong written;
static atomic_int tripped;

__attribute__((constructor)) static void init(void) {
    dir = getenv("KDR_EIO_DIR");
    if (dir) dir_len = strlen(dir);
    const char *b = getenv("KDR_EIO_AFTER_BYTES");
    if (b) budget = atoll(b);
    const char *f = getenv("KDR_EIO_FSYNC");
    fail_fsync = f && f[0] == '1';
}

static int under(int fd) {
    if (!dir) return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    return strncmp(path, dir, dir_len) == 0 && (path[dir_len] == '/' || path[dir_len] == 0);
}

/* How many of `count` bytes may be written to fd: all of them elsewhere; under the directory,
   what is left of the budget. -1 with errno EIO when nothing is. */
static ssize_t allowed(int fd, size_t count) {
    if (budget < 0 || !under(fd)) return (ssize_t)count;
    long long before = atomic_load(&written);
    for (;;) {
        if (before >= budget) {
            atomic_store(&tripped, 1);
            errno = EIO;
            return -1;
        }
        long long take = budget - before < (long long)count ? budget - before : (long long)count;
        if (atomic_compare_exchange_weak(&written, &before, before + take)) return (ssize_t)take;
    }
}

#define REAL(name, ret, ...) static ret (*real_##name)(__VA_ARGS__); if (!real_##name) real_##name = dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(write, ssize_t, int, const void *, size_t);
    ssize_t n = allowed(fd, count);
    if (n < 0) return -1;
    return real_write(fd, buf, (size_t)n);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite, ssize_t, int, const void *, size_t, off_t);
    ssize_t n = allowed(fd, count);
    if (n < 0) return -1;
    return real_pwrite(fd, buf, (size_t)n, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    REAL(pwrite64, ssize_t, int, const void *, size_t, off_t);
    ssize_t n = allowed(fd, count);
    if (n < 0) return -1;
    return real_pwrite64(fd, buf, (size_t)n, offset);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    REAL(writev, ssize_t, int, const struct iovec *, int);
    /* Under the directory, one buffer at a time, so the budget applies byte for byte. */
    if (budget < 0 || !under(fd) || iovcnt <= 0) return real_writev(fd, iov, iovcnt);
    ssize_t n = allowed(fd, iov[0].iov_len);
    if (n < 0) return -1;
    return write(fd, iov[0].iov_base, (size_t)n) < 0 ? -1 : n;
}

static int sync_fails(int fd) {
    return under(fd) && (fail_fsync || atomic_load(&tripped));
}

int fsync(int fd) {
    REAL(fsync, int, int);
    if (sync_fails(fd)) { errno = EIO; return -1; }
    return real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync, int, int);
    if (sync_fails(fd)) { errno = EIO; return -1; }
    return real_fdatasync(fd);
}
"#;

/// The shim's shared object, compiled once per test process.
pub fn eio_shim() -> &'static Path {
    static SHIM: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &SHIM
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let src = dir.path().join("eio_shim.c");
            let so = dir.path().join("eio_shim.so");
            std::fs::write(&src, SHIM_C).unwrap();
            let out = Command::new("gcc")
                .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
                .arg(&so)
                .arg(&src)
                .arg("-ldl")
                .output()
                .expect("gcc runs (Debian's gcc package; scripts/test needs it for the EIO tests)");
            assert!(out.status.success(), "gcc could not build the EIO shim: {}", String::from_utf8_lossy(&out.stderr));
            (dir, so)
        })
        .1
}

/// EIO under `dir` for a process started with [`EioFault::apply`]: writes fail once
/// `after_bytes` have been written there; with `fsync`, every fsync there fails.
#[derive(Clone, Debug)]
pub struct EioFault {
    pub dir: PathBuf,
    pub after_bytes: Option<u64>,
    pub fsync: bool,
}

impl EioFault {
    /// Writes fail after `bytes` under `dir` (canonicalised: /proc names files so).
    pub fn after(dir: &Path, bytes: u64) -> Self {
        Self { dir: dir.canonicalize().unwrap(), after_bytes: Some(bytes), fsync: false }
    }

    /// Writes pass, every fsync under `dir` fails.
    pub fn on_fsync(dir: &Path) -> Self {
        Self { dir: dir.canonicalize().unwrap(), after_bytes: None, fsync: true }
    }

    /// Loads the shim into the process `cmd` starts, set to this fault.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env("LD_PRELOAD", eio_shim()).env("KDR_EIO_DIR", &self.dir).env("KDR_EIO_FSYNC", if self.fsync { "1" } else { "0" });
        match self.after_bytes {
            Some(b) => cmd.env("KDR_EIO_AFTER_BYTES", b.to_string()),
            None => cmd.env_remove("KDR_EIO_AFTER_BYTES"),
        };
    }

    /// The same as environment pairs (a pod's env, which the kubelet stand-in starts clean).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("LD_PRELOAD".to_owned(), eio_shim().display().to_string()),
            ("KDR_EIO_DIR".to_owned(), self.dir.display().to_string()),
            ("KDR_EIO_FSYNC".to_owned(), if self.fsync { "1" } else { "0" }.to_owned()),
        ];
        if let Some(b) = self.after_bytes {
            env.push(("KDR_EIO_AFTER_BYTES".to_owned(), b.to_string()));
        }
        env
    }
}
