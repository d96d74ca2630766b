//! The web mirror of the OLED: a [`Frame`] as a 1-bit PNG, scaled up so it is readable on a page.
//!
//! Pure: bytes in memory, no file or HTTP here (`GET /display.png` is wired by the web server).

use super::frame::{Frame, HEIGHT, WIDTH};
use super::render::render_frame;
use crate::status::StatusView;

/// Largest accepted scale: 16 × 128 = 2048 pixels wide is plenty for any page.
pub const MAX_SCALE: u32 = 16;

/// Encode `frame` as a 1-bit greyscale PNG, each panel pixel drawn as `scale`×`scale` pixels
/// (lit = white on black, like the panel). `scale` is clamped to `1..=MAX_SCALE`.
pub fn render_png(frame: &Frame, scale: u32) -> Vec<u8> {
    let scale = scale.clamp(1, MAX_SCALE);
    let (w, h) = (WIDTH * scale, HEIGHT * scale);
    let stride = w.div_ceil(8) as usize;
    let mut data = vec![0u8; stride * h as usize];
    for y in 0..h {
        let row = &mut data[y as usize * stride..(y as usize + 1) * stride];
        for x in 0..w {
            if frame.get((x / scale) as i32, (y / scale) as i32) {
                // PNG packs 1-bit pixels most significant bit first.
                row[(x / 8) as usize] |= 0x80 >> (x % 8);
            }
        }
    }
    let mut out = Vec::with_capacity(2048);
    match encode(&mut out, w, h, &data) {
        Ok(()) => out,
        Err(e) => {
            // Encoding a well-formed in-memory image into a Vec has no failure mode we know of;
            // an empty body (the web page shows a broken image) beats a panic in the server.
            tracing::error!(target: "cdrbox::display", error = %e, "PNG encoding failed");
            Vec::new()
        }
    }
}

/// Page `page` of `view` as a PNG: [`render_png`] of [`render_frame`]. For a mirror that
/// rotates like the panel, pick the page with `render::page_for_time`.
pub fn render_view_png(view: &StatusView, page: usize, scale: u32) -> Vec<u8> {
    render_png(&render_frame(view, page), scale)
}

fn encode(out: &mut Vec<u8>, w: u32, h: u32, data: &[u8]) -> Result<(), png::EncodingError> {
    let mut enc = png::Encoder::new(out, w, h);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::One);
    let mut writer = enc.write_header()?;
    writer.write_image_data(data)?;
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        (info, buf)
    }

    #[test]
    fn png_is_one_bit_scaled_and_pixel_exact() {
        let mut f = Frame::new();
        f.set(0, 0, true);
        f.set(127, 63, true);
        f.set(5, 7, true);
        let bytes = render_png(&f, 2);
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let (info, buf) = decode(&bytes);
        assert_eq!((info.width, info.height), (256, 128));
        assert_eq!(info.bit_depth, png::BitDepth::One);
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        let px = |x: usize, y: usize| buf[y * info.line_size + x / 8] & (0x80 >> (x % 8)) != 0;
        let mut lit = 0;
        for y in 0..128 {
            for x in 0..256 {
                assert_eq!(px(x, y), f.get(x as i32 / 2, y as i32 / 2), "at {x},{y}");
                lit += usize::from(px(x, y));
            }
        }
        assert_eq!(lit, 3 * 4);
    }

    #[test]
    fn scale_is_clamped() {
        let f = Frame::new();
        let (info, _) = decode(&render_png(&f, 0));
        assert_eq!(info.width, 128);
        let (info, _) = decode(&render_png(&f, 1000));
        assert_eq!(info.width, 128 * MAX_SCALE);
    }
}
