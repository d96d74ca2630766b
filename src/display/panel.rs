//! `Panel`: the small lifecycle trait the display loop drives, its error, and the health report.
//!
//! The loop only needs four things from a screen: bring it up, show a frame, set the contrast,
//! switch it off. `oled::Oled` implements it over I2C; tests implement it with fakes. Named
//! `Panel`, not `Display`, so it never clashes with `std::fmt::Display`. No I/O here.

use std::time::Duration;

use thiserror::Error;

use super::frame::Frame;

/// A screen the display loop can drive.
pub trait Panel {
    /// Initialise the controller (power-on sequence, rotation) and set `contrast`.
    /// Afterwards the screen's content is unknown, so the next [`Panel::draw`] sends everything.
    fn init(&mut self, contrast: u8) -> Result<(), PanelError>;
    /// Show `frame`, sending only what differs from the frame this panel last showed.
    fn draw(&mut self, frame: &Frame) -> Result<(), PanelError>;
    /// Change the contrast (0–255); used by the screen saver to dim and to restore.
    fn set_contrast(&mut self, contrast: u8) -> Result<(), PanelError>;
    /// Switch the panel off (the logger is stopping: a frozen "UP" would be a lie).
    fn power_off(&mut self) -> Result<(), PanelError>;
}

/// Why the panel could not be opened or driven. Says which bus/address and which step.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PanelError {
    /// The I2C bus device could not be opened (missing, no permission).
    #[error("cannot open I2C bus {bus}: {reason}")]
    Open { bus: String, reason: String },
    /// An I2C transfer failed: no ACK (no display at that address, unplugged), bus error, …
    #[error("I2C {step} failed at address {address:#04x}: {kind}")]
    Bus {
        address: u8,
        step: &'static str,
        kind: String,
    },
    /// The driver panicked; caught so the display thread survives, the panel is re-opened.
    #[error("display driver panicked during {step}")]
    Panicked { step: &'static str },
}

/// How the display is doing, reported to the caller (for `StatusView`/the web page) on every
/// change of state and on every failed retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisplayHealth {
    /// `driver = "none"`.
    Disabled,
    /// No I2C bus on this board (or it is not enabled); logged once, nothing retried.
    Absent { reason: String },
    /// The panel is initialised and showing the status.
    Ok,
    /// Opening, initialising or drawing failed; the loop re-initialises after `retry_in`.
    Failing {
        error: String,
        /// Consecutive failures, 1 on the first.
        attempts: u64,
        retry_in: Duration,
    },
    /// The display thread ended because the status channel closed (the logger is stopping).
    Stopped,
}

impl DisplayHealth {
    /// A short upper-case code for an alarm list, `None` when there is nothing to fix.
    pub fn alarm_code(&self) -> Option<&'static str> {
        match self {
            DisplayHealth::Failing { .. } => Some("DISPLAY ERROR"),
            _ => None,
        }
    }
}
