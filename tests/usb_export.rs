//! The verified USB export against a temporary directory standing in for the stick: contents,
//! manifest hashes, resumability, and every fault (full, pulled, read-only, bad read-back).

use crate::usb_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use cdrbox::config::UsbMode;
use cdrbox::export::Profile;
use cdrbox::usb::export::{export, ExportOptions, STAGING_DIR};
use cdrbox::usb::fs::{FreeSpace, RealFs};
use cdrbox::usb::{export_to_dir, GapInfo, MemorySource, UsbError, UsbSource};
use usb_support::*;

const NOW: i64 = 1_795_900_000;

fn opts(mode: UsbMode) -> ExportOptions {
    ExportOptions {
        mode,
        profile: Profile::Standard,
        box_name: "office box".into(),
        now_utc: NOW,
        names: Default::default(),
    }
}

fn source_with(n: i64) -> MemorySource {
    let s = MemorySource::new();
    for i in 1..=n {
        s.push(rec(i));
    }
    s
}

fn run(
    src: &MemorySource,
    fs: &dyn cdrbox::usb::StickFs,
    dir: &std::path::Path,
    mode: UsbMode,
) -> Result<cdrbox::usb::ExportReport, UsbError> {
    export(src, fs, dir, &opts(mode), &mut |_| {}, &|| true)
}

/// A first export of `n` records onto a stick with `faults`, which must fail: the stick, the
/// source and the error.
fn failed_export(n: i64, faults: Faults) -> (tempfile::TempDir, MemorySource, UsbError) {
    let stick = tempfile::tempdir().unwrap();
    let src = source_with(n);
    let e = run(&src, &FaultyFs::new(faults), stick.path(), UsbMode::New).unwrap_err();
    (stick, src, e)
}

#[test]
fn first_export_is_verified_and_named_after_box_and_dates() {
    let stick = tempfile::tempdir().unwrap();
    std::fs::write(stick.path().join("holiday.jpg"), b"not ours").unwrap();
    let src = source_with(30);
    let mut seen = Vec::new();
    let r = export(
        &src,
        &RealFs,
        stick.path(),
        &opts(UsbMode::New),
        &mut |p| seen.push(p),
        &|| true,
    )
    .unwrap();
    assert_eq!(r.records, 30);
    assert_eq!((r.after_id, r.upto_id), (0, 30));
    let folder = r.folder.clone().unwrap();
    // PBX-local dates of the first and last start (records start 2026-11-20 09:01 +03:00).
    assert_eq!(
        folder.file_name().unwrap().to_str().unwrap(),
        "office_box_2026-11-20_2026-11-20"
    );
    let ids = check_export(&folder, 30);
    assert_eq!(ids.first().unwrap(), "1795154400.1");
    assert_eq!(ids.last().unwrap(), "1795154400.30");
    // Report hashes are the files' hashes.
    for f in &r.files {
        let b = std::fs::read(folder.join(&f.name)).unwrap();
        assert_eq!(sha256_hex(&b), f.sha256, "{}", f.name);
        assert_eq!(b.len() as u64, f.bytes);
    }
    assert_eq!(src.watermark().unwrap(), 30);
    // Progress was reported and rose monotonically.
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(seen.iter().all(|p| *p < 100));
    // Nothing temporary remains, the stick's own files are untouched.
    let all = tree(stick.path());
    assert!(!all.iter().any(|p| p.contains("partial")), "{all:?}");
    assert_eq!(
        std::fs::read(stick.path().join("holiday.jpg")).unwrap(),
        b"not ours"
    );
    let manifest = std::fs::read_to_string(folder.join("MANIFEST.txt")).unwrap();
    assert!(manifest.contains("box: office box\n"), "{manifest}");
    assert!(manifest.contains("journal rows: 1 to 30\n"), "{manifest}");
    assert!(
        manifest.contains("first call: 2026-11-20T09:01:00+03:00"),
        "{manifest}"
    );
    assert!(manifest.contains("gaps in range: 0\n"), "{manifest}");
}

#[test]
fn second_plug_writes_only_new_records_and_nothing_new_writes_nothing() {
    let stick = tempfile::tempdir().unwrap();
    let src = source_with(10);
    let a = run(&src, &RealFs, stick.path(), UsbMode::New).unwrap();
    for i in 11..=15 {
        src.push(rec(i));
    }
    let b = run(&src, &RealFs, stick.path(), UsbMode::New).unwrap();
    assert_eq!(b.records, 5);
    assert_eq!((b.after_id, b.upto_id), (10, 15));
    // Same dates, so the name clashes and gets a suffix.
    let (fa, fb) = (a.folder.unwrap(), b.folder.unwrap());
    assert_eq!(
        fb.file_name().unwrap().to_str().unwrap(),
        format!("{}-2", fa.file_name().unwrap().to_str().unwrap())
    );
    let ids = check_export(&fb, 5);
    assert_eq!(ids[0], "1795154400.11");
    check_export(&fa, 10);
    assert_eq!(src.watermark().unwrap(), 15);

    let before = tree(stick.path());
    let c = run(&src, &RealFs, stick.path(), UsbMode::New).unwrap();
    assert_eq!(c.records, 0);
    assert!(c.folder.is_none());
    assert_eq!(tree(stick.path()), before);
}

#[test]
fn mode_all_writes_everything_every_time() {
    let stick = tempfile::tempdir().unwrap();
    let src = source_with(8);
    run(&src, &RealFs, stick.path(), UsbMode::New).unwrap();
    let r = run(&src, &RealFs, stick.path(), UsbMode::All).unwrap();
    assert_eq!(r.records, 8);
    check_export(&r.folder.unwrap(), 8);
    assert_eq!(src.watermark().unwrap(), 8);
}

#[test]
fn gaps_in_range_are_listed() {
    let stick = tempfile::tempdir().unwrap();
    let src = source_with(5);
    let t0 = rec(2).start.utc.unwrap();
    src.push_gap(GapInfo {
        pbx: "office".into(),
        from_utc: t0,
        to_utc: Some(t0 + 30),
        filled: None,
    });
    src.push_gap(GapInfo {
        pbx: "office".into(),
        from_utc: t0 - 86_400 * 10,
        to_utc: Some(t0 - 86_400 * 9),
        filled: None,
    });
    // Filled from Master.csv (issue 12): listed, but not counted as open.
    src.push_gap(GapInfo {
        pbx: "office".into(),
        from_utc: t0 + 60,
        to_utc: Some(t0 + 90),
        filled: Some(("master-csv".into(), 3)),
    });
    let r = run(&src, &RealFs, stick.path(), UsbMode::New).unwrap();
    assert_eq!(r.gaps, 1, "open gaps only");
    let m = std::fs::read_to_string(r.folder.unwrap().join("MANIFEST.txt")).unwrap();
    assert!(
        m.contains("open gaps in range: 1 (not filled by an import"),
        "{m}"
    );
    assert!(m.contains("filled gaps in range: 1\n"), "{m}");
    assert!(
        m.contains("gap: office from 2026-11-20T06:02:00Z to 2026-11-20T06:02:30Z (open)"),
        "{m}"
    );
    assert!(
        m.contains("to 2026-11-20T06:03:30Z (filled from master-csv, 3 records added)"),
        "{m}"
    );
}

#[test]
fn stick_full_is_refused_before_writing_with_the_space_needed() {
    let (stick, src, e) = failed_export(
        2000,
        Faults {
            free: Some(FreeSpace {
                available: 1_500_000,
                block: 4096,
            }),
            ..Default::default()
        },
    );
    let msg = e.to_string();
    assert!(
        msg.starts_with("USB stick full: needs ") && msg.ends_with(" MB more (free 1 MB)"),
        "{msg}"
    );
    let UsbError::StickFull { more_bytes, .. } = e else {
        panic!("{e:?}")
    };
    // The dry pass measured the real size: what the real export writes is about that.
    let real = tempfile::tempdir().unwrap();
    let r = run(&source_with(2000), &RealFs, real.path(), UsbMode::New).unwrap();
    let total: u64 = r.files.iter().map(|f| f.bytes).sum();
    assert!(more_bytes + 1_500_000 >= total, "{more_bytes} {total}");
    assert!(tree(stick.path()).is_empty());
    assert_eq!(src.watermark().unwrap(), 0);
}

#[test]
fn enospc_mid_write_says_full_leaves_nothing_and_resumes() {
    let (stick, src, e) = failed_export(
        500,
        Faults {
            fail_after_bytes: Some(20_000),
            write_errno: libc::ENOSPC,
            ..Default::default()
        },
    );
    let msg = e.to_string();
    assert!(msg.starts_with("USB stick full: needs "), "{msg}");
    assert!(msg.contains(" MB more (free "), "{msg}");
    assert!(tree(stick.path()).is_empty(), "{:?}", tree(stick.path()));
    assert_eq!(src.watermark().unwrap(), 0);

    let r = run(&src, &RealFs, stick.path(), UsbMode::New).unwrap();
    assert_eq!(r.records, 500);
    check_export(&r.folder.unwrap(), 500);
}

#[test]
fn stick_pulled_mid_copy_leaves_no_complete_looking_file_and_next_plug_resumes() {
    let stick = tempfile::tempdir().unwrap();
    let src = source_with(400);
    // Copied before: rows 1..=400.
    run(&src, &RealFs, stick.path(), UsbMode::New).unwrap();
    for i in 401..=700 {
        src.push(rec(i));
    }
    let before = visible(stick.path());
    let fs = FaultyFs::new(Faults {
        fail_after_bytes: Some(50_000),
        write_errno: libc::EIO,
        gone_after_failure: true,
        ..Default::default()
    });
    let e = run(&src, &fs, stick.path(), UsbMode::New).unwrap_err();
    assert_eq!(
        e.to_string(),
        "USB stick removed during copy; nothing was marked as copied — plug it in again to resume"
    );
    assert_eq!(src.watermark().unwrap(), 400);
    // The stick was gone, so the staging folder stayed: hidden, and every file in it .partial.
    assert_eq!(visible(stick.path()), before);
    let staged = tree(&stick.path().join(STAGING_DIR));
    assert!(!staged.is_empty());
    assert!(staged.iter().all(|p| p.ends_with(".partial")), "{staged:?}");

    // Next plug: cleans up and copies the same range again.
    let r = run(&src, &RealFs, stick.path(), UsbMode::New).unwrap();
    assert_eq!((r.after_id, r.upto_id, r.records), (400, 700, 300));
    let ids = check_export(&r.folder.unwrap(), 300);
    assert_eq!(ids[0], "1795154400.401");
    assert!(!stick.path().join(STAGING_DIR).exists());
    assert_eq!(src.watermark().unwrap(), 700);
}

#[test]
fn presence_check_failing_is_reported_as_removed() {
    let stick = tempfile::tempdir().unwrap();
    let src = source_with(1000);
    let e = export(
        &src,
        &RealFs,
        stick.path(),
        &opts(UsbMode::New),
        &mut |_| {},
        &|| false,
    )
    .unwrap_err();
    assert!(matches!(e, UsbError::Removed), "{e:?}");
    assert!(visible(stick.path()).is_empty());
    assert_eq!(src.watermark().unwrap(), 0);
}

#[test]
fn fsync_failure_is_removed_and_watermark_stays() {
    let (stick, src, e) = failed_export(
        10,
        Faults {
            fsync_errno: Some(libc::EIO),
            ..Default::default()
        },
    );
    assert!(matches!(e, UsbError::Removed), "{e:?}");
    assert_eq!(src.watermark().unwrap(), 0);
    assert!(tree(stick.path()).is_empty());
}

#[test]
fn read_only_stick_is_named_and_nothing_changes() {
    let (stick, src, e) = failed_export(
        10,
        Faults {
            mkdir_errno: Some(libc::EROFS),
            ..Default::default()
        },
    );
    assert_eq!(
        e.to_string(),
        format!(
            "USB stick {} is read-only: nothing was copied (check its write-protect switch, or repair it on a computer)",
            stick.path().display()
        )
    );
    assert_eq!(src.watermark().unwrap(), 0);
}

#[test]
fn permission_denied_is_not_writable() {
    let (stick, _src, e) = failed_export(
        3,
        Faults {
            mkdir_errno: Some(libc::EACCES),
            ..Default::default()
        },
    );
    assert!(
        e.to_string().starts_with(&format!(
            "USB stick {} is not writable by cdrbox",
            stick.path().display()
        )),
        "{e}"
    );
}

#[test]
fn bad_read_back_fails_verification_without_publishing() {
    for name in ["calls.csv", "calls.json", "MANIFEST.txt"] {
        let (stick, src, e) = failed_export(
            20,
            Faults {
                corrupt_read_back: Some(name.into()),
                ..Default::default()
            },
        );
        assert_eq!(
            e.to_string(),
            format!("USB copy failed verification: {name} read back from the stick differs from what was written (faulty stick?); nothing was marked as copied")
        );
        assert_eq!(src.watermark().unwrap(), 0);
        assert!(tree(stick.path()).is_empty(), "{name}");
    }
}

#[test]
fn efbig_says_fat32_limit() {
    let (_stick, _src, e) = failed_export(
        50,
        Faults {
            fail_after_bytes: Some(1000),
            write_errno: libc::EFBIG,
            ..Default::default()
        },
    );
    assert!(e.to_string().contains("FAT32 files stop at 4 GB"), "{e}");
}

/// Journal whose watermark cannot be saved.
struct NoWatermark(MemorySource);

impl UsbSource for NoWatermark {
    fn watermark(&self) -> Result<i64, cdrbox::usb::SourceError> {
        self.0.watermark()
    }
    fn max_id(&self) -> Result<i64, cdrbox::usb::SourceError> {
        self.0.max_id()
    }
    fn for_each_after(
        &self,
        a: i64,
        u: i64,
        each: &mut dyn FnMut(i64, &cdrbox::record::CallRecord) -> std::io::Result<()>,
    ) -> Result<(), cdrbox::usb::SourceError> {
        self.0.for_each_after(a, u, each)
    }
    fn gaps(&self, f: i64, t: i64) -> Vec<GapInfo> {
        self.0.gaps(f, t)
    }
    fn set_watermark(&self, _: i64) -> Result<(), cdrbox::usb::SourceError> {
        Err(cdrbox::usb::SourceError::Journal(
            "database is locked".into(),
        ))
    }
}

#[test]
fn watermark_not_saved_says_the_copy_is_there_but_will_repeat() {
    let stick = tempfile::tempdir().unwrap();
    let src = NoWatermark(source_with(4));
    let e = export(
        &src,
        &RealFs,
        stick.path(),
        &opts(UsbMode::New),
        &mut |_| {},
        &|| true,
    )
    .unwrap_err();
    let m = e.to_string();
    assert!(m.contains("database is locked"), "{m}");
    assert!(
        m.contains("the next plug copies these records again"),
        "{m}"
    );
    assert_eq!(visible(stick.path()).len(), 1);
}

#[test]
fn a_burst_arriving_during_the_copy_is_never_blocked_and_waits_for_the_next_plug() {
    let stick = tempfile::tempdir().unwrap();
    let src = Arc::new(source_with(300));
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let fs = FaultyFs::new(Faults {
        on_first_write: std::sync::Mutex::new(Some(Box::new(move || {
            started_tx.send(()).unwrap();
            // The copy is stuck inside a write until the burst is in.
            release_rx.recv().unwrap();
        }))),
        ..Default::default()
    });
    let exporter = {
        let src = src.clone();
        let dir = stick.path().to_owned();
        std::thread::spawn(move || {
            export(&*src, &fs, &dir, &opts(UsbMode::New), &mut |_| {}, &|| true)
        })
    };
    started_rx.recv().unwrap();
    // The burst: all 2000 records go in while the export is mid-write (this would deadlock
    // if the export held the journal while writing).
    let done = Arc::new(AtomicBool::new(false));
    let producer = {
        let src = src.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            for i in 301..=2300 {
                src.push(rec(i));
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    producer.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
    release_tx.send(()).unwrap();
    let r = exporter.join().unwrap().unwrap();
    assert_eq!((r.records, r.upto_id), (300, 300));
    check_export(&r.folder.unwrap(), 300);
    assert_eq!(src.watermark().unwrap(), 300);

    let r2 = run(&src, &RealFs, stick.path(), UsbMode::New).unwrap();
    assert_eq!((r2.after_id, r2.upto_id, r2.records), (300, 2300, 2000));
    check_export(&r2.folder.unwrap(), 2000);
}

#[test]
fn export_to_dir_creates_the_directory_and_uses_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out").join("usb");
    let src = source_with(6);
    let mut cfg = usb_config(tmp.path(), &tmp.path().join("no-table"), UsbMode::New);
    cfg.profile = "pbxlogger".into();
    let r = export_to_dir(&src, &dir, &cfg, "box1", NOW, Default::default()).unwrap();
    let folder = r.folder.unwrap();
    assert!(folder.starts_with(&dir));
    let csv = std::fs::read_to_string(folder.join("calls.csv")).unwrap();
    assert!(csv.starts_with("ACC,DIALED_PHONE,"), "{csv}");
    check_export(&folder, 6);
    assert_eq!(src.watermark().unwrap(), 6);
    // Retention deleted copied rows: nothing new, nothing written.
    src.delete_upto(6);
    assert_eq!(
        export_to_dir(&src, &dir, &cfg, "box1", NOW, Default::default())
            .unwrap()
            .records,
        0
    );
    cfg.profile = "nope".into();
    src.push(rec(7));
    let e = export_to_dir(&src, &dir, &cfg, "box1", NOW, Default::default()).unwrap_err();
    assert_eq!(e.to_string(), "[usb] profile \"nope\" is not a CSV profile");
}

#[test]
fn manifest_passes_sha256sum_check_when_available() {
    let stick = tempfile::tempdir().unwrap();
    let src = source_with(3);
    let r = run(&src, &RealFs, stick.path(), UsbMode::New).unwrap();
    let out = std::process::Command::new("sha256sum")
        .args(["-c", "MANIFEST.txt"])
        .current_dir(r.folder.unwrap())
        .output();
    if let Ok(out) = out {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("calls.csv: OK") && text.contains("calls.json: OK"),
            "{text}"
        );
    }
}
