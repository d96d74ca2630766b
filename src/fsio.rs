//! The box's file-system helpers, one of each: [`AtomicFile`] / [`write_atomic`] (a file that
//! appears complete or not at all, with an explicit mode and an optional `.bak`), and
//! [`fs_space`] (`statvfs(3)`: free and total bytes).
//!
//! Why one place: the config file, the password file, exports and the USB copy all need "never
//! half-written, survives power loss", and secrets additionally need "never readable by others,
//! whatever the umask" (issue 11). The recipe is easy to get subtly wrong — forgetting the
//! directory fsync loses the rename on power cut; `OpenOptions::mode` is filtered by the umask,
//! so a 0600 request can become 0600 & ~umask but never *more* private, and an existing file
//! keeps its old mode — so it lives here once.
//!
//! Must not: know what it writes, log, or retry.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How [`AtomicFile`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AtomicOptions {
    /// The file's permission bits (`0o600` for secrets, `0o640` for a config the service group
    /// reads), set explicitly after creation so the umask cannot change them. `None`: what a
    /// new file normally gets (0666 less the umask), for files a person asked for (exports).
    pub mode: Option<u32>,
    /// Before replacing an existing file, keep a copy of it as `<name>.bak` (same mode as the
    /// new file), replacing an older backup. A missing original is not an error.
    pub backup: bool,
}

impl AtomicOptions {
    /// A secret (password file, a config holding the AMI secret): owner only.
    pub const SECRET: AtomicOptions = AtomicOptions {
        mode: Some(0o600),
        backup: false,
    };

    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }

    pub fn backup(mut self, backup: bool) -> Self {
        self.backup = backup;
        self
    }
}

/// A file being written under a temporary name beside its target (`<name>.partial`), renamed
/// over the target by [`AtomicFile::commit`] after an fsync; the directory is fsynced after the
/// rename, so the new name survives a power cut. Dropped without `commit`, the temporary file is
/// removed and the target is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    tmp: PathBuf,
    path: PathBuf,
    opts: AtomicOptions,
}

impl AtomicFile {
    /// Creates (truncating a stale one from a crash) `<path>.partial` for writing.
    pub fn create(path: &Path, opts: AtomicOptions) -> io::Result<AtomicFile> {
        let tmp = sibling(path, ".partial")?;
        let mut open = OpenOptions::new();
        open.write(true).create(true).truncate(true);
        if let Some(mode) = opts.mode {
            // Created private from the first byte; the chmod below also covers a stale file.
            open.mode(mode);
        }
        let file = open.open(&tmp)?;
        if let Some(mode) = opts.mode {
            file.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        Ok(AtomicFile {
            file: Some(file),
            tmp,
            path: path.to_owned(),
            opts,
        })
    }

    /// The temporary file's name (for error messages).
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// fsync, keep the backup if asked, rename over the target, fsync the directory.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("already committed"))?;
        file.sync_all()?;
        drop(file);
        if self.opts.backup {
            keep_backup(&self.path, self.opts.mode)?;
        }
        fs::rename(&self.tmp, &self.path)?;
        sync_dir_of(&self.path)
    }

    fn file(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("already committed"))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file()?.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `contents` to `path` atomically (see [`AtomicFile`]).
pub fn write_atomic(path: &Path, contents: &[u8], opts: AtomicOptions) -> io::Result<()> {
    let mut f = AtomicFile::create(path, opts)?;
    f.write_all(contents)?;
    f.commit()
}

/// `<path>.bak`, the backup [`AtomicOptions::backup`] keeps.
pub fn backup_path(path: &Path) -> io::Result<PathBuf> {
    sibling(path, ".bak")
}

/// `path` with `suffix` appended to its file name (`cdrbox.toml` → `cdrbox.toml.bak`).
fn sibling(path: &Path, suffix: &str) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    let mut name: OsString = name.to_owned();
    name.push(suffix);
    Ok(path.with_file_name(name))
}

/// Copies the current `path` to `<path>.bak` atomically (itself through a `.partial`), so a
/// crash leaves either the old backup or the new one.
fn keep_backup(path: &Path, mode: Option<u32>) -> io::Result<()> {
    let current = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let opts = AtomicOptions {
        mode,
        backup: false,
    };
    write_atomic(&backup_path(path)?, &current, opts)
}

/// fsync of the directory holding `path`, which makes a rename in it durable.
pub fn sync_dir_of(path: &Path) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir)?.sync_all()
}

/// Space on the filesystem holding a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsSpace {
    /// Bytes an unprivileged process may still write (`f_bavail`).
    pub available: u64,
    /// Size of the filesystem in bytes (`f_blocks`).
    pub total: u64,
    /// Allocation unit in bytes (`f_frsize`, else `f_bsize`; at least 1).
    pub block: u64,
}

/// `statvfs(3)` of the filesystem holding `path`.
pub fn fs_space(path: &Path) -> io::Result<FsSpace> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: zeroed is a valid bit pattern for the plain-data struct statvfs fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated string and `st` a valid out pointer for the call.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let block = if st.f_frsize > 0 {
        st.f_frsize as u64
    } else {
        st.f_bsize as u64
    };
    Ok(FsSpace {
        available: (st.f_bavail as u64).saturating_mul(block),
        total: (st.f_blocks as u64).saturating_mul(block),
        block: block.max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// Runs `f` with the process umask set to `mask` (restored after). Tests in this module
    /// that depend on the umask run inside this one function, so they cannot race each other.
    fn with_umask<T>(mask: libc::mode_t, f: impl FnOnce() -> T) -> T {
        // SAFETY: umask only swaps the process's file-creation mask.
        let old = unsafe { libc::umask(mask) };
        let out = f();
        unsafe { libc::umask(old) };
        out
    }

    #[test]
    fn secrets_get_their_mode_whatever_the_umask_and_old_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cdrbox.passwd");
        // An old file readable by everyone, and a permissive umask.
        fs::write(&p, "old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
        with_umask(0o000, || {
            write_atomic(&p, b"admin:hash\n", AtomicOptions::SECRET).unwrap()
        });
        assert_eq!(fs::read_to_string(&p).unwrap(), "admin:hash\n");
        assert_eq!(mode_of(&p), 0o600);
        // A strict umask does not make a 0640 config unreadable for its group.
        let c = d.path().join("cdrbox.toml");
        with_umask(0o077, || {
            write_atomic(&c, b"x = 1\n", AtomicOptions::default().mode(0o640)).unwrap()
        });
        assert_eq!(mode_of(&c), 0o640);
        assert!(!sibling(&p, ".partial").unwrap().exists());
    }

    #[test]
    fn backup_keeps_the_previous_contents() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cdrbox.toml");
        let opts = AtomicOptions::SECRET.backup(true);
        write_atomic(&p, b"first", opts).unwrap();
        assert!(!backup_path(&p).unwrap().exists(), "nothing to back up yet");
        write_atomic(&p, b"second", opts).unwrap();
        write_atomic(&p, b"third", opts).unwrap();
        let bak = backup_path(&p).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "third");
        assert_eq!(fs::read_to_string(&bak).unwrap(), "second");
        assert_eq!(mode_of(&bak), 0o600, "the backup of a secret is a secret");
    }

    #[test]
    fn an_uncommitted_file_leaves_the_target_alone() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("calls.csv");
        fs::write(&p, "complete").unwrap();
        {
            let mut f = AtomicFile::create(&p, AtomicOptions::default()).unwrap();
            f.write_all(b"half").unwrap();
            assert!(f.temp_path().exists());
        }
        assert_eq!(fs::read_to_string(&p).unwrap(), "complete");
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "no .partial left"
        );
        assert!(write_atomic(Path::new("/"), b"x", AtomicOptions::default()).is_err());
    }

    #[test]
    fn fs_space_reads_the_filesystem() {
        let d = tempfile::tempdir().unwrap();
        let s = fs_space(d.path()).unwrap();
        assert!(s.block >= 512);
        assert!(s.total >= s.available && s.total > 0);
        assert!(fs_space(&d.path().join("missing")).is_err());
    }
}
