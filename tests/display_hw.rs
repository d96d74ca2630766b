//! Hardware test for a real SSD1306 on a Raspberry Pi: opens `/dev/i2c-1` (or `CDRBOX_I2C_BUS`)
//! at 0x3C (or `CDRBOX_OLED_ADDRESS`, e.g. `0x3D`) and draws a test pattern, then a status page.
//!
//! Only built with `--features hw` and only run when asked (board/display.md):
//! `cargo test --features hw --test display_hw -- --ignored --nocapture`. Look at the panel:
//! a one-pixel border, a checkerboard corner, Latin/Cyrillic text; then the status summary.

#[cfg(feature = "hw")]
#[test]
#[ignore = "needs an SSD1306 on the Pi's I2C bus"]
fn draws_a_test_pattern_on_the_real_panel() {
    use std::path::PathBuf;
    use std::time::Duration;

    use cdrbox::display::text::{self, FontSize};
    use cdrbox::display::{render_frame, Frame, Oled, Panel};
    use cdrbox::status::{DayTotals, StatusView};
    use embedded_graphics::pixelcolor::BinaryColor;

    let bus = PathBuf::from(std::env::var("CDRBOX_I2C_BUS").unwrap_or("/dev/i2c-1".into()));
    let address = std::env::var("CDRBOX_OLED_ADDRESS")
        .ok()
        .and_then(|a| u8::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0x3C);
    let mut oled = Oled::open(&bus, address, 0).expect("open the I2C bus");
    oled.init(0x7F)
        .expect("init: is the panel at this address? try i2cdetect -y 1");

    let mut pattern = Frame::new();
    for x in 0..128 {
        pattern.set(x, 0, true);
        pattern.set(x, 63, true);
    }
    for y in 0..64 {
        pattern.set(0, y, true);
        pattern.set(127, y, true);
    }
    for y in 48..62 {
        for x in 110..126 {
            pattern.set(x, y, (x + y) % 2 == 0);
        }
    }
    text::draw(
        &mut pattern,
        "cdrbox HW TEST",
        FontSize::Normal,
        4,
        16,
        20,
        BinaryColor::On,
    )
    .unwrap();
    text::draw(
        &mut pattern,
        "Привет, Zürich",
        FontSize::Normal,
        4,
        32,
        20,
        BinaryColor::On,
    )
    .unwrap();
    text::draw(
        &mut pattern,
        &format!("{} @ {address:#04x}", bus.display()),
        FontSize::Small,
        4,
        46,
        20,
        BinaryColor::On,
    )
    .unwrap();
    oled.draw(&pattern).expect("draw the test pattern");
    println!("test pattern shown on {} at {address:#04x}", bus.display());
    std::thread::sleep(Duration::from_secs(3));

    oled.set_contrast(0x10).expect("dim");
    std::thread::sleep(Duration::from_secs(1));
    oled.set_contrast(0x7F).expect("restore contrast");

    let view = StatusView {
        ip_address: Some("192.168.1.50".into()),
        today: DayTotals {
            total: 12345,
            answered: 11000,
            missed: 1345,
        },
        ..Default::default()
    };
    oled.draw(&render_frame(&view, 0))
        .expect("draw a status page (partial update)");
    println!("status summary shown; the panel keeps it until the next test or reboot");
}
