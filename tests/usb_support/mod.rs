//! Shared helpers for the USB tests: records, a fake mount table, a stick that fails on demand.
#![allow(dead_code)]

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cdrbox::config::{UsbConfig, UsbMode};
use cdrbox::record::{CallRecord, CdrTime, Direction, Disposition};
use cdrbox::usb::fs::{FreeSpace, RealFs, StickFile, StickFs};
use sha2::{Digest, Sha256};

/// A record whose start is `base + n` minutes (UTC+3 PBX), unique id `n`.
pub fn rec(n: i64) -> CallRecord {
    // 2026-11-20 09:00:00 +03:00
    let base = 1_795_154_400 + n * 60;
    let t = |u: i64| {
        let ts = jiff::Timestamp::from_second(u).unwrap();
        let off = jiff::tz::Offset::from_seconds(3 * 3600).unwrap();
        let local = ts.to_zoned(jiff::tz::TimeZone::fixed(off));
        CdrTime {
            raw: local.strftime("%Y-%m-%d %H:%M:%S").to_string(),
            utc: Some(u),
            offset_seconds: 3 * 3600,
        }
    };
    CallRecord {
        pbx: "office".into(),
        unique_id: format!("1795154400.{n}"),
        account_code: String::new(),
        source: "1001".into(),
        destination: format!("{}", 2000 + n),
        destination_context: "from-internal".into(),
        caller_id: "\"Anna\" <1001>".into(),
        channel: "PJSIP/1001-00000001".into(),
        destination_channel: "PJSIP/1002-00000002".into(),
        last_application: "Dial".into(),
        last_data: "PJSIP/1002,30".into(),
        start: t(base),
        answer: Some(t(base + 5)),
        end: t(base + 65),
        duration: 65,
        billable_seconds: 60,
        disposition: Disposition::Answered,
        ama_flags: "DOCUMENTATION".into(),
        user_field: String::new(),
        direction: Direction::Internal,
        ring_seconds: 5,
        queue: None,
        agent: Some("1002".into()),
        linked_id: None,
        sequence: None,
        custom_fields: Vec::new(),
        raw: Vec::new(),
        received_utc: base + 66,
        identity: [0; 16],
        origin: Default::default(),
    }
}

pub fn usb_config(root: &Path, table: &Path, mode: UsbMode) -> UsbConfig {
    UsbConfig {
        mount_root: root.to_owned(),
        mounts_file: table.to_owned(),
        mode,
        profile: "standard".into(),
    }
}

/// `/proc/self/mounts` escaping of a path.
pub fn escape(p: &Path) -> String {
    let mut s = String::new();
    for c in p.to_string_lossy().chars() {
        match c {
            ' ' => s.push_str("\\040"),
            '\t' => s.push_str("\\011"),
            '\n' => s.push_str("\\012"),
            '\\' => s.push_str("\\134"),
            c => s.push(c),
        }
    }
    s
}

pub fn mount_line(dev: &str, mp: &Path, fstype: &str, opts: &str) -> String {
    format!("{dev} {} {fstype} {opts} 0 0\n", escape(mp))
}

pub const OTHER_MOUNTS: &str = "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
/dev/mmcblk0p2 / ext4 rw,noatime 0 0
/dev/mmcblk0p1 /boot/firmware vfat rw,relatime 0 0
";

pub fn sha256_hex(b: &[u8]) -> String {
    let d = Sha256::digest(b);
    d.iter().map(|x| format!("{x:02x}")).collect()
}

/// Checks a finished export folder: manifest lines in `sha256sum` format match the files,
/// records count as expected; returns the JSON records' unique ids.
pub fn check_export(folder: &Path, want_records: usize) -> Vec<String> {
    let manifest = std::fs::read_to_string(folder.join("MANIFEST.txt")).unwrap();
    let mut checked = 0;
    for line in manifest.lines() {
        let Some((sha, name)) = line.split_once("  ") else {
            continue;
        };
        if sha.len() != 64 || !sha.bytes().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        let bytes = std::fs::read(folder.join(name)).unwrap();
        assert_eq!(
            sha256_hex(&bytes),
            sha,
            "hash of {name} in {}",
            folder.display()
        );
        checked += 1;
    }
    assert_eq!(
        checked, 2,
        "manifest lists calls.csv and calls.json:\n{manifest}"
    );
    assert!(
        manifest.contains(&format!("records: {want_records}\n")),
        "{manifest}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("calls.json")).unwrap()).unwrap();
    let arr = json.as_array().unwrap();
    assert_eq!(arr.len(), want_records);
    let csv = std::fs::read_to_string(folder.join("calls.csv")).unwrap();
    let mut rd = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(rd.records().count(), want_records);
    arr.iter()
        .map(|r| r["uniqueId"].as_str().unwrap().to_owned())
        .collect()
}

/// Visible (non-hidden) entries of a directory, sorted.
pub fn visible(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

/// Every entry under `dir`, recursively (relative paths).
pub fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if p.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// What a [`FaultyFs`] does wrong.
#[derive(Default)]
pub struct Faults {
    /// After this many bytes written in total, writes fail with `write_errno`.
    pub fail_after_bytes: Option<u64>,
    pub write_errno: i32,
    /// `create_dir` fails with this errno.
    pub mkdir_errno: Option<i32>,
    /// `sync` of files fails with this errno.
    pub fsync_errno: Option<i32>,
    /// Once a write has failed, every later operation fails with EIO too (a pulled stick).
    pub gone_after_failure: bool,
    /// Reading back this file returns one byte flipped.
    pub corrupt_read_back: Option<String>,
    /// `statvfs` answer override.
    pub free: Option<FreeSpace>,
    /// Called once on the first write (e.g. to block, or to edit the mount table).
    pub on_first_write: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    pub written: AtomicU64,
    pub gone: AtomicBool,
    /// Set to make the stick healthy again (a new stick plugged into the same place).
    pub healed: AtomicBool,
}

/// A stick that fails on demand, over the real filesystem.
#[derive(Clone)]
pub struct FaultyFs(pub Arc<Faults>);

impl FaultyFs {
    pub fn new(f: Faults) -> FaultyFs {
        FaultyFs(Arc::new(f))
    }
}

fn errno(n: i32) -> io::Error {
    io::Error::from_raw_os_error(n)
}

impl Faults {
    fn check_gone(&self) -> io::Result<()> {
        if self.gone.load(Ordering::SeqCst) {
            Err(errno(libc::EIO))
        } else {
            Ok(())
        }
    }
}

struct FaultyFile {
    inner: Box<dyn StickFile>,
    f: Arc<Faults>,
}

impl Write for FaultyFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let fs = &self.f;
        fs.check_gone()?;
        let hook = fs.on_first_write.lock().unwrap().take();
        if let Some(h) = hook {
            h();
        }
        let limit = fs
            .fail_after_bytes
            .filter(|_| !fs.healed.load(Ordering::SeqCst));
        if let Some(limit) = limit {
            let before = fs.written.load(Ordering::SeqCst);
            if before + buf.len() as u64 > limit {
                if fs.gone_after_failure {
                    fs.gone.store(true, Ordering::SeqCst);
                }
                return Err(errno(fs.write_errno));
            }
        }
        let n = self.inner.write(buf)?;
        fs.written.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl StickFile for FaultyFile {
    fn sync(&mut self) -> io::Result<()> {
        self.f.check_gone()?;
        if let Some(e) = self.f.fsync_errno {
            return Err(errno(e));
        }
        self.inner.sync()
    }
}

impl StickFs for FaultyFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn StickFile>> {
        self.0.check_gone()?;
        Ok(Box::new(FaultyFile {
            inner: RealFs.create(path)?,
            f: self.0.clone(),
        }))
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.0.check_gone()?;
        if let Some(e) = self.0.mkdir_errno {
            return Err(errno(e));
        }
        RealFs.create_dir(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.0.check_gone()?;
        RealFs.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.0.check_gone()?;
        RealFs.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.0.check_gone()?;
        RealFs.sync_dir(path)
    }
    fn read_back(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        self.0.check_gone()?;
        let mut data = Vec::new();
        RealFs.read_back(path)?.read_to_end(&mut data)?;
        let name = path.file_name().unwrap().to_string_lossy();
        if self.0.corrupt_read_back.as_deref() == Some(&*name) && !data.is_empty() {
            data[0] ^= 0x20;
        }
        Ok(Box::new(io::Cursor::new(data)))
    }
    fn exists(&self, path: &Path) -> bool {
        RealFs.exists(path)
    }
    fn list(&self, path: &Path) -> io::Result<Vec<OsString>> {
        self.0.check_gone()?;
        RealFs.list(path)
    }
    fn free_space(&self, path: &Path) -> io::Result<FreeSpace> {
        match self.0.free {
            Some(f) => Ok(f),
            None => RealFs.free_space(path),
        }
    }
}

pub fn stick_dir(root: &Path, name: &str) -> PathBuf {
    let p = root.join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}
