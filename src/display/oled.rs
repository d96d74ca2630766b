//! The OLED adapter: an SSD1306 128×64 on I2C (ssd1306 0.10 buffered mode over
//! `linux-embedded-hal`'s `I2cdev`), and the display thread that keeps it showing the status.
//!
//! The only display module with I/O. One thread owns the bus (STYLE.md: one owner per blocking
//! resource). It must never stop the logger: every I2C failure (no ACK, bus gone, display
//! unplugged) drops the panel, reports [`DisplayHealth::Failing`] and re-opens/re-initialises after
//! a capped exponential back-off; driver panics are caught the same way. Nothing is sent while
//! the picture stays the same, and a change sends only the rectangle of pixels that changed.
//! Spec: SSD1306 datasheet (command set), ssd1306 crate docs (buffered mode, dirty rectangle).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use embedded_hal::i2c::{Error as _, ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};
use ssd1306::mode::BufferedGraphicsMode;
use ssd1306::prelude::{
    Brightness, DisplayConfig as _, DisplayRotation, DisplaySize128x64, I2CInterface,
};
use ssd1306::{I2CDisplayInterface, Ssd1306};
use tokio::sync::watch;

use super::frame::{Frame, HEIGHT, WIDTH};
use super::panel::{DisplayHealth, Panel, PanelError};
use super::schedule::{Screen, ScreenSettings};
use crate::clock::{Clock, Mono};
use crate::config::{DisplayConfig, DisplayDriver};
use crate::status::StatusView;

const TARGET: &str = "cdrbox::display";

/// Pre-charge phase 2 the ssd1306 crate uses for its normal brightness levels.
const PRECHARGE: u8 = 2;

/// SSD1306 RAM pages: 8 rows of pixels each.
const PAGES: usize = (HEIGHT / 8) as usize;

/// Changed columns closer than this are sent in one window: a new window costs two command
/// transactions (~10 bytes), more than re-sending a few unchanged columns.
const MERGE_GAP: usize = 10;

/// The last I2C error kind seen on the bus, kept because display-interface reduces every bus
/// error to `BusWriteError` and the user deserves to know "no ACK" from "bus error".
type LastKind = Arc<Mutex<Option<ErrorKind>>>;

/// An `I2c` that passes everything through and remembers the kind of the last error.
struct Tap<I> {
    inner: I,
    last: LastKind,
}

impl<I: I2c> Tap<I> {
    fn note<T>(&self, r: Result<T, I::Error>) -> Result<T, I::Error> {
        if let Err(e) = &r {
            if let Ok(mut last) = self.last.lock() {
                *last = Some(e.kind());
            }
        }
        r
    }
}

impl<I: I2c> ErrorType for Tap<I> {
    type Error = I::Error;
}

impl<I: I2c> I2c for Tap<I> {
    fn read(&mut self, address: u8, read: &mut [u8]) -> Result<(), Self::Error> {
        let r = self.inner.read(address, read);
        self.note(r)
    }

    fn write(&mut self, address: u8, write: &[u8]) -> Result<(), Self::Error> {
        let r = self.inner.write(address, write);
        self.note(r)
    }

    fn write_read(
        &mut self,
        address: u8,
        write: &[u8],
        read: &mut [u8],
    ) -> Result<(), Self::Error> {
        let r = self.inner.write_read(address, write, read);
        self.note(r)
    }

    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        let r = self.inner.transaction(address, operations);
        self.note(r)
    }
}

fn describe(kind: Option<ErrorKind>) -> String {
    match kind {
        Some(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address)) => {
            "no ACK for the address (no display there, or unplugged)".into()
        }
        Some(ErrorKind::NoAcknowledge(_)) => "no ACK (display unplugged?)".into(),
        Some(ErrorKind::Bus) => "bus error".into(),
        Some(ErrorKind::ArbitrationLoss) => "arbitration lost".into(),
        Some(ErrorKind::Overrun) => "overrun".into(),
        Some(other) => format!("{other:?}"),
        None => "write failed".into(),
    }
}

type Driver<I> =
    Ssd1306<I2CInterface<Tap<I>>, DisplaySize128x64, BufferedGraphicsMode<DisplaySize128x64>>;

/// An SSD1306 128×64 on an I2C bus, as a [`Panel`].
pub struct Oled<I: I2c> {
    dev: Driver<I>,
    address: u8,
    last: LastKind,
    /// What the panel shows now, if known; `None` forces a full redraw.
    shown: Option<Frame>,
}

impl<I: I2c> Oled<I> {
    /// Wrap a bus. `address` is the 7-bit address (0x3C, or 0x3D with the address jumper);
    /// `rotation_degrees` 180 turns the picture upside down, anything else is upright.
    /// Nothing is sent until [`Panel::init`].
    pub fn new(i2c: I, address: u8, rotation_degrees: u16) -> Self {
        let last: LastKind = Arc::new(Mutex::new(None));
        let tap = Tap {
            inner: i2c,
            last: Arc::clone(&last),
        };
        let rotation = if rotation_degrees == 180 {
            DisplayRotation::Rotate180
        } else {
            DisplayRotation::Rotate0
        };
        let interface = I2CDisplayInterface::new_custom_address(tap, address);
        let dev =
            Ssd1306::new(interface, DisplaySize128x64, rotation).into_buffered_graphics_mode();
        Self {
            dev,
            address,
            last,
            shown: None,
        }
    }

    /// Give the bus back (tests inspect what was sent).
    pub fn release(self) -> I {
        self.dev.release().release().inner
    }

    fn bus_error<E>(&self, step: &'static str, _e: E) -> PanelError {
        let kind = self.last.lock().ok().and_then(|mut k| k.take());
        PanelError::Bus {
            address: self.address,
            step,
            kind: describe(kind),
        }
    }
}

impl Oled<linux_embedded_hal::I2cdev> {
    /// Open the Linux I2C bus device (`/dev/i2c-1`) for a panel at `address`.
    pub fn open(bus: &Path, address: u8, rotation_degrees: u16) -> Result<Self, PanelError> {
        let i2c = linux_embedded_hal::I2cdev::new(bus).map_err(|e| PanelError::Open {
            bus: bus.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self::new(i2c, address, rotation_degrees))
    }
}

impl<I: I2c> Panel for Oled<I> {
    fn init(&mut self, contrast: u8) -> Result<(), PanelError> {
        self.shown = None;
        self.dev.init().map_err(|e| self.bus_error("init", e))?;
        self.set_contrast(contrast)
    }

    fn draw(&mut self, frame: &Frame) -> Result<(), PanelError> {
        match self.shown.take() {
            // Send only what changed. The driver sends one rectangle per flush (whole 8-row
            // pages, from the leftmost to the rightmost touched column), so one flush for a
            // change on two distant lines would resend everything between them: flush each
            // page's runs of changed columns separately instead.
            Some(prev) => {
                let mut changed = [[false; WIDTH as usize]; PAGES];
                for (x, y, _) in prev.diff(frame) {
                    changed[y as usize / 8][x as usize] = true;
                }
                for (page, cols) in changed.iter().enumerate() {
                    for (first, last) in runs(cols, MERGE_GAP) {
                        for x in first..=last {
                            for y in page * 8..page * 8 + 8 {
                                self.dev.set_pixel(
                                    x as u32,
                                    y as u32,
                                    frame.get(x as i32, y as i32),
                                );
                            }
                        }
                        self.dev.flush().map_err(|e| self.bus_error("flush", e))?;
                    }
                }
            }
            // Unknown screen content (after init or an error): send the whole frame.
            None => {
                self.dev.clear_buffer();
                for (x, y, on) in Frame::new().diff(frame) {
                    self.dev.set_pixel(x as u32, y as u32, on);
                }
                self.dev.flush().map_err(|e| self.bus_error("flush", e))?;
            }
        }
        self.shown = Some(frame.clone());
        Ok(())
    }

    fn set_contrast(&mut self, contrast: u8) -> Result<(), PanelError> {
        self.dev
            .set_brightness(Brightness::custom(PRECHARGE, contrast))
            .map_err(|e| self.bus_error("contrast", e))
    }

    fn power_off(&mut self) -> Result<(), PanelError> {
        self.dev
            .set_display_on(false)
            .map_err(|e| self.bus_error("display off", e))
    }
}

/// Runs of `true` in `cols` as inclusive (first, last) pairs, merging runs separated by fewer
/// than `gap` `false`s.
fn runs(cols: &[bool], gap: usize) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (x, _) in cols.iter().enumerate().filter(|(_, c)| **c) {
        match out.last_mut() {
            Some((_, last)) if x - *last <= gap => *last = x,
            _ => out.push((x, x)),
        }
    }
    out
}

/// Everything the display loop needs to know besides the panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopSettings {
    pub screen: ScreenSettings,
    /// First wait before re-opening a failed panel; doubles per failure…
    pub retry_min: Duration,
    /// …up to this.
    pub retry_max: Duration,
}

impl LoopSettings {
    /// From `[display]`, with re-init back-off from 1 s to 60 s.
    pub fn from_config(cfg: &DisplayConfig) -> Self {
        Self {
            screen: ScreenSettings {
                page_interval: cfg.page_interval,
                screensaver: cfg.screensaver,
                contrast: cfg.contrast,
            },
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
        }
    }
}

/// The display loop's state: drives a [`Panel`] from `StatusView`s and the clock, re-opening it
/// after failures. Time is passed in, so tests run hours of it without sleeping; the thread in
/// [`spawn_with`] is a thin wait-and-step around it.
pub struct DisplayLoop<P, F, R> {
    open: F,
    report: R,
    settings: LoopSettings,
    screen: Screen,
    panel: Option<P>,
    shown_frame: Option<Frame>,
    shown_contrast: Option<u8>,
    failures: u64,
    retry_at: Option<Mono>,
    healthy: bool,
}

impl<P, F, R> DisplayLoop<P, F, R>
where
    P: Panel,
    F: FnMut() -> Result<P, PanelError>,
    R: FnMut(DisplayHealth),
{
    /// `open` makes a fresh panel (opens the bus); it is called again after every failure.
    pub fn new(open: F, settings: LoopSettings, report: R, now: Mono) -> Self {
        Self {
            open,
            report,
            settings,
            screen: Screen::new(settings.screen, now),
            panel: None,
            shown_frame: None,
            shown_contrast: None,
            failures: 0,
            retry_at: None,
            healthy: false,
        }
    }

    /// Bring the panel up to date with `view` at `now`. Returns when to step again even if
    /// `view` does not change (`None`: only on change).
    pub fn step(&mut self, view: &StatusView, now: Mono) -> Option<Mono> {
        let (picture, wake) = self.screen.update(view, now);
        if self.retry_at.is_some_and(|at| now < at) {
            return earliest(wake, self.retry_at);
        }
        self.retry_at = None;
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.show(&picture.frame, picture.contrast)
        }))
        .unwrap_or(Err(PanelError::Panicked { step: "drawing" }));
        match result {
            Ok(()) => {
                if !self.healthy {
                    self.healthy = true;
                    if self.failures > 0 {
                        tracing::info!(target: TARGET, after = self.failures, "display recovered");
                    }
                    self.failures = 0;
                    (self.report)(DisplayHealth::Ok);
                }
            }
            Err(e) => self.fail(e, now),
        }
        earliest(wake, self.retry_at)
    }

    fn show(&mut self, frame: &Frame, contrast: u8) -> Result<(), PanelError> {
        let panel = match &mut self.panel {
            Some(p) => p,
            None => {
                let mut p = (self.open)()?;
                p.init(contrast)?;
                self.shown_contrast = Some(contrast);
                self.shown_frame = None;
                self.panel.insert(p)
            }
        };
        if self.shown_contrast != Some(contrast) {
            panel.set_contrast(contrast)?;
            self.shown_contrast = Some(contrast);
        }
        if self.shown_frame.as_ref() != Some(frame) {
            // Forget the old frame first: if the draw fails half-way, the screen is unknown.
            self.shown_frame = None;
            panel.draw(frame)?;
            self.shown_frame = Some(frame.clone());
        }
        Ok(())
    }

    fn fail(&mut self, error: PanelError, now: Mono) {
        // Drop the panel (closes the bus); the next attempt re-opens and re-initialises.
        self.panel = None;
        self.shown_frame = None;
        self.shown_contrast = None;
        self.healthy = false;
        self.failures += 1;
        let doublings = u32::try_from(self.failures - 1).unwrap_or(u32::MAX).min(16);
        let retry_in = self
            .settings
            .retry_min
            .saturating_mul(1u32 << doublings)
            .min(self.settings.retry_max);
        self.retry_at = Some(now + retry_in);
        if self.failures == 1 {
            tracing::warn!(target: TARGET, %error, ?retry_in, "display failed; retrying");
        } else {
            tracing::debug!(target: TARGET, %error, attempts = self.failures, ?retry_in, "display still failing");
        }
        (self.report)(DisplayHealth::Failing {
            error: error.to_string(),
            attempts: self.failures,
            retry_in,
        });
    }

    /// Failures in a row so far (0 when the panel works).
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// The logger is stopping: switch the panel off (best effort) and report `Stopped`.
    pub fn shutdown(&mut self) {
        if let Some(p) = self.panel.as_mut() {
            let r = catch_unwind(AssertUnwindSafe(|| p.power_off()));
            if !matches!(r, Ok(Ok(()))) {
                tracing::debug!(target: TARGET, "could not switch the display off");
            }
        }
        self.panel = None;
        (self.report)(DisplayHealth::Stopped);
    }
}

fn earliest(a: Option<Mono>, b: Option<Mono>) -> Option<Mono> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Start the display thread for `[display]`: ssd1306 on `cfg.i2c_bus` at `cfg.address`.
///
/// Returns `None` (after logging once and reporting) when `driver = "none"` or the bus device
/// does not exist (I2C not enabled on this board); the logger carries on either way. A bus that
/// exists but has no display answering is retried with back-off, in case one is plugged in.
/// The thread ends when every `watch::Sender` is dropped.
pub fn spawn(
    cfg: DisplayConfig,
    rx: watch::Receiver<StatusView>,
    clock: Clock,
    mut report: impl FnMut(DisplayHealth) + Send + 'static,
) -> Option<JoinHandle<()>> {
    if cfg.driver == DisplayDriver::None {
        tracing::info!(target: TARGET, "display disabled (driver = \"none\")");
        report(DisplayHealth::Disabled);
        return None;
    }
    if !cfg.i2c_bus.exists() {
        let reason = format!(
            "no I2C bus at {} (enable I2C: see board/display.md)",
            cfg.i2c_bus.display()
        );
        tracing::warn!(target: TARGET, "{reason}; running without a display");
        report(DisplayHealth::Absent { reason });
        return None;
    }
    let settings = LoopSettings::from_config(&cfg);
    let (bus, address, rotation) = (cfg.i2c_bus, cfg.address, cfg.rotation);
    let open = move || Oled::open(&bus, address, rotation);
    match spawn_with(open, settings, rx, clock, report) {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::error!(target: TARGET, error = %e, "cannot start the display thread");
            None
        }
    }
}

/// Start a display thread over any [`Panel`] that `open` makes (tests pass fakes). The panel is
/// created inside the thread, so it need not be `Send`.
pub fn spawn_with<P, F, R>(
    open: F,
    settings: LoopSettings,
    rx: watch::Receiver<StatusView>,
    clock: Clock,
    report: R,
) -> std::io::Result<JoinHandle<()>>
where
    P: Panel + 'static,
    F: FnMut() -> Result<P, PanelError> + Send + 'static,
    R: FnMut(DisplayHealth) + Send + 'static,
{
    std::thread::Builder::new()
        .name("display".into())
        .spawn(move || run(open, settings, rx, clock, report))
}

fn run<P, F, R>(
    open: F,
    settings: LoopSettings,
    mut rx: watch::Receiver<StatusView>,
    clock: Clock,
    report: R,
) where
    P: Panel,
    F: FnMut() -> Result<P, PanelError>,
    R: FnMut(DisplayHealth),
{
    // A tiny runtime of our own just to sleep on the watch channel with a deadline: wakes at
    // once on a change, costs nothing while waiting. It has no I/O driver and runs no tasks.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build();
    if let Err(e) = &rt {
        tracing::warn!(target: TARGET, error = %e, "no timer runtime; polling the status every 250 ms");
    }
    let mut lp = DisplayLoop::new(open, settings, report, clock.now());
    loop {
        let view = rx.borrow_and_update().clone();
        let wake = lp.step(&view, clock.now());
        if !wait(rt.as_ref().ok(), &mut rx, &clock, wake) {
            break;
        }
    }
    lp.shutdown();
}

/// Sleep until `rx` changes or `wake` passes. `false` when the sender is gone.
fn wait(
    rt: Option<&tokio::runtime::Runtime>,
    rx: &mut watch::Receiver<StatusView>,
    clock: &Clock,
    wake: Option<Mono>,
) -> bool {
    if let Some(rt) = rt {
        return rt.block_on(async {
            match wake {
                Some(at) => tokio::select! {
                    r = rx.changed() => r.is_ok(),
                    _ = clock.sleep_until(at) => true,
                },
                None => rx.changed().await.is_ok(),
            }
        });
    }
    loop {
        match rx.has_changed() {
            Ok(true) => return true,
            Ok(false) => {}
            Err(_) => return false,
        }
        if wake.is_some_and(|at| clock.now() >= at) {
            return true;
        }
        let nap = wake.map_or(Duration::from_millis(250), |at| {
            clock.until(at).min(Duration::from_millis(250))
        });
        std::thread::sleep(nap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_small_gaps_only() {
        let mut cols = [false; 40];
        for x in [0, 1, 2, 5, 30, 31] {
            cols[x] = true;
        }
        assert_eq!(runs(&cols, 3), vec![(0, 5), (30, 31)]);
        assert_eq!(runs(&cols, 2), vec![(0, 2), (5, 5), (30, 31)]);
        assert_eq!(runs(&cols, 100), vec![(0, 31)]);
        assert!(runs(&[false; 8], 3).is_empty());
    }
}
