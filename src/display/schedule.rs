//! `Screen`: what the panel should show at a given instant — page rotation, alarm priority and
//! the screen saver. Pure: time comes in as a [`Mono`] argument, nothing is read or slept.
//!
//! Rules:
//! - pages rotate every `page_interval` (never when there is one page: a still picture costs no
//!   I2C traffic);
//! - a new or changed set of alarm codes jumps to the alarm page; a USB stick that starts
//!   copying (or finishes, or fails) jumps to the USB page;
//! - "idle" means no page's picture changed (rotation does not count); after `screensaver` of
//!   idle the contrast drops to a quarter and the picture moves by one pixel every further
//!   `screensaver`, around a small circle, against OLED burn-in. Any change restores both.

use std::time::Duration;

use super::frame::Frame;
use super::render::{page_list, render_all, Page};
use crate::clock::Mono;
use crate::status::{StatusView, UsbState};

/// Offsets the screen saver walks through, one step per `screensaver` period. The layout keeps
/// a pixel of margin on every side so nothing useful is cut.
const SHIFTS: [(i32, i32); 8] = [
    (1, 0),
    (1, 1),
    (0, 1),
    (-1, 1),
    (-1, 0),
    (-1, -1),
    (0, -1),
    (1, -1),
];

/// Timing and contrast, from `[display]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScreenSettings {
    pub page_interval: Duration,
    /// Zero disables the screen saver.
    pub screensaver: Duration,
    pub contrast: u8,
}

/// What the panel should show now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    pub frame: Frame,
    pub contrast: u8,
    /// Index of the page shown and how many there are.
    pub page: usize,
    pub pages: usize,
    /// The screen saver is active (dimmed, shifted).
    pub saver: bool,
}

/// The page/rotation/saver state between updates.
#[derive(Debug, Clone)]
pub struct Screen {
    settings: ScreenSettings,
    frames: Vec<Frame>,
    pages: Vec<Page>,
    alarm_codes: Vec<String>,
    usb: UsbState,
    page: usize,
    page_started: Mono,
    last_change: Mono,
}

impl Screen {
    pub fn new(settings: ScreenSettings, now: Mono) -> Self {
        Self {
            settings,
            frames: Vec::new(),
            pages: Vec::new(),
            alarm_codes: Vec::new(),
            usb: UsbState::NoStick,
            page: 0,
            page_started: now,
            last_change: now,
        }
    }

    /// The picture for `view` at `now`, and when to call again even if `view` does not change
    /// (`None`: nothing will happen until it does).
    pub fn update(&mut self, view: &StatusView, now: Mono) -> (Picture, Option<Mono>) {
        let frames = render_all(view);
        if frames != self.frames {
            self.last_change = now;
            let pages = page_list(view);
            let codes: Vec<String> = view.alarms.iter().map(|a| a.code.clone()).collect();
            let usb_moved = std::mem::discriminant(&view.usb) != std::mem::discriminant(&self.usb);
            if !codes.is_empty() && codes != self.alarm_codes {
                self.jump(0, now);
            } else if usb_moved && view.usb != UsbState::NoStick {
                let usb_page = pages.iter().position(|p| *p == Page::Usb).unwrap_or(0);
                self.jump(usb_page, now);
            } else if pages.get(self.page) != self.pages.get(self.page) {
                // The page under the reader's eyes is now a different kind of page (one was
                // added or removed before it): start its full interval rather than cut it short.
                self.page_started = now;
            }
            self.alarm_codes = codes;
            self.usb = view.usb.clone();
            self.frames = frames;
            self.pages = pages;
        }
        let n = self.frames.len().max(1);
        if self.page >= n {
            self.jump(0, now);
        }

        let mut wake: Option<Mono> = None;
        let interval = self.settings.page_interval;
        if n > 1 && !interval.is_zero() {
            let steps = periods(now.saturating_duration_since(self.page_started), interval);
            if steps > 0 {
                self.page = (self.page + (steps % n as u128) as usize) % n;
                self.page_started += mul(interval, steps);
            }
            wake = Some(self.page_started + interval);
        }

        let mut contrast = self.settings.contrast;
        let mut shift = (0, 0);
        let saver = self.settings.screensaver;
        let mut saving = false;
        if !saver.is_zero() {
            let idle_steps = periods(now.saturating_duration_since(self.last_change), saver);
            if idle_steps > 0 {
                saving = true;
                contrast = self.settings.contrast / 4;
                shift = SHIFTS[((idle_steps - 1) % SHIFTS.len() as u128) as usize];
            }
            let next = self.last_change + mul(saver, idle_steps + 1);
            wake = Some(wake.map_or(next, |w| w.min(next)));
        }

        let frame = self
            .frames
            .get(self.page)
            .map(|f| f.shifted(shift.0, shift.1))
            .unwrap_or_default();
        let picture = Picture {
            frame,
            contrast,
            page: self.page,
            pages: n,
            saver: saving,
        };
        (picture, wake)
    }

    fn jump(&mut self, page: usize, now: Mono) {
        self.page = page;
        self.page_started = now;
    }
}

/// Whole `period`s in `elapsed` (`period` is not zero).
fn periods(elapsed: Duration, period: Duration) -> u128 {
    elapsed.as_nanos() / period.as_nanos().max(1)
}

/// `period × n`, saturating at about 584 years instead of overflowing.
fn mul(period: Duration, n: u128) -> Duration {
    let nanos = period.as_nanos().saturating_mul(n).min(u64::MAX as u128) as u64;
    Duration::from_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{Alarm, LinkState, LinkStatus};

    const S: Duration = Duration::from_secs(1);

    fn settings() -> ScreenSettings {
        ScreenSettings {
            page_interval: 5 * S,
            screensaver: 60 * S,
            contrast: 200,
        }
    }

    fn view() -> StatusView {
        StatusView {
            ip_address: Some("192.168.1.20".into()),
            // Not up, so the view has two pages (summary + link detail) to rotate.
            links: vec![LinkStatus::new(
                "main",
                "10.0.0.1:5038",
                LinkState::Connecting,
                0,
            )],
            ..Default::default()
        }
    }

    #[test]
    fn rotates_pages_on_the_interval() {
        let t0 = Mono::ZERO;
        let mut s = Screen::new(settings(), t0);
        let v = view();
        let (p, wake) = s.update(&v, t0);
        assert_eq!((p.page, p.pages), (0, 2));
        assert_eq!(wake, Some(t0 + 5 * S));
        assert_eq!(s.update(&v, t0 + 4 * S).0.page, 0);
        assert_eq!(s.update(&v, t0 + 5 * S).0.page, 1);
        assert_eq!(s.update(&v, t0 + 10 * S).0.page, 0);
        // A late wake-up (e.g. the thread was busy retrying) skips whole intervals.
        assert_eq!(s.update(&v, t0 + 26 * S).0.page, 1);
    }

    #[test]
    fn one_page_never_wakes_without_saver() {
        let t0 = Mono::ZERO;
        let mut s = Screen::new(
            ScreenSettings {
                screensaver: Duration::ZERO,
                ..settings()
            },
            t0,
        );
        let v = StatusView::default();
        let (p, wake) = s.update(&v, t0);
        assert_eq!(p.pages, 1);
        assert_eq!(wake, None);
        assert_eq!(s.update(&v, t0 + 3600 * S).0.frame, p.frame);
    }

    #[test]
    fn new_alarm_jumps_to_alarm_page() {
        let t0 = Mono::ZERO;
        let mut s = Screen::new(settings(), t0);
        let mut v = view();
        s.update(&v, t0);
        assert_eq!(s.update(&v, t0 + 5 * S).0.page, 1);
        v.alarms.push(Alarm::new("LINK DOWN", "m"));
        let (p, wake) = s.update(&v, t0 + 6 * S);
        assert_eq!((p.page, p.pages), (0, 3));
        assert_eq!(
            wake,
            Some(t0 + 11 * S),
            "the alarm page gets a full interval"
        );
    }

    #[test]
    fn usb_activity_jumps_to_usb_page_but_progress_does_not() {
        let t0 = Mono::ZERO;
        let mut s = Screen::new(settings(), t0);
        let mut v = view();
        s.update(&v, t0);
        s.update(&v, t0 + 5 * S);
        v.usb = UsbState::Copying { percent: 10 };
        assert_eq!(s.update(&v, t0 + 6 * S).0.page, 0, "USB page is first");
        assert_eq!(s.update(&v, t0 + 11 * S).0.page, 1);
        v.usb = UsbState::Copying { percent: 20 };
        assert_eq!(
            s.update(&v, t0 + 12 * S).0.page,
            1,
            "progress alone does not jump"
        );
        v.usb = UsbState::SafeToRemove { records: 5 };
        assert_eq!(s.update(&v, t0 + 13 * S).0.page, 0);
    }

    #[test]
    fn saver_dims_and_shifts_after_idle_and_change_restores() {
        let t0 = Mono::ZERO;
        let st = ScreenSettings {
            page_interval: Duration::ZERO,
            ..settings()
        };
        let mut s = Screen::new(st, t0);
        let mut v = view();
        let (p0, wake) = s.update(&v, t0);
        assert_eq!(p0.contrast, 200);
        assert_eq!(wake, Some(t0 + 60 * S));
        let (p1, wake) = s.update(&v, t0 + 60 * S);
        assert!(p1.saver);
        assert_eq!(p1.contrast, 50);
        assert_eq!(p1.frame, p0.frame.shifted(1, 0));
        assert_eq!(wake, Some(t0 + 120 * S));
        let (p2, _) = s.update(&v, t0 + 120 * S);
        assert_eq!(p2.frame, p0.frame.shifted(1, 1));
        v.today.total = 1;
        let (p3, _) = s.update(&v, t0 + 130 * S);
        assert!(!p3.saver);
        assert_eq!(p3.contrast, 200);
        assert_eq!(p3.frame, crate::display::render::render_frame(&v, 0));
    }

    #[test]
    fn clock_only_changes_are_not_activity() {
        let t0 = Mono::ZERO;
        let mut s = Screen::new(settings(), t0);
        let mut v = view();
        s.update(&v, t0);
        v.now_utc += 30; // the producer republishes with a new timestamp only
        let (p, _) = s.update(&v, t0 + 61 * S);
        assert!(p.saver, "a snapshot that draws the same is not a change");
    }
}
