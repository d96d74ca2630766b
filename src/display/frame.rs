//! `Frame`: a 128×64 1-bit picture in memory — the OLED's screen as a value.
//!
//! Pure data. It is the `DrawTarget` the renderer draws into, the thing compared to decide
//! whether the panel needs a redraw, the source of the ASCII golden dumps and of the PNG mirror.
//! It must not know about I2C or the SSD1306's page layout (that is `oled.rs`'s business).

use std::convert::Infallible;

use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::{DrawTarget, OriginDimensions, Pixel, Size};

/// Panel width in pixels.
pub const WIDTH: u32 = 128;
/// Panel height in pixels.
pub const HEIGHT: u32 = 64;

/// One screen: row `y` is a `u128` whose bit `x` is the pixel at column `x` (1 = lit).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    rows: [u128; HEIGHT as usize],
}

impl Default for Frame {
    fn default() -> Self {
        Self::new()
    }
}

impl Frame {
    /// A dark screen.
    pub const fn new() -> Self {
        Self {
            rows: [0; HEIGHT as usize],
        }
    }

    /// Is the pixel at (`x`, `y`) lit? Outside the screen is dark.
    pub fn get(&self, x: i32, y: i32) -> bool {
        if !(0..WIDTH as i32).contains(&x) || !(0..HEIGHT as i32).contains(&y) {
            return false;
        }
        self.rows[y as usize] >> x & 1 == 1
    }

    /// Light or darken one pixel; outside the screen is ignored (clipping, like the panel).
    pub fn set(&mut self, x: i32, y: i32, on: bool) {
        if !(0..WIDTH as i32).contains(&x) || !(0..HEIGHT as i32).contains(&y) {
            return;
        }
        let bit = 1u128 << x;
        if on {
            self.rows[y as usize] |= bit;
        } else {
            self.rows[y as usize] &= !bit;
        }
    }

    /// Number of lit pixels (a burn-in and "is anything drawn" measure).
    pub fn lit(&self) -> u32 {
        self.rows.iter().map(|r| r.count_ones()).sum()
    }

    /// Pixels that differ between `self` and `other`, as (x, y, lit in `other`).
    pub fn diff<'a>(&'a self, other: &'a Frame) -> impl Iterator<Item = (i32, i32, bool)> + 'a {
        self.rows
            .iter()
            .zip(other.rows.iter())
            .enumerate()
            .flat_map(|(y, (a, b))| {
                let changed = a ^ b;
                (0..WIDTH as i32)
                    .filter(move |x| changed >> x & 1 == 1)
                    .map(move |x| (x, y as i32, b >> x & 1 == 1))
            })
    }

    /// The same picture moved by (`dx`, `dy`) pixels, what falls off the edge is lost.
    /// Used by the screen saver's pixel shift.
    pub fn shifted(&self, dx: i32, dy: i32) -> Frame {
        let mut out = Frame::new();
        for y in 0..HEIGHT as i32 {
            let src_y = y - dy;
            if !(0..HEIGHT as i32).contains(&src_y) {
                continue;
            }
            let row = self.rows[src_y as usize];
            out.rows[y as usize] = match dx {
                d if d >= WIDTH as i32 || d <= -(WIDTH as i32) => 0,
                d if d >= 0 => row << d,
                d => row >> -d,
            };
        }
        out
    }

    /// The golden-file form: 64 lines of 128 characters, `#` lit and `.` dark, each ending in `\n`.
    pub fn to_ascii(&self) -> String {
        let mut s = String::with_capacity(((WIDTH + 1) * HEIGHT) as usize);
        for row in &self.rows {
            for x in 0..WIDTH {
                s.push(if row >> x & 1 == 1 { '#' } else { '.' });
            }
            s.push('\n');
        }
        s
    }

    /// Parse [`Frame::to_ascii`] output back; `None` if it is not exactly 64 rows of 128 `#`/`.`.
    pub fn from_ascii(text: &str) -> Option<Frame> {
        let mut frame = Frame::new();
        let mut rows = 0usize;
        for (y, line) in text.lines().enumerate() {
            if y >= HEIGHT as usize || line.chars().count() != WIDTH as usize {
                return None;
            }
            for (x, c) in line.chars().enumerate() {
                match c {
                    '#' => frame.rows[y] |= 1u128 << x,
                    '.' => {}
                    _ => return None,
                }
            }
            rows += 1;
        }
        (rows == HEIGHT as usize).then_some(frame)
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Frame ({} lit)", self.lit())?;
        f.write_str(&self.to_ascii())
    }
}

impl OriginDimensions for Frame {
    fn size(&self) -> Size {
        Size::new(WIDTH, HEIGHT)
    }
}

impl DrawTarget for Frame {
    type Color = BinaryColor;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(p, c) in pixels {
            self.set(p.x, p.y, c.is_on());
        }
        Ok(())
    }

    fn clear(&mut self, color: Self::Color) -> Result<(), Self::Error> {
        self.rows = [if color.is_on() { u128::MAX } else { 0 }; HEIGHT as usize];
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_and_clip() {
        let mut f = Frame::new();
        f.set(0, 0, true);
        f.set(127, 63, true);
        f.set(128, 0, true);
        f.set(-1, 5, true);
        f.set(5, 64, true);
        assert!(f.get(0, 0) && f.get(127, 63));
        assert!(!f.get(128, 0) && !f.get(-1, 5));
        assert_eq!(f.lit(), 2);
        f.set(0, 0, false);
        assert_eq!(f.lit(), 1);
    }

    #[test]
    fn ascii_round_trip() {
        let mut f = Frame::new();
        f.set(3, 4, true);
        f.set(127, 0, true);
        let text = f.to_ascii();
        assert_eq!(text.lines().count(), 64);
        assert!(text.lines().all(|l| l.len() == 128));
        assert_eq!(text.lines().nth(4).unwrap().find('#'), Some(3));
        assert_eq!(Frame::from_ascii(&text), Some(f));
        assert_eq!(Frame::from_ascii("#."), None);
    }

    #[test]
    fn shift_moves_and_clips() {
        let mut f = Frame::new();
        f.set(0, 0, true);
        f.set(127, 63, true);
        let s = f.shifted(2, 1);
        assert!(s.get(2, 1));
        assert_eq!(s.lit(), 1, "the corner pixel falls off");
        let back = s.shifted(-2, -1);
        assert!(back.get(0, 0));
        assert_eq!(f.shifted(200, 0).lit(), 0);
    }

    #[test]
    fn diff_lists_changed_pixels_only() {
        let mut a = Frame::new();
        a.set(1, 1, true);
        a.set(2, 2, true);
        let mut b = a.clone();
        b.set(1, 1, false);
        b.set(100, 60, true);
        let d: Vec<_> = a.diff(&b).collect();
        assert_eq!(d, vec![(1, 1, false), (100, 60, true)]);
        assert_eq!(a.diff(&a).count(), 0);
    }
}
