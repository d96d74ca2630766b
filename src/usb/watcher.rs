//! The USB watcher thread: polls the mount table (`[usb] mounts_file`) about once a second, runs
//! one verified export per stick appearance under `[usb] mount_root`, and reports
//! [`UsbState`] through a callback. Plus [`eject`], the web page's Eject button.
//!
//! Policy, decided here and documented in `board/usb.md`:
//! - One export per appearance: a stick is exported once when it shows up; to copy again, plug
//!   it again (or press Eject and re-plug). A failed copy is not retried in a loop.
//! - Two sticks: when two or more sticks are waiting at the same time, nothing is copied and the
//!   status says "Two USB sticks are plugged in (…): remove one"; the copy starts on the one
//!   left. (Copying to both would give the second only what the first did not get, since there
//!   is one watermark; picking one silently leaves the person guessing which.) A stick that was
//!   already handled does not block a new one.
//! - A stick with an unsupported filesystem or mounted read-only is reported, not written.
//! - The journal's own stick (any mount holding an excluded path) is never an export target.
//!
//! It never blocks recording: the export runs on this thread and reads through [`UsbSource`].

use std::cell::Cell;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::export::{export, ExportOptions};
use super::fs::StickFs;
use super::mounts::{self, MountEntry};
use super::source::UsbSource;
use super::UsbError;
use crate::clock::Clock;
use crate::config::UsbConfig;
use crate::status::UsbState;

/// How the watcher runs.
#[derive(Debug, Clone)]
pub struct WatcherOptions {
    pub usb: UsbConfig,
    /// `[box] name`, used in export folder names.
    pub box_name: String,
    /// Mount-table poll period (1 s on the box; tests use less).
    pub poll: Duration,
    /// Mounts holding any of these paths are not sticks to export to (pass `[storage] path`).
    pub exclude: Vec<PathBuf>,
    /// Program and leading arguments of the eject command; the mount point is appended.
    /// Default `systemd-mount --umount` (board/usb.md explains the polkit rule it needs);
    /// `umount` is tried when the program is not installed.
    pub eject_command: Vec<String>,
    /// Who is behind a number (`[names]`, learned CallerID names), read when a stick comes,
    /// for the `excel` profile's name columns; `None`: no names.
    pub names: Option<std::sync::Arc<crate::names::Directory>>,
}

impl WatcherOptions {
    pub fn new(usb: &UsbConfig, box_name: &str) -> WatcherOptions {
        WatcherOptions {
            usb: usb.clone(),
            box_name: box_name.to_owned(),
            poll: Duration::from_secs(1),
            exclude: Vec::new(),
            eject_command: vec!["systemd-mount".into(), "--umount".into()],
            names: None,
        }
    }
}

#[derive(Default)]
struct Shared {
    state: UsbState,
    /// The stick the state is about.
    current: Option<PathBuf>,
    copying: bool,
}

/// Handle to the watcher thread. Dropping it stops the thread (after a copy in progress ends).
pub struct UsbWatcher {
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    eject_command: Vec<String>,
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl UsbWatcher {
    /// Starts the thread. `report` is called on every change of state (from the watcher
    /// thread): hand it to `StatusBoard::set_usb`.
    pub fn spawn(
        opts: WatcherOptions,
        source: Arc<dyn UsbSource>,
        fs: Arc<dyn StickFs>,
        clock: Clock,
        report: Box<dyn FnMut(UsbState) + Send>,
    ) -> io::Result<UsbWatcher> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let eject_command = opts.eject_command.clone();
        let mut run = Run {
            opts,
            source,
            fs,
            clock,
            report,
            shared: shared.clone(),
            stop: stop.clone(),
            handled: Vec::new(),
            table_error_logged: false,
        };
        let thread = std::thread::Builder::new()
            .name("usb-watcher".into())
            .spawn(move || run.main())?;
        Ok(UsbWatcher {
            shared,
            stop,
            thread: Some(thread),
            eject_command,
        })
    }

    /// The last state reported.
    pub fn state(&self) -> UsbState {
        lock(&self.shared).state.clone()
    }

    /// The stick the state is about, if any.
    pub fn current_stick(&self) -> Option<PathBuf> {
        lock(&self.shared).current.clone()
    }

    /// The web page's Eject button: unmounts the current stick. Refused while a copy runs.
    /// Returns the mount point that was unmounted.
    pub fn eject(&self) -> Result<PathBuf, UsbError> {
        let mount = {
            let s = lock(&self.shared);
            if s.copying {
                return Err(UsbError::Busy);
            }
            s.current.clone().ok_or(UsbError::NoStick)?
        };
        eject(&self.eject_command, &mount)?;
        Ok(mount)
    }

    /// Stops the thread and waits for it (a copy in progress finishes first).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for UsbWatcher {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Unmounts `mount` with `command` + mount point (default `systemd-mount --umount`; `umount`
/// when that program is missing). The error carries the command's own words.
pub fn eject(command: &[String], mount: &Path) -> Result<(), UsbError> {
    let fail = |detail: String| UsbError::Eject {
        mount: mount.to_owned(),
        detail,
    };
    let (prog, args) = command
        .split_first()
        .ok_or_else(|| fail("no eject command is configured".into()))?;
    let run = |prog: &str, args: &[String]| Command::new(prog).args(args).arg(mount).output();
    let out = match run(prog, args) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && prog != "umount" => run("umount", &[]),
        r => r,
    }
    .map_err(|e| fail(format!("cannot run {prog}: {e}")))?;
    if out.status.success() {
        tracing::info!(target: "usb", mount = %mount.display(), "stick ejected");
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = stderr.trim();
    Err(fail(if text.is_empty() {
        format!("{prog} ended with {}", out.status)
    } else {
        // One line is what fits on the page; the full text goes to the log.
        tracing::warn!(target: "usb", mount = %mount.display(), stderr = %text, "eject failed");
        text.lines().next().unwrap_or(text).to_owned()
    }))
}

/// Identity of one appearance of a stick.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    device: String,
    mount_point: PathBuf,
}

fn key(m: &MountEntry) -> Key {
    Key {
        device: m.device.clone(),
        mount_point: m.mount_point.clone(),
    }
}

struct Run {
    opts: WatcherOptions,
    source: Arc<dyn UsbSource>,
    fs: Arc<dyn StickFs>,
    clock: Clock,
    report: Box<dyn FnMut(UsbState) + Send>,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    /// Sticks present and already handled, with the state their handling ended in.
    handled: Vec<(Key, UsbState)>,
    table_error_logged: bool,
}

impl Run {
    fn main(&mut self) {
        tracing::info!(target: "usb", root = %self.opts.usb.mount_root.display(),
            table = %self.opts.usb.mounts_file.display(), "watching for USB sticks");
        // A manual clock's `advance` unparks us too, so a test's poll period passes without
        // real sleeping.
        let me = std::thread::current();
        let _waker = self.clock.on_advance(move || me.unpark());
        while !self.stop.load(Ordering::SeqCst) {
            self.tick();
            let until = self.clock.now() + self.opts.poll;
            while !self.stop.load(Ordering::SeqCst) && self.clock.now() < until {
                // Parked, not sliced into short sleeps: `halt` unparks us, so an idle box wakes
                // once per poll instead of 20 times a second (found by `cdrbox-bench proc`).
                std::thread::park_timeout(self.clock.until(until));
            }
        }
    }

    fn set(&mut self, state: UsbState, current: Option<PathBuf>) {
        let changed = {
            let mut s = lock(&self.shared);
            s.current = current;
            if s.state == state {
                false
            } else {
                s.state = state.clone();
                true
            }
        };
        if changed {
            (self.report)(state);
        }
    }

    fn sticks(&mut self) -> Vec<MountEntry> {
        let text = match std::fs::read_to_string(&self.opts.usb.mounts_file) {
            Ok(t) => {
                self.table_error_logged = false;
                t
            }
            Err(e) => {
                if !self.table_error_logged {
                    tracing::warn!(target: "usb", file = %self.opts.usb.mounts_file.display(),
                        error = %e, "cannot read the mount table; no stick is seen");
                    self.table_error_logged = true;
                }
                String::new()
            }
        };
        mounts::sticks(
            &mounts::parse_table(&text),
            &self.opts.usb.mount_root,
            &self.opts.exclude,
        )
    }

    fn tick(&mut self) {
        let sticks = self.sticks();
        self.handled
            .retain(|(k, _)| sticks.iter().any(|m| key(m) == *k));
        let pending: Vec<&MountEntry> = sticks
            .iter()
            .filter(|m| !self.handled.iter().any(|(k, _)| *k == key(m)))
            .collect();
        match pending.as_slice() {
            [] => match self.handled.last().cloned() {
                Some((k, st)) => self.set(st, Some(k.mount_point)),
                None => self.set(UsbState::NoStick, None),
            },
            [one] => {
                let m = (*one).clone();
                let st = self.handle(&m);
                self.handled.push((key(&m), st.clone()));
                self.set(st, Some(m.mount_point));
            }
            many => {
                let e = UsbError::TwoSticks {
                    mounts: many.iter().map(|m| m.mount_point.clone()).collect(),
                };
                let message = e.to_string();
                if !matches!(&lock(&self.shared).state, UsbState::Error { message: m } if *m == message)
                {
                    // Once per change, not once per poll.
                    tracing::warn!(target: "usb", "{message}");
                }
                self.set(UsbState::Error { message }, None);
            }
        }
    }

    /// Exports to one new stick; returns the state to show while it stays plugged.
    fn handle(&mut self, m: &MountEntry) -> UsbState {
        let mp = m.mount_point.clone();
        let err = |e: UsbError| {
            tracing::warn!(target: "usb", mount = %mp.display(), "{e}");
            UsbState::Error {
                message: e.to_string(),
            }
        };
        if !m.kind().is_supported() {
            return err(UsbError::UnsupportedFs {
                mount: mp.clone(),
                fstype: m.fstype.clone(),
            });
        }
        if m.read_only() {
            return err(UsbError::ReadOnly { mount: mp.clone() });
        }
        let opts = match ExportOptions::from_config(
            &self.opts.usb,
            &self.opts.box_name,
            self.clock.unix(),
        ) {
            Ok(o) => ExportOptions {
                names: self
                    .opts
                    .names
                    .as_ref()
                    .map(|d| d.snapshot())
                    .unwrap_or_default(),
                ..o
            },
            Err(e) => return err(e),
        };
        tracing::info!(target: "usb", mount = %mp.display(), device = %m.device, fstype = %m.fstype, "stick found; copying");
        lock(&self.shared).copying = true;
        self.set(UsbState::Copying { percent: 0 }, Some(mp.clone()));

        let k = key(m);
        let table = self.opts.usb.mounts_file.clone();
        let root = self.opts.usb.mount_root.clone();
        let exclude = self.opts.exclude.clone();
        let present_now = move || {
            let text = std::fs::read_to_string(&table).unwrap_or_default();
            mounts::sticks(&mounts::parse_table(&text), &root, &exclude)
                .iter()
                .any(|x| key(x) == k)
        };
        // Re-reading the table costs a few µs, but not for every 256 records of a big copy.
        let clock = self.clock.clone();
        let last_check = Cell::new(clock.now());
        let still_present = || {
            let now = clock.now();
            if now - last_check.get() < Duration::from_millis(300) {
                return true;
            }
            last_check.set(now);
            present_now()
        };
        let shared = self.shared.clone();
        let report = &mut self.report;
        let mut progress = |p: u8| {
            let st = UsbState::Copying { percent: p };
            let changed = {
                let mut s = lock(&shared);
                let c = s.state != st;
                s.state = st.clone();
                c
            };
            if changed {
                report(st);
            }
        };
        let result = export(
            &*self.source,
            &*self.fs,
            &mp,
            &opts,
            &mut progress,
            &still_present,
        );
        lock(&self.shared).copying = false;
        match result {
            Ok(r) => {
                tracing::info!(target: "usb", mount = %mp.display(), records = r.records,
                    folder = ?r.folder, "copy verified; safe to remove");
                UsbState::SafeToRemove { records: r.records }
            }
            // Whatever the write error looked like, a stick gone from the table was pulled.
            Err(_) if !present_now() => err(UsbError::Removed),
            Err(e) => err(e),
        }
    }
}
