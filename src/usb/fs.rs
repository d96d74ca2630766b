//! [`StickFs`]: the few file operations the USB export makes, behind a trait, so tests can make
//! a stick that fills up, vanishes or lies on read-back after N bytes ([`RealFs`] is the real one).
//!
//! Only thin wrappers over std/libc here; the decisions live in `usb::export`.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

/// A file being written on the stick.
pub trait StickFile: Write + Send {
    /// `fsync`: data and metadata on the medium.
    fn sync(&mut self) -> io::Result<()>;
}

/// Space on a filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSpace {
    /// Bytes an unprivileged writer may still use (`f_bavail × f_frsize`).
    pub available: u64,
    /// Allocation unit (`f_frsize`): every file takes a whole number of these.
    pub block: u64,
}

/// File operations on the stick.
pub trait StickFs: Send + Sync {
    /// Creates (truncates) a file for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StickFile>>;
    /// Creates one directory (the parent must exist).
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and what is in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// `rename(2)`: atomic within one filesystem.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// `fsync` of a directory, so a rename or a new entry in it survives a pull.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Opens a file to read back what was written, from the medium rather than the page cache
    /// where the OS allows it.
    fn read_back(&self, path: &Path) -> io::Result<Box<dyn Read + Send>>;
    /// Whether something exists at `path`.
    fn exists(&self, path: &Path) -> bool;
    /// Names in a directory.
    fn list(&self, path: &Path) -> io::Result<Vec<OsString>>;
    /// Free space of the filesystem holding `path`.
    fn free_space(&self, path: &Path) -> io::Result<FreeSpace>;
}

/// The real filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

struct RealFile(File);

impl Write for RealFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl StickFile for RealFile {
    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
}

impl StickFs for RealFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn StickFile>> {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(RealFile(f)))
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        // Opening a directory read-only and fsyncing it is how POSIX persists its entries.
        match File::open(path)?.sync_all() {
            // Some filesystems (and FUSE drivers) refuse fsync on directories; their renames
            // are then as durable as they get.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
            r => r,
        }
    }

    fn read_back(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        let f = File::open(path)?;
        drop_cached_pages(&f);
        Ok(Box::new(f))
    }

    fn exists(&self, path: &Path) -> bool {
        fs::symlink_metadata(path).is_ok()
    }

    fn list(&self, path: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }

    fn free_space(&self, path: &Path) -> io::Result<FreeSpace> {
        statvfs(path)
    }
}

/// Asks the kernel to forget the file's cached pages (they are clean after `fsync`), so the
/// verification read comes from the stick, not from memory. Advisory: errors are ignored.
fn drop_cached_pages(f: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; posix_fadvise only reads its arguments.
    unsafe {
        libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

/// `statvfs(3)` of the filesystem holding `path` ([`crate::fsio::fs_space`]).
pub fn statvfs(path: &Path) -> io::Result<FreeSpace> {
    let s = crate::fsio::fs_space(path)?;
    Ok(FreeSpace {
        available: s.available,
        block: s.block,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_fs_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let fs = RealFs;
        let p = d.path().join("a.partial");
        let mut f = fs.create(&p).unwrap();
        f.write_all(b"hello").unwrap();
        f.sync().unwrap();
        drop(f);
        let q = d.path().join("a");
        fs.rename(&p, &q).unwrap();
        fs.sync_dir(d.path()).unwrap();
        let mut s = String::new();
        fs.read_back(&q).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        assert!(!fs.exists(&p));
        assert_eq!(fs.list(d.path()).unwrap(), vec![OsString::from("a")]);
        let free = fs.free_space(d.path()).unwrap();
        assert!(free.block >= 512);
        assert!(statvfs(&d.path().join("missing")).is_err());
    }
}
