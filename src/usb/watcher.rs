//! The USB watcher thread: watches the mount table (`[usb] mounts_file`), runs one verified
//! export per stick appearance under `[usb] mount_root`, and reports [`UsbState`] through a
//! callback. Plus [`eject`], the web page's Eject button.
//!
//! Waiting (issue 14 item 4: an idle box should not wake for nothing): the kernel's mount
//! tables (`/proc/self/mounts`, `/proc/mounts`, any file on procfs) signal every change of the
//! mount table with `POLLPRI | POLLERR` (proc(5), "/proc/pid/mounts"), so on procfs the thread
//! sleeps in poll(2) until a stick is mounted or unmounted, re-reading the table at least every
//! [`TABLE_FALLBACK`] in case a change was missed; a stop wakes it through an eventfd. Any
//! other file (tests' fake tables) cannot signal, and is re-read every
//! [`WatcherOptions::poll`].
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
    /// Re-read period of a mount table that is not on procfs (tests' fake tables: they use
    /// less); a procfs table is waited on instead (see the module docs).
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

/// Longest wait between two reads of a procfs mount table, whose changes wake the watcher at
/// once anyway: the fallback if a change notification were ever missed (once a minute idle).
pub const TABLE_FALLBACK: Duration = Duration::from_secs(60);

/// Sleeps until a procfs mount table changes, [`TABLE_FALLBACK`] passes or [`Wake::wake`].
struct TableWait {
    /// The table, kept open only to be polled (each read opens it afresh): the kernel compares
    /// the table's change count with the one this open file last reported.
    table: std::fs::File,
}

/// An eventfd that wakes the watcher's poll(2) (a stop).
struct Wake(std::os::fd::OwnedFd);

impl Wake {
    fn new() -> io::Result<Wake> {
        use std::os::fd::FromRawFd;
        // SAFETY: eventfd has no memory preconditions; a non-negative result is a new fd we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
        Ok(Wake(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
    }

    fn wake(&self) {
        use std::os::fd::AsRawFd;
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to our own eventfd. A full counter (never,
        // at one write per stop) would only fail with EAGAIN: the fd is readable anyway.
        let _ = unsafe { libc::write(self.0.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }
}

impl TableWait {
    /// `Some` when `path` is on procfs (its changes can be waited for), else `None`.
    fn open(path: &Path) -> Option<TableWait> {
        use std::os::fd::AsRawFd;
        let table = std::fs::File::open(path).ok()?;
        // SAFETY: statfs is plain old data, filled by fstatfs on an fd we hold open.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::fstatfs(table.as_raw_fd(), &mut st) };
        (rc == 0 && st.f_type == libc::PROC_SUPER_MAGIC).then_some(TableWait { table })
    }

    /// Returns when the table changed, `wake` was woken, or after `longest`.
    fn wait(&self, wake: &Wake, longest: Duration) {
        use std::os::fd::AsRawFd;
        let mut fds = [
            libc::pollfd {
                fd: self.table.as_raw_fd(),
                events: libc::POLLPRI,
                revents: 0,
            },
            libc::pollfd {
                fd: wake.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = longest.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: `fds` is a live array of two pollfd for fds we hold open. An error (EINTR)
        // only means one early re-read of the table.
        let _ = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
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
    wake: Arc<Wake>,
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
        let wake = Arc::new(Wake::new()?);
        let eject_command = opts.eject_command.clone();
        let mut run = Run {
            wake: wake.clone(),
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
            wake,
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
        self.wake.wake();
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
    wake: Arc<Wake>,
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
        // Opened before the first read: a change after this open is never missed.
        let table = TableWait::open(&self.opts.usb.mounts_file);
        while !self.stop.load(Ordering::SeqCst) {
            self.tick();
            if let Some(table) = &table {
                // In real time: the kernel, not the clock, says when the table changed.
                table.wait(&self.wake, TABLE_FALLBACK);
                continue;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 14 item 4: the box's table (procfs) is waited on, a fake table is re-read.
    #[test]
    fn only_a_procfs_mount_table_is_waited_on() {
        assert!(TableWait::open(Path::new("/proc/self/mounts")).is_some());
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("mounts");
        std::fs::write(&fake, "").unwrap();
        assert!(TableWait::open(&fake).is_none());
        assert!(TableWait::open(&dir.path().join("missing")).is_none());
    }

    /// A stop must end the wait at once, not after the minute of the fallback (the test
    /// would take a minute if it did not).
    #[test]
    fn a_wake_ends_the_wait_on_the_mount_table() {
        let table = TableWait::open(Path::new("/proc/self/mounts")).unwrap();
        let wake = Arc::new(Wake::new().unwrap());
        let w = wake.clone();
        let t = std::thread::spawn(move || table.wait(&w, TABLE_FALLBACK));
        std::thread::sleep(Duration::from_millis(50));
        wake.wake();
        t.join().unwrap();
    }
}
