//! USB stick export (issue 5): a stick mounted under `[usb] mount_root` gets the
//! records not yet copied (or all) as CSV + JSON with a SHA-256 manifest, written to temporary
//! names, fsynced, renamed, read back and verified before the copy watermark advances.
//!
//! - [`mounts`]: pure parser of the mount table and the filter to sticks.
//! - [`source`]: [`UsbSource`], what the export needs from the journal (`runtime::usb_source`
//!   implements it over the real journal); `memory::MemorySource` for tests (feature `testing`).
//! - [`fs`]: [`StickFs`], the file operations, injectable so tests can fake full/removed media.
//! - [`export`]: the verified copy ([`export::export`], [`export_to_dir`] for `cdrbox usb-export`);
//!   `manifest.rs` the folder name, the span of the copy and `MANIFEST.txt` it writes.
//! - [`watcher`]: the thread that polls the mount table and runs the export once per new stick,
//!   reporting [`crate::status::UsbState`]; [`watcher::eject`] for the web page's Eject button.
//!
//! This module never writes to the journal except through [`UsbSource::set_watermark`], and runs
//! on its own thread, so recording never waits for a stick. `board/usb.md` describes the whole
//! path from udev to SAFE TO REMOVE.

pub mod export;
pub mod fs;
mod manifest;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod mounts;
pub mod source;
pub mod watcher;

use std::io;
use std::path::{Path, PathBuf};

pub use export::{export_to_dir, ExportOptions, ExportReport, ExportedFile};
pub use fs::{RealFs, StickFs};
#[cfg(any(test, feature = "testing"))]
pub use memory::MemorySource;
pub use mounts::{FsKind, MountEntry};
pub use source::{GapInfo, SourceError, UsbSource};
pub use watcher::{eject, UsbWatcher, WatcherOptions};

const MB: u64 = 1_000_000;

fn mb_up(b: u64) -> u64 {
    b.div_ceil(MB)
}

fn mb_down(b: u64) -> u64 {
    b / MB
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a USB copy or eject did not happen. The `Display` text is what a person reads on the
/// web page (and, shortened, on the OLED): it says what happened and what to do.
#[derive(Debug, thiserror::Error)]
pub enum UsbError {
    #[error("USB stick full: needs {} MB more (free {} MB)", mb_up(*.more_bytes), mb_down(*.free_bytes))]
    StickFull { more_bytes: u64, free_bytes: u64 },
    #[error("USB stick {} is read-only: nothing was copied (check its write-protect switch, or repair it on a computer)", .mount.display())]
    ReadOnly { mount: PathBuf },
    #[error("USB stick {} has an unsupported filesystem \"{fstype}\": format it as FAT32 (vfat), exFAT or ext4", .mount.display())]
    UnsupportedFs { mount: PathBuf, fstype: String },
    #[error(
        "USB stick removed during copy; nothing was marked as copied — plug it in again to resume"
    )]
    Removed,
    #[error("Two USB sticks are plugged in ({}): the box copies to one stick at a time — remove one", list(.mounts))]
    TwoSticks { mounts: Vec<PathBuf> },
    #[error("USB stick {} is not writable by cdrbox ({source}); nothing was copied", .path.display())]
    NotWritable { path: PathBuf, source: io::Error },
    #[error("USB copy does not fit in one file on this stick (FAT32 files stop at 4 GB): format the stick as exFAT or ext4; nothing was marked as copied")]
    FileTooBig,
    #[error("USB copy failed verification: {file} read back from the stick differs from what was written (faulty stick?); nothing was marked as copied")]
    Verify { file: String },
    #[error("USB copy failed: cannot {op} {}: {source}; nothing was marked as copied", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("USB copy failed reading the journal: {0}; nothing was marked as copied")]
    Source(String),
    #[error("USB copy is on the stick ({}), but the journal could not record that ({detail}): the next plug copies these records again", .folder.display())]
    WatermarkNotSaved { folder: PathBuf, detail: String },
    #[error("[usb] profile {0:?} is not a CSV profile")]
    Profile(String),
    #[error("no USB stick to eject")]
    NoStick,
    #[error("a USB copy is in progress: wait for SAFE TO REMOVE before ejecting")]
    Busy,
    #[error("Eject of USB stick {} failed: {detail}", .mount.display())]
    Eject { mount: PathBuf, detail: String },
}

impl UsbError {
    /// Maps an I/O error from step `op` on `path` to what it means for a stick.
    pub(crate) fn from_io(e: io::Error, op: &'static str, path: &Path) -> UsbError {
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => UsbError::StickFull {
                more_bytes: 0,
                free_bytes: 0,
            },
            Some(libc::EROFS) => UsbError::ReadOnly {
                mount: path.to_owned(),
            },
            Some(libc::EACCES) | Some(libc::EPERM) => UsbError::NotWritable {
                path: path.to_owned(),
                source: e,
            },
            Some(libc::EFBIG) => UsbError::FileTooBig,
            // What a pulled stick looks like: the device is gone (EIO, ENODEV, ENXIO), or the
            // mount point under us is empty or was lazily unmounted (ENOENT, ENOTCONN, ESTALE).
            Some(
                libc::EIO
                | libc::ENODEV
                | libc::ENXIO
                | libc::ENOENT
                | libc::ENOTCONN
                | libc::ESTALE
                | libc::ESHUTDOWN,
            ) => UsbError::Removed,
            _ => UsbError::Io {
                op,
                path: path.to_owned(),
                source: e,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_what_they_mean_for_a_stick() {
        let p = Path::new("/media/cdrbox/S/x");
        let m = |n: i32| UsbError::from_io(io::Error::from_raw_os_error(n), "write", p);
        assert!(matches!(m(libc::ENOSPC), UsbError::StickFull { .. }));
        assert!(matches!(m(libc::EDQUOT), UsbError::StickFull { .. }));
        assert!(matches!(m(libc::EROFS), UsbError::ReadOnly { .. }));
        assert!(matches!(m(libc::EACCES), UsbError::NotWritable { .. }));
        assert!(matches!(m(libc::EFBIG), UsbError::FileTooBig));
        for n in [
            libc::EIO,
            libc::ENODEV,
            libc::ENOENT,
            libc::ENXIO,
            libc::ESTALE,
        ] {
            assert!(matches!(m(n), UsbError::Removed), "{n}");
        }
        assert_eq!(
            m(libc::EINVAL).to_string(),
            "USB copy failed: cannot write /media/cdrbox/S/x: Invalid argument (os error 22); nothing was marked as copied"
        );
        let full = UsbError::StickFull {
            more_bytes: 1_000_001,
            free_bytes: 2_999_999,
        };
        assert_eq!(
            full.to_string(),
            "USB stick full: needs 2 MB more (free 2 MB)"
        );
    }
}
