//! The verified copy of journal records to a stick (or any directory).
//!
//! Layout on the stick: `<box>_<first-date>_<last-date>/` (a `-2`, `-3`… suffix when taken)
//! holding `calls.csv` (the `[usb] profile`), `calls.json` (array) and `MANIFEST.txt`. Dates are
//! the **PBX-local** calendar dates of the first and last call start (what the office reads on
//! its phones and in the PBX's own reports), `YYYY-MM-DD`.
//!
//! Sequence, chosen so a pull at any instant leaves nothing that looks complete and loses nothing:
//! 1. remove leftovers of an interrupted copy (`.cdrbox-*.partial` directories);
//! 2. snapshot `upto = max_id()`; a dry pass counts records and exact bytes, so a full stick is
//!    refused before anything is written ("needs N MB more");
//! 3. write `calls.csv.partial` + `calls.json.partial` in one streaming pass inside the hidden
//!    staging directory `.cdrbox-export.partial/`, hashing the bytes as they go;
//! 4. fsync each file, rename to its final name, fsync the directory; the same for `MANIFEST.txt`;
//! 5. read every file back (page cache dropped first) and compare SHA-256 and length;
//! 6. rename the staging directory to its final name and fsync the stick's root;
//! 7. only then advance the watermark. Any failure before 7 leaves the watermark where it was,
//!    so the next plug copies the same range again.
//!
//! Records arriving during the copy have ids above the snapshot and wait for the next plug.
//! This module reads the journal only through [`UsbSource`] and never blocks the writer.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::fs::{RealFs, StickFile, StickFs};
pub use super::manifest::folder_name;
use super::manifest::{local_date, manifest_text, placeholder, utc_text, ManifestData, Span};
use super::source::{GapInfo, UsbSource};
use super::UsbError;
use crate::config::{UsbConfig, UsbMode};
use crate::export::{ExportWriter, Format, Profile};
use crate::names::Names;

/// The staging directory; hidden (dot) and suffixed `.partial`, so no person or tool takes it
/// for a finished export.
pub const STAGING_DIR: &str = ".cdrbox-export.partial";
pub const CSV_FILE: &str = "calls.csv";
pub const JSON_FILE: &str = "calls.json";
pub const MANIFEST_FILE: &str = "MANIFEST.txt";
const PARTIAL: &str = ".partial";

/// One file of a finished export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedFile {
    pub name: String,
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the file as verified on the stick.
    pub sha256: String,
}

/// What an export did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// The finished folder; `None` when there was nothing to copy (no folder is written then).
    pub folder: Option<PathBuf>,
    /// Records written.
    pub records: u64,
    /// Journal rows `after_id < id <= upto_id` were exported.
    pub after_id: i64,
    pub upto_id: i64,
    /// `calls.csv`, `calls.json`, `MANIFEST.txt` (empty when nothing was copied).
    pub files: Vec<ExportedFile>,
    /// OPEN gap-ledger intervals in the manifest's range (not filled by an import; the
    /// manifest lists the filled ones too, marked so).
    pub gaps: usize,
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub mode: UsbMode,
    pub profile: Profile,
    pub box_name: String,
    /// Box clock at the start (Unix seconds), written in the manifest.
    pub now_utc: i64,
    /// The people behind the numbers (the `excel` profile's name columns); resolved by the
    /// caller, as the API resolves them.
    pub names: Names,
}

impl ExportOptions {
    /// From `[usb]` (mode, profile) and `[box] name`.
    pub fn from_config(cfg: &UsbConfig, box_name: &str, now_utc: i64) -> Result<Self, UsbError> {
        let profile = cfg
            .profile
            .parse::<Profile>()
            .map_err(|_| UsbError::Profile(cfg.profile.clone()))?;
        Ok(ExportOptions {
            mode: cfg.mode,
            profile,
            box_name: box_name.to_owned(),
            now_utc,
            names: Names::default(),
        })
    }
}

/// `cdrbox usb-export --config F --to DIR`: the same verified export into `dir` (created when
/// missing), with the mode and profile of `[usb]` and the people behind the numbers `names`;
/// no mount is needed or checked.
pub fn export_to_dir(
    source: &dyn UsbSource,
    dir: &Path,
    cfg: &UsbConfig,
    box_name: &str,
    now_utc: i64,
    names: Names,
) -> Result<ExportReport, UsbError> {
    std::fs::create_dir_all(dir).map_err(|e| UsbError::from_io(e, "create", dir))?;
    let opts = ExportOptions {
        names,
        ..ExportOptions::from_config(cfg, box_name, now_utc)?
    };
    export(source, &RealFs, dir, &opts, &mut |_| {}, &|| true)
}

/// Runs one verified export into `dest`. `progress` gets 0–99 while copying (100 is never sent:
/// the caller shows SAFE TO REMOVE on `Ok`). `still_present` is asked every few hundred records;
/// `false` aborts with [`UsbError::Removed`] (the watcher re-reads the mount table there).
pub fn export(
    source: &dyn UsbSource,
    fs: &dyn StickFs,
    dest: &Path,
    opts: &ExportOptions,
    progress: &mut dyn FnMut(u8),
    still_present: &dyn Fn() -> bool,
) -> Result<ExportReport, UsbError> {
    let for_dest = |e: UsbError| match e {
        UsbError::ReadOnly { .. } => UsbError::ReadOnly {
            mount: dest.to_owned(),
        },
        UsbError::NotWritable { source, .. } => UsbError::NotWritable {
            path: dest.to_owned(),
            source,
        },
        other => other,
    };
    remove_leftovers(fs, dest).map_err(for_dest)?;

    let watermark = source
        .watermark()
        .map_err(|e| UsbError::Source(e.to_string()))?;
    let after = match opts.mode {
        UsbMode::New => watermark,
        UsbMode::All => 0,
    };
    let upto = source
        .max_id()
        .map_err(|e| UsbError::Source(e.to_string()))?;
    let nothing = ExportReport {
        folder: None,
        records: 0,
        after_id: after,
        upto_id: upto,
        files: Vec::new(),
        gaps: 0,
    };
    if upto <= after {
        return Ok(nothing);
    }

    let plan = dry_run(source, after, upto, opts)?;
    if plan.span.count == 0 {
        return Ok(nothing);
    }
    let gaps = source.gaps(plan.span.first_utc, plan.span.last_utc);
    let manifest_len = manifest_text(&ManifestData {
        opts,
        after,
        upto,
        span: &plan.span,
        gaps: &gaps,
        files: &[
            placeholder(CSV_FILE, plan.csv_bytes),
            placeholder(JSON_FILE, plan.json_bytes),
        ],
    })
    .len() as u64;

    let free = fs
        .free_space(dest)
        .map_err(|e| for_dest(UsbError::from_io(e, "check free space on", dest)))?;
    let needed = [plan.csv_bytes, plan.json_bytes, manifest_len]
        .iter()
        .map(|b| b.div_ceil(free.block) * free.block)
        .sum::<u64>()
        // The staging directory's own entry.
        + free.block;
    if needed > free.available {
        return Err(UsbError::StickFull {
            more_bytes: needed - free.available,
            free_bytes: free.available,
        });
    }

    let staging = dest.join(STAGING_DIR);
    let result = write_verified(
        source,
        fs,
        dest,
        &staging,
        opts,
        after,
        upto,
        &plan,
        &gaps,
        progress,
        still_present,
    );
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            // Best effort: on a pulled stick this fails too, and the next plug cleans up.
            let _ = fs.remove_dir_all(&staging);
            return Err(match for_dest(e) {
                UsbError::StickFull { more_bytes: 0, .. } => {
                    // The filesystem ran out mid-write although statvfs said it would fit
                    // (metadata, another writer): say what the whole copy needs now.
                    let free_now = fs.free_space(dest).map(|f| f.available).unwrap_or(0);
                    UsbError::StickFull {
                        more_bytes: needed.saturating_sub(free_now).max(super::MB),
                        free_bytes: free_now,
                    }
                }
                other => other,
            });
        }
    };

    // Step 7: the copy is verified and in place; only now is it "copied".
    let new_mark = watermark.max(upto);
    if let Err(e) = source.set_watermark(new_mark) {
        return Err(UsbError::WatermarkNotSaved {
            folder: report.folder.clone().unwrap_or_default(),
            detail: e.to_string(),
        });
    }
    Ok(report)
}

/// Leftovers of an interrupted copy: hidden `.cdrbox-*.partial` directories at the top of the
/// stick. Nothing else on the stick is touched.
fn remove_leftovers(fs: &dyn StickFs, dest: &Path) -> Result<(), UsbError> {
    let names = fs
        .list(dest)
        .map_err(|e| UsbError::from_io(e, "list", dest))?;
    for n in names {
        let s = n.to_string_lossy();
        if s.starts_with(".cdrbox-") && s.ends_with(PARTIAL) {
            let p = dest.join(&n);
            fs.remove_dir_all(&p)
                .map_err(|e| UsbError::from_io(e, "remove the unfinished copy", &p))?;
        }
    }
    Ok(())
}

/// Counts bytes, writes nowhere.
#[derive(Default)]
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Plan {
    span: Span,
    csv_bytes: u64,
    json_bytes: u64,
}

/// The dry pass: exact sizes (the writers are deterministic), count and time span, so a full
/// stick is refused before the first byte and progress has a denominator.
fn dry_run(
    source: &dyn UsbSource,
    after: i64,
    upto: i64,
    opts: &ExportOptions,
) -> Result<Plan, UsbError> {
    let src_err = |e: io::Error| UsbError::Source(e.to_string());
    // The same names as the copy, so the sizes are exact.
    let mut csv = ExportWriter::new(Format::Csv(opts.profile), Counter::default())
        .map_err(src_err)?
        .with_names(opts.names.clone());
    let mut json = ExportWriter::new(Format::Json, Counter::default()).map_err(src_err)?;
    let mut span = Span::default();
    source
        .for_each_after(after, upto, &mut |_, r| {
            csv.write(r)?;
            json.write(r)?;
            span.add(r);
            Ok(())
        })
        .map_err(|e| UsbError::Source(e.to_string()))?;
    Ok(Plan {
        span,
        csv_bytes: csv.finish().map_err(src_err)?.0,
        json_bytes: json.finish().map_err(src_err)?.0,
    })
}

/// Hashes and counts what passes through to the file.
struct Hashing {
    inner: io::BufWriter<ErrnoKeeper>,
    hasher: Sha256,
    bytes: u64,
}

/// Remembers the OS error code of the last failed write: the CSV writer's `finish` rewraps
/// errors as text, and ENOSPC must still be told from EIO afterwards.
struct ErrnoKeeper {
    file: Box<dyn StickFile>,
    errno: Arc<AtomicI32>,
}

impl Write for ErrnoKeeper {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf).inspect_err(|e| self.keep(e))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush().inspect_err(|e| self.keep(e))
    }
}

impl ErrnoKeeper {
    fn keep(&self, e: &io::Error) {
        if let Some(n) = e.raw_os_error() {
            self.errno.store(n, Ordering::Relaxed);
        }
    }
}

/// `e`, or the kept OS error when `e` lost its code on the way up.
fn with_errno(e: io::Error, kept: &AtomicI32) -> io::Error {
    match (e.raw_os_error(), kept.load(Ordering::Relaxed)) {
        (None, n) if n != 0 => io::Error::from_raw_os_error(n),
        _ => e,
    }
}

impl Hashing {
    fn new(f: Box<dyn StickFile>) -> (Hashing, Arc<AtomicI32>) {
        let errno = Arc::new(AtomicI32::new(0));
        let h = Hashing {
            inner: io::BufWriter::with_capacity(
                64 * 1024,
                ErrnoKeeper {
                    file: f,
                    errno: errno.clone(),
                },
            ),
            hasher: Sha256::new(),
            bytes: 0,
        };
        (h, errno)
    }

    /// Flushes, fsyncs and returns (bytes, hex SHA-256).
    fn close(self) -> io::Result<(u64, String)> {
        let mut f = self.inner.into_inner().map_err(|e| e.into_error())?;
        f.flush()?;
        f.file.sync()?;
        Ok((self.bytes, crate::hex::encode(&self.hasher.finalize())))
    }
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Why the streaming pass stopped.
enum Stop {
    Io(io::Error, PathBuf),
    Removed,
}

#[allow(clippy::too_many_arguments)]
fn write_verified(
    source: &dyn UsbSource,
    fs: &dyn StickFs,
    dest: &Path,
    staging: &Path,
    opts: &ExportOptions,
    after: i64,
    upto: i64,
    plan: &Plan,
    gaps: &[GapInfo],
    progress: &mut dyn FnMut(u8),
    still_present: &dyn Fn() -> bool,
) -> Result<ExportReport, UsbError> {
    let io_at = |op: &'static str, p: &Path| {
        let p = p.to_owned();
        move |e: io::Error| UsbError::from_io(e, op, &p)
    };
    fs.create_dir(staging)
        .map_err(io_at("create the folder", staging))?;

    let csv_tmp = staging.join(format!("{CSV_FILE}{PARTIAL}"));
    let json_tmp = staging.join(format!("{JSON_FILE}{PARTIAL}"));
    let csv_file = fs.create(&csv_tmp).map_err(io_at("create", &csv_tmp))?;
    let json_file = fs.create(&json_tmp).map_err(io_at("create", &json_tmp))?;
    let (csv_h, csv_errno) = Hashing::new(csv_file);
    let (json_h, json_errno) = Hashing::new(json_file);
    let mut csv = ExportWriter::new(Format::Csv(opts.profile), csv_h)
        .map_err(|e| UsbError::from_io(with_errno(e, &csv_errno), "write", &csv_tmp))?
        .with_names(opts.names.clone());
    let mut json = ExportWriter::new(Format::Json, json_h)
        .map_err(|e| UsbError::from_io(with_errno(e, &json_errno), "write", &json_tmp))?;

    let total = plan.span.count.max(1);
    let mut done: u64 = 0;
    let mut last_percent = 0u8;
    let mut span = Span::default();
    let mut stop: Option<Stop> = None;
    progress(0);
    let streamed = source.for_each_after(after, upto, &mut |_, r| {
        if let Err(e) = csv.write(r) {
            stop = Some(Stop::Io(with_errno(e, &csv_errno), csv_tmp.clone()));
        } else if let Err(e) = json.write(r) {
            stop = Some(Stop::Io(with_errno(e, &json_errno), json_tmp.clone()));
        } else if done % 256 == 255 && !still_present() {
            stop = Some(Stop::Removed);
        }
        if stop.is_some() {
            return Err(io::Error::other("USB copy stopped"));
        }
        span.add(r);
        done += 1;
        let p = ((done * 100) / total).min(99) as u8;
        if p != last_percent {
            last_percent = p;
            progress(p);
        }
        Ok(())
    });
    match (stop, streamed) {
        (Some(Stop::Removed), _) => return Err(UsbError::Removed),
        (Some(Stop::Io(e, p)), _) => return Err(UsbError::from_io(e, "write", &p)),
        (None, Err(e)) => return Err(UsbError::Source(e.to_string())),
        (None, Ok(())) => {}
    }
    if !still_present() {
        return Err(UsbError::Removed);
    }
    let (csv_bytes, csv_sha) = csv
        .finish()
        .and_then(Hashing::close)
        .map_err(|e| UsbError::from_io(with_errno(e, &csv_errno), "write", &csv_tmp))?;
    let (json_bytes, json_sha) = json
        .finish()
        .and_then(Hashing::close)
        .map_err(|e| UsbError::from_io(with_errno(e, &json_errno), "write", &json_tmp))?;
    let mut files = vec![
        ExportedFile {
            name: CSV_FILE.into(),
            bytes: csv_bytes,
            sha256: csv_sha,
        },
        ExportedFile {
            name: JSON_FILE.into(),
            bytes: json_bytes,
            sha256: json_sha,
        },
    ];
    for (tmp, f) in [(&csv_tmp, &files[0]), (&json_tmp, &files[1])] {
        let to = staging.join(&f.name);
        fs.rename(tmp, &to).map_err(io_at("rename", tmp))?;
    }
    fs.sync_dir(staging).map_err(io_at("sync", staging))?;

    // The manifest describes what was really written (retention may have removed rows between
    // the dry pass and this one; the counts here are the written ones).
    let text = manifest_text(&ManifestData {
        opts,
        after,
        upto,
        span: &span,
        gaps,
        files: &files,
    });
    let man_tmp = staging.join(format!("{MANIFEST_FILE}{PARTIAL}"));
    let (mut man, _) = Hashing::new(fs.create(&man_tmp).map_err(io_at("create", &man_tmp))?);
    man.write_all(text.as_bytes())
        .map_err(io_at("write", &man_tmp))?;
    let (man_bytes, man_sha) = man.close().map_err(io_at("write", &man_tmp))?;
    let man_path = staging.join(MANIFEST_FILE);
    fs.rename(&man_tmp, &man_path)
        .map_err(io_at("rename", &man_tmp))?;
    fs.sync_dir(staging).map_err(io_at("sync", staging))?;
    files.push(ExportedFile {
        name: MANIFEST_FILE.into(),
        bytes: man_bytes,
        sha256: man_sha,
    });

    // Read everything back from the medium and compare.
    for f in &files {
        let p = staging.join(&f.name);
        let (bytes, sha) = hash_file(fs, &p).map_err(io_at("read back", &p))?;
        if bytes != f.bytes || sha != f.sha256 {
            return Err(UsbError::Verify {
                file: f.name.clone(),
            });
        }
    }

    // Publish under the final name: the rename is the moment the export "exists".
    let (first_date, last_date) = match (&span.first, &span.last) {
        (Some(a), Some(b)) => (local_date(a), local_date(b)),
        _ => (
            utc_text(opts.now_utc)[..10].to_owned(),
            utc_text(opts.now_utc)[..10].to_owned(),
        ),
    };
    let base = folder_name(&opts.box_name, &first_date, &last_date);
    let mut folder = dest.join(&base);
    let mut n = 2;
    while fs.exists(&folder) {
        folder = dest.join(format!("{base}-{n}"));
        n += 1;
    }
    fs.rename(staging, &folder)
        .map_err(io_at("rename", staging))?;
    fs.sync_dir(dest).map_err(io_at("sync", dest))?;
    progress(99);

    Ok(ExportReport {
        folder: Some(folder),
        records: span.count,
        after_id: after,
        upto_id: upto,
        files,
        gaps: gaps.iter().filter(|g| g.filled.is_none()).count(),
    })
}

fn hash_file(fs: &dyn StickFs, p: &Path) -> io::Result<(u64, String)> {
    let mut r = fs.read_back(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut n_total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        n_total += n as u64;
    }
    Ok((n_total, crate::hex::encode(&h.finalize())))
}
