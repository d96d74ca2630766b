//! The OLED status display (README "The OLED, the USB stick, the appliance"): what the box shows
//! on its SSD1306 128×64 panel.
//!
//! Split so that everything but the bus is pure and tested without hardware:
//! - [`frame`]: `Frame`, the 128×64 1-bit picture (a `DrawTarget`, ASCII dumps, diffs);
//! - [`text`]: Cyrillic/Latin-1 text from u8g2 fonts, with transliteration as a fallback;
//! - [`render`]: `StatusView` → pages (alarms first) → pixels;
//! - [`schedule`]: which page, when to rotate, screen saver (time injected);
//! - [`mirror`]: a `Frame` as a PNG for the web page;
//! - [`panel`]: the small lifecycle trait the loop drives (`Panel`) and its errors;
//! - [`oled`]: the adapter — ssd1306 over `linux-embedded-hal`'s `I2cdev`, the display thread,
//!   retries with re-initialisation. The only module here that does I/O.

pub mod frame;
pub mod mirror;
pub mod oled;
pub mod panel;
pub mod render;
pub mod schedule;
pub mod text;

pub use frame::Frame;
pub use mirror::{render_png, render_view_png};
pub use oled::{spawn, spawn_with, DisplayLoop, LoopSettings, Oled};
pub use panel::{DisplayHealth, Panel, PanelError};
pub use render::{page_for_time, page_list, pages, render, render_all, render_frame, Page};
pub use schedule::{Picture, Screen, ScreenSettings};
