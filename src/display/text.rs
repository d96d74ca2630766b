//! Text on the OLED: monospace u8g2 fonts with Cyrillic and Latin-1 glyphs, picked per character.
//!
//! Pure drawing into any `DrawTarget<Color = BinaryColor>`. PBX names, box names and alarm texts
//! can be Cyrillic or accented: each character is drawn from the first font that has it
//! (`_t_cyrillic`: ASCII + Cyrillic; `_tf`: Latin-1), then from a small transliteration table
//! (Latin Extended-A and common punctuation), and only as a last resort as `?` — never as an
//! empty box. Both fonts of a size have the same cell, so a line is a fixed grid of columns.

use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::{DrawTarget, Point};
use u8g2_fonts::fonts;
use u8g2_fonts::types::{FontColor, VerticalPosition};
use u8g2_fonts::FontRenderer;

/// The font sizes the screens use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FontSize {
    /// 5×8 cell: header line (25 columns).
    Small,
    /// 6×12 cell: body lines (21 columns).
    Normal,
    /// 8×13 cell: the one big message of a page, e.g. `SAFE TO REMOVE` (16 columns).
    Large,
}

impl FontSize {
    /// Width of one character cell in pixels.
    pub const fn cell_width(self) -> i32 {
        match self {
            FontSize::Small => 5,
            FontSize::Normal => 6,
            FontSize::Large => 8,
        }
    }

    /// Columns that fit across the 128-pixel screen.
    pub const fn columns(self) -> usize {
        (128 / self.cell_width()) as usize
    }

    fn renderers(self) -> &'static [FontRenderer; 2] {
        match self {
            FontSize::Small => &SMALL,
            FontSize::Normal => &NORMAL,
            FontSize::Large => &LARGE,
        }
    }
}

// Strict renderers (unknown glyph = error): `has_glyph` relies on that error to choose a font.
static SMALL: [FontRenderer; 2] = [
    FontRenderer::new::<fonts::u8g2_font_5x8_t_cyrillic>(),
    FontRenderer::new::<fonts::u8g2_font_5x8_tf>(),
];
static NORMAL: [FontRenderer; 2] = [
    FontRenderer::new::<fonts::u8g2_font_6x12_t_cyrillic>(),
    FontRenderer::new::<fonts::u8g2_font_6x12_tf>(),
];
static LARGE: [FontRenderer; 2] = [
    FontRenderer::new::<fonts::u8g2_font_8x13_t_cyrillic>(),
    FontRenderer::new::<fonts::u8g2_font_8x13_tf>(),
];

fn has_glyph(r: &FontRenderer, c: char) -> bool {
    r.get_rendered_dimensions(c, Point::zero(), VerticalPosition::Baseline)
        .is_ok()
}

/// What `c` becomes when no font of `size` has it: a few ASCII characters, or `?`.
fn transliterate(c: char) -> &'static str {
    match c {
        'Ā' | 'Ă' | 'Ą' => "A",
        'ā' | 'ă' | 'ą' => "a",
        'Ć' | 'Ĉ' | 'Ċ' | 'Č' => "C",
        'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'Ď' | 'Đ' => "D",
        'ď' | 'đ' => "d",
        'Ē' | 'Ĕ' | 'Ė' | 'Ę' | 'Ě' => "E",
        'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'Ĝ' | 'Ğ' | 'Ġ' | 'Ģ' => "G",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'Ĥ' | 'Ħ' => "H",
        'ĥ' | 'ħ' => "h",
        'Ĩ' | 'Ī' | 'Ĭ' | 'Į' | 'İ' => "I",
        'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'Ĵ' => "J",
        'ĵ' => "j",
        'Ķ' => "K",
        'ķ' => "k",
        'Ĺ' | 'Ļ' | 'Ľ' | 'Ŀ' | 'Ł' => "L",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'Ń' | 'Ņ' | 'Ň' => "N",
        'ń' | 'ņ' | 'ň' => "n",
        'Ō' | 'Ŏ' | 'Ő' => "O",
        'ō' | 'ŏ' | 'ő' => "o",
        'Œ' => "OE",
        'œ' => "oe",
        'Ŕ' | 'Ŗ' | 'Ř' => "R",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'Ś' | 'Ŝ' | 'Ş' | 'Š' | 'Ș' => "S",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ș' => "s",
        'Ţ' | 'Ť' | 'Ŧ' | 'Ț' => "T",
        'ţ' | 'ť' | 'ŧ' | 'ț' => "t",
        'Ũ' | 'Ū' | 'Ŭ' | 'Ů' | 'Ű' | 'Ų' => "U",
        'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'Ŵ' => "W",
        'ŵ' => "w",
        'Ŷ' | 'Ÿ' => "Y",
        'ŷ' => "y",
        'Ź' | 'Ż' | 'Ž' => "Z",
        'ź' | 'ż' | 'ž' => "z",
        '‘' | '’' | '‚' | '′' => "'",
        '“' | '”' | '„' | '″' => "\"",
        '–' | '—' | '‐' | '‑' | '−' => "-",
        '…' => "...",
        '№' => "N",
        '€' => "EUR",
        '\u{a0}' | '\u{2009}' | '\u{202f}' => " ",
        _ => "?",
    }
}

/// One character cell: the character and the index of the font (in the size's pair) to draw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Glyph {
    c: char,
    font: usize,
}

/// Turn `text` into drawable cells for `size`: font choice per character, transliteration where
/// no font has it, control characters as spaces.
fn glyphs(text: &str, size: FontSize) -> Vec<Glyph> {
    let renderers = size.renderers();
    let mut out = Vec::with_capacity(text.len());
    let push = |c: char, out: &mut Vec<Glyph>| {
        if let Some(font) = renderers.iter().position(|r| has_glyph(r, c)) {
            out.push(Glyph { c, font });
            true
        } else {
            false
        }
    };
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if push(c, &mut out) {
            continue;
        }
        for t in transliterate(c).chars() {
            // Every transliteration is ASCII, which both fonts carry; `?` as the last resort.
            if !push(t, &mut out) {
                out.push(Glyph { c: '?', font: 0 });
            }
        }
    }
    out
}

/// How many cells `text` takes in `size` (after transliteration).
pub fn width_in_cells(text: &str, size: FontSize) -> usize {
    glyphs(text, size).len()
}

/// Cut `text` to at most `cols` cells; a cut text ends in `~` so the reader knows it was cut.
pub fn fit(text: &str, size: FontSize, cols: usize) -> String {
    let g = glyphs(text, size);
    if g.len() <= cols {
        return g.iter().map(|g| g.c).collect();
    }
    if cols == 0 {
        return String::new();
    }
    let mut s: String = g[..cols - 1].iter().map(|g| g.c).collect();
    s.push('~');
    s
}

/// Draw `text` with its left edge at column `col` (in cells of `size`) and baseline at `baseline`,
/// cutting it to `max_cols` cells. Returns the number of cells drawn.
pub fn draw<D>(
    target: &mut D,
    text: &str,
    size: FontSize,
    x: i32,
    baseline: i32,
    max_cols: usize,
    color: BinaryColor,
) -> Result<usize, D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    let cut = fit(text, size, max_cols);
    let cells = glyphs(&cut, size);
    let renderers = size.renderers();
    for (i, g) in cells.iter().enumerate() {
        let at = Point::new(x + i as i32 * size.cell_width(), baseline);
        let r = &renderers[g.font];
        match r.render(
            g.c,
            at,
            VerticalPosition::Baseline,
            FontColor::Transparent(color),
            target,
        ) {
            Ok(_) => {}
            Err(u8g2_fonts::Error::DisplayError(e)) => return Err(e),
            // Not reachable with a transparent colour and checked glyphs; a blank cell is the
            // harmless outcome if a font ever surprises us.
            Err(_) => {}
        }
    }
    Ok(cells.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::display::frame::Frame;

    #[test]
    fn cyrillic_and_latin1_come_from_a_font_not_from_transliteration() {
        for size in [FontSize::Small, FontSize::Normal, FontSize::Large] {
            let g = glyphs("Жёлтый café", size);
            assert_eq!(g.len(), 11);
            assert_eq!(g[0].c, 'Ж');
            assert_eq!(g[0].font, 0, "Cyrillic from the _t_cyrillic font");
            assert_eq!(g[10].c, 'é');
            assert_eq!(g[10].font, 1, "é from the Latin-1 font");
        }
    }

    #[test]
    fn unknown_characters_are_transliterated_or_question_marks() {
        assert_eq!(fit("Łódź", FontSize::Normal, 21), "Lódz");
        assert_eq!(fit("a…b", FontSize::Normal, 21), "a...b");
        assert_eq!(fit("电话", FontSize::Normal, 21), "??");
        assert_eq!(fit("a\tb", FontSize::Normal, 21), "a b");
    }

    #[test]
    fn fit_cuts_with_a_marker() {
        assert_eq!(fit("Главная АТС", FontSize::Normal, 6), "Главн~");
        assert_eq!(fit("short", FontSize::Normal, 6), "short");
        assert_eq!(fit("x", FontSize::Normal, 0), "");
    }

    #[test]
    fn every_drawn_character_lights_pixels() {
        // A box-less font still draws nothing for a missing glyph: check each cell got ink.
        let text = "ЖЁЙщъ éßÅ Łó";
        let mut f = Frame::new();
        let n = draw(&mut f, text, FontSize::Normal, 0, 10, 21, BinaryColor::On).unwrap();
        assert_eq!(n, 12);
        for (i, c) in text.chars().enumerate() {
            if c == ' ' {
                continue;
            }
            let lit = (0..6)
                .flat_map(|dx| (0..13).map(move |y| (i as i32 * 6 + dx, y)))
                .filter(|&(x, y)| f.get(x, y))
                .count();
            assert!(lit > 3, "cell {i} ({c}) has {lit} lit pixels");
        }
    }
}
