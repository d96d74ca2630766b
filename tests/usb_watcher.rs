//! The USB watcher against a fake mount table and temporary directories as sticks: a line added
//! to the table makes a verified export within seconds; faults end in clear messages.

use crate::usb_support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdrbox::clock::Clock;
use cdrbox::config::UsbMode;
use cdrbox::status::UsbState;
use cdrbox::usb::fs::RealFs;
use cdrbox::usb::{eject, MemorySource, StickFs, UsbError, UsbSource, UsbWatcher, WatcherOptions};
use usb_support::*;

struct Box_ {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    table: PathBuf,
    src: Arc<MemorySource>,
    states: Arc<Mutex<Vec<UsbState>>>,
    watcher: Option<UsbWatcher>,
}

impl Box_ {
    fn start(n: i64, fs: Arc<dyn StickFs>, tweak: impl FnOnce(&mut WatcherOptions)) -> Box_ {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("media").join("cdrbox");
        std::fs::create_dir_all(&root).unwrap();
        let table = tmp.path().join("mounts");
        std::fs::write(&table, OTHER_MOUNTS).unwrap();
        let src = Arc::new(MemorySource::new());
        for i in 1..=n {
            src.push(rec(i));
        }
        let mut opts = WatcherOptions::new(&usb_config(&root, &table, UsbMode::New), "office");
        opts.poll = Duration::from_millis(50);
        tweak(&mut opts);
        let states = Arc::new(Mutex::new(Vec::new()));
        let st = states.clone();
        let watcher = UsbWatcher::spawn(
            opts,
            src.clone(),
            fs,
            Clock::fixed_wall(1_795_900_000),
            Box::new(move |s| st.lock().unwrap().push(s)),
        )
        .unwrap();
        Box_ {
            _tmp: tmp,
            root,
            table,
            src,
            states,
            watcher: Some(watcher),
        }
    }

    fn w(&self) -> &UsbWatcher {
        self.watcher.as_ref().unwrap()
    }

    fn plug(&self, name: &str, fstype: &str, opts: &str) -> PathBuf {
        let mp = stick_dir(&self.root, name);
        let mut t = std::fs::read_to_string(&self.table).unwrap();
        t.push_str(&mount_line(
            &format!("/dev/sd{}", name.len()),
            &mp,
            fstype,
            opts,
        ));
        std::fs::write(&self.table, t).unwrap();
        mp
    }

    fn unplug(&self, mp: &Path) {
        let esc = escape(mp);
        let t: String = std::fs::read_to_string(&self.table)
            .unwrap()
            .lines()
            .filter(|l| l.split(' ').nth(1) != Some(esc.as_str()))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&self.table, t).unwrap();
    }

    /// Waits (up to 10 s) until the watcher's state satisfies `f`.
    fn wait(&self, what: &str, f: impl Fn(&UsbState) -> bool) -> UsbState {
        let t0 = Instant::now();
        loop {
            let s = self.w().state();
            if f(&s) {
                return s;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "waiting for {what}; state {s:?}; history {:?}",
                self.states.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn folders(&self, mp: &Path) -> Vec<PathBuf> {
        visible(mp)
            .into_iter()
            .map(|n| mp.join(n))
            .filter(|p| p.is_dir())
            .collect()
    }
}

fn safe(s: &UsbState) -> bool {
    matches!(s, UsbState::SafeToRemove { .. })
}

fn error(s: &UsbState) -> bool {
    matches!(s, UsbState::Error { .. })
}

fn message(s: &UsbState) -> String {
    match s {
        UsbState::Error { message } => message.clone(),
        other => panic!("not an error: {other:?}"),
    }
}

#[test]
fn adding_a_mount_line_exports_within_seconds_and_a_second_plug_only_new_records() {
    let b = Box_::start(250, Arc::new(RealFs), |_| {});
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(b.w().state(), UsbState::NoStick);
    assert!(b.w().current_stick().is_none());

    // A label with a space: the table escapes it as \040.
    let mp = b.plug(
        "MY STICK",
        "vfat",
        "rw,nosuid,nodev,noexec,relatime,uid=999",
    );
    let s = b.wait("safe to remove", safe);
    assert_eq!(s, UsbState::SafeToRemove { records: 250 });
    assert_eq!(b.w().current_stick().as_deref(), Some(mp.as_path()));
    let f = b.folders(&mp);
    assert_eq!(f.len(), 1, "{f:?}");
    check_export(&f[0], 250);
    assert_eq!(b.src.watermark().unwrap(), 250);
    {
        let h = b.states.lock().unwrap();
        assert!(
            h.iter().any(|s| matches!(s, UsbState::Copying { .. })),
            "{h:?}"
        );
        assert_eq!(h.last(), Some(&UsbState::SafeToRemove { records: 250 }));
    }
    // Stays exported while plugged: no second copy.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(b.folders(&mp).len(), 1);

    b.unplug(&mp);
    b.wait("no stick", |s| *s == UsbState::NoStick);
    for i in 251..=260 {
        b.src.push(rec(i));
    }
    b.plug("MY STICK", "vfat", "rw");
    let s = b.wait("safe again", safe);
    assert_eq!(s, UsbState::SafeToRemove { records: 10 });
    let mut f = b.folders(&mp);
    f.sort();
    assert_eq!(f.len(), 2);
    let ids = check_export(&f[1], 10);
    assert_eq!(ids[0], "1795154400.251");
    assert_eq!(b.src.watermark().unwrap(), 260);
}

#[test]
fn two_sticks_at_once_copy_to_neither_until_one_is_removed() {
    let b = Box_::start(20, Arc::new(RealFs), |_| {});
    // Both lines appear in one write, as when both are plugged before the next poll.
    let a = stick_dir(&b.root, "A");
    let c = stick_dir(&b.root, "B");
    let mut t = std::fs::read_to_string(&b.table).unwrap();
    t.push_str(&mount_line("/dev/sda1", &a, "vfat", "rw"));
    t.push_str(&mount_line("/dev/sdb1", &c, "exfat", "rw"));
    std::fs::write(&b.table, &t).unwrap();
    let s = b.wait("two sticks", error);
    assert_eq!(
        message(&s),
        format!(
            "Two USB sticks are plugged in ({}, {}): the box copies to one stick at a time — remove one",
            a.display(),
            c.display()
        )
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(visible(&a).is_empty() && visible(&c).is_empty());
    assert_eq!(b.src.watermark().unwrap(), 0);

    b.unplug(&a);
    assert_eq!(
        b.wait("copy to B", safe),
        UsbState::SafeToRemove { records: 20 }
    );
    assert_eq!(b.folders(&c).len(), 1);
    assert!(visible(&a).is_empty());

    // A stick already done does not block a new one.
    b.src.push(rec(21));
    let d = b.plug("CC", "ext4", "rw");
    b.wait("copy to CC", |s| {
        *s == UsbState::SafeToRemove { records: 1 }
    });
    assert_eq!(b.folders(&d).len(), 1);
}

#[test]
fn unsupported_filesystem_and_read_only_mounts_are_reported_not_written() {
    let b = Box_::start(5, Arc::new(RealFs), |_| {});
    let n = b.plug("NTFS", "ntfs3", "rw,nosuid,nodev");
    let s = b.wait("unsupported", error);
    assert_eq!(
        message(&s),
        format!(
            "USB stick {} has an unsupported filesystem \"ntfs3\": format it as FAT32 (vfat), exFAT or ext4",
            n.display()
        )
    );
    b.unplug(&n);
    b.wait("no stick", |s| *s == UsbState::NoStick);
    let r = b.plug("RO", "vfat", "ro,nosuid,nodev");
    let s = b.wait("read-only", error);
    assert!(
        message(&s).contains("is read-only: nothing was copied"),
        "{s:?}"
    );
    assert!(visible(&n).is_empty() && visible(&r).is_empty());
    assert_eq!(b.src.watermark().unwrap(), 0);
}

#[test]
fn stick_pulled_mid_copy_reports_removed_and_the_next_plug_resumes() {
    // The "stick" fails with EIO on its first write and its line leaves the table, as a pull does.
    let cell: Arc<Mutex<Option<(PathBuf, PathBuf)>>> = Arc::new(Mutex::new(None));
    let c2 = cell.clone();
    let fs = FaultyFs::new(Faults {
        fail_after_bytes: Some(0),
        write_errno: libc::EIO,
        gone_after_failure: true,
        on_first_write: Mutex::new(Some(Box::new(move || {
            let (table, mp) = c2.lock().unwrap().clone().unwrap();
            let esc = escape(&mp);
            let t: String = std::fs::read_to_string(&table)
                .unwrap()
                .lines()
                .filter(|l| l.split(' ').nth(1) != Some(esc.as_str()))
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(&table, t).unwrap();
        }))),
        ..Default::default()
    });
    let faults = fs.0.clone();
    let b = Box_::start(3000, Arc::new(fs), |_| {});
    *cell.lock().unwrap() = Some((b.table.clone(), b.root.join("S")));
    let mp = b.plug("S", "vfat", "rw");
    let s = b.wait("removed", error);
    assert_eq!(
        message(&s),
        "USB stick removed during copy; nothing was marked as copied — plug it in again to resume"
    );
    assert_eq!(b.src.watermark().unwrap(), 0);
    assert!(visible(&mp).is_empty(), "{:?}", visible(&mp));
    b.wait("no stick", |s| *s == UsbState::NoStick);

    // Plugged again, the stick works: the whole range is copied.
    faults
        .gone
        .store(false, std::sync::atomic::Ordering::SeqCst);
    faults
        .healed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    b.plug("S", "vfat", "rw");
    assert_eq!(
        b.wait("resumed", safe),
        UsbState::SafeToRemove { records: 3000 }
    );
    let f = b.folders(&mp);
    check_export(&f[0], 3000);
    assert!(!mp.join(cdrbox::usb::export::STAGING_DIR).exists());
    assert_eq!(b.src.watermark().unwrap(), 3000);
}

#[test]
fn full_stick_message_shows_on_the_status() {
    let fs = FaultyFs::new(Faults {
        free: Some(cdrbox::usb::fs::FreeSpace {
            available: 10_000,
            block: 4096,
        }),
        ..Default::default()
    });
    let b = Box_::start(500, Arc::new(fs), |_| {});
    b.plug("FULL", "exfat", "rw");
    let m = message(&b.wait("full", error));
    assert!(
        m.starts_with("USB stick full: needs ") && m.ends_with("MB more (free 0 MB)"),
        "{m}"
    );
    assert_eq!(b.src.watermark().unwrap(), 0);
}

#[test]
fn the_journal_stick_is_not_an_export_target() {
    let mut journal = PathBuf::new();
    let b = Box_::start(5, Arc::new(RealFs), |o| {
        journal = o.usb.mount_root.join("JOURNAL").join("cdrbox");
        o.exclude = vec![journal.clone()];
    });
    let j = b.plug("JOURNAL", "ext4", "rw");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.w().state(), UsbState::NoStick);
    assert!(visible(&j).is_empty());
}

#[test]
fn eject_button() {
    // No stick: a clear refusal.
    let b = Box_::start(3, Arc::new(RealFs), |o| {
        o.eject_command = vec!["true".into()];
    });
    assert_eq!(
        b.w().eject().unwrap_err().to_string(),
        "no USB stick to eject"
    );
    let mp = b.plug("E", "vfat", "rw");
    b.wait("safe", safe);
    assert_eq!(b.w().eject().unwrap(), mp);

    // A failing unmount says why, in the command's own words.
    let e = eject(
        &[
            "sh".into(),
            "-c".into(),
            "echo \"umount: $1: target is busy.\" >&2; exit 32".into(),
            "sh".into(),
        ],
        &mp,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "Eject of USB stick {} failed: umount: {}: target is busy.",
            mp.display(),
            mp.display()
        )
    );
    let e = eject(&["false".into()], &mp).unwrap_err();
    assert!(
        e.to_string().contains("false ended with exit status: 1"),
        "{e}"
    );
    assert!(matches!(
        eject(&[], &mp).unwrap_err(),
        UsbError::Eject { .. }
    ));
}

#[test]
fn eject_is_refused_while_copying() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let fs = FaultyFs::new(Faults {
        on_first_write: Mutex::new(Some(Box::new(move || {
            tx.send(()).unwrap();
            go_rx.recv().unwrap();
        }))),
        ..Default::default()
    });
    let b = Box_::start(10, Arc::new(fs), |o| o.eject_command = vec!["true".into()]);
    b.plug("BUSY", "vfat", "rw");
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(matches!(b.w().state(), UsbState::Copying { .. }));
    assert_eq!(
        b.w().eject().unwrap_err().to_string(),
        "a USB copy is in progress: wait for SAFE TO REMOVE before ejecting"
    );
    go_tx.send(()).unwrap();
    b.wait("safe", safe);
}

impl Drop for Box_ {
    fn drop(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.stop();
        }
    }
}
