//! Text on the OLED: monospace u8g2 fonts with Cyrillic and Latin-1 glyphs, picked per character.
//!
//! Pure drawing into any `DrawTarget<Color = BinaryColor>`. PBX names, box names and alarm texts
//! can be Cyrillic or accented: each character is drawn from the first font that has it
//! (`_t_cyrillic`: ASCII + Cyrillic; `_tf`: Latin-1), then from a small transliteration table
//! (Latin Extended-A and common punctuation), and only as a last resort as `?` — never as an
//! empty box. Both fonts of a size have the same cell, so a line is a fixed grid of columns.
//!
//! A few glyphs are drawn here instead of taken from the font: the X11 5×8 and 8×13 fonts draw
//! `.` (and the 8×13 one `:`, `,` and `;`) as small crosses, so an IP address read
//! "127+0+0+1" on the panel (issue 13 item 8). See [`drawn`].

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

/// Where a cell's pixels come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The index of the font in the size's pair.
    Font(usize),
    /// Rows of a hand-drawn glyph: (offset from the baseline, pixels from the cell's left edge
    /// with `#` lit).
    Drawn(&'static [(i32, &'static str)]),
}

/// `base` followed by the combining `mark`, as one character, for the Cyrillic letters that
/// Russian names use decomposed (й, ё).
fn compose(base: char, mark: char) -> Option<char> {
    Some(match (base, mark) {
        ('и', '\u{306}') => 'й',
        ('И', '\u{306}') => 'Й',
        ('е', '\u{308}') => 'ё',
        ('Е', '\u{308}') => 'Ё',
        _ => return None,
    })
}

/// One character cell: the character and where to draw it from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Glyph {
    c: char,
    font: Source,
}

/// The glyphs this module draws itself in `size`: a 2×2 dot where the font has a cross. The
/// dots end on the row above the baseline, where the fonts' digits end (u8g2's baseline is the
/// first row below the glyph), like the 6×12 font's own `.`, which needs no replacement.
fn drawn(size: FontSize, c: char) -> Option<&'static [(i32, &'static str)]> {
    const SMALL_DOT: &[(i32, &str)] = &[(-2, ".##"), (-1, ".##")];
    const LARGE_DOT: &[(i32, &str)] = &[(-2, "...##"), (-1, "...##")];
    const LARGE_COLON: &[(i32, &str)] =
        &[(-7, "...##"), (-6, "...##"), (-2, "...##"), (-1, "...##")];
    const LARGE_COMMA: &[(i32, &str)] = &[(-2, "...##"), (-1, "...##"), (0, "....#"), (1, "...#")];
    const LARGE_SEMICOLON: &[(i32, &str)] = &[
        (-7, "...##"),
        (-6, "...##"),
        (-2, "...##"),
        (-1, "...##"),
        (0, "....#"),
        (1, "...#"),
    ];
    match (size, c) {
        (FontSize::Small, '.') => Some(SMALL_DOT),
        (FontSize::Large, '.') => Some(LARGE_DOT),
        (FontSize::Large, ':') => Some(LARGE_COLON),
        (FontSize::Large, ',') => Some(LARGE_COMMA),
        (FontSize::Large, ';') => Some(LARGE_SEMICOLON),
        _ => None,
    }
}

/// Turn `text` into drawable cells for `size`: font choice per character, transliteration where
/// no font has it, control characters as spaces.
fn glyphs(text: &str, size: FontSize) -> Vec<Glyph> {
    let renderers = size.renderers();
    let mut out = Vec::with_capacity(text.len());
    let push = |c: char, out: &mut Vec<Glyph>| {
        if let Some(rows) = drawn(size, c) {
            out.push(Glyph {
                c,
                font: Source::Drawn(rows),
            });
            true
        } else if let Some(font) = renderers.iter().position(|r| has_glyph(r, c)) {
            out.push(Glyph {
                c,
                font: Source::Font(font),
            });
            true
        } else {
            false
        }
    };
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        // A name typed on a system that decomposes (`и` + U+0306) would show `и?`.
        if let Some(composed) = out.last().and_then(|g: &Glyph| compose(g.c, c)) {
            out.pop();
            push(composed, &mut out);
            continue;
        }
        if push(c, &mut out) {
            continue;
        }
        for t in transliterate(c).chars() {
            // Every transliteration is ASCII, which both fonts carry; `?` as the last resort.
            if !push(t, &mut out) {
                out.push(Glyph {
                    c: '?',
                    font: Source::Font(0),
                });
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
        let font = match g.font {
            Source::Font(font) => font,
            Source::Drawn(rows) => {
                let pixels = rows.iter().flat_map(|&(dy, row)| {
                    row.bytes()
                        .enumerate()
                        .filter(|&(_, b)| b == b'#')
                        .map(move |(dx, _)| {
                            embedded_graphics::Pixel(at + Point::new(dx as i32, dy), color)
                        })
                });
                target.draw_iter(pixels)?;
                continue;
            }
        };
        let r = &renderers[font];
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
            assert_eq!(
                g[0].font,
                Source::Font(0),
                "Cyrillic from the _t_cyrillic font"
            );
            assert_eq!(g[10].c, 'é');
            assert_eq!(g[10].font, Source::Font(1), "é from the Latin-1 font");
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

    const SIZES: [FontSize; 3] = [FontSize::Small, FontSize::Normal, FontSize::Large];

    /// The lit pixels of `c` drawn alone in the first cell, baseline at row 20.
    fn pixels(c: char, size: FontSize) -> Vec<(i32, i32)> {
        let mut f = Frame::new();
        draw(&mut f, &c.to_string(), size, 0, 20, 1, BinaryColor::On).unwrap();
        (0..128)
            .flat_map(|x| (0..64).map(move |y| (x, y)))
            .filter(|&(x, y)| f.get(x, y))
            .collect()
    }

    /// Every character a screen can print: the fixed texts are ASCII; names, alarm reasons and
    /// addresses add Cyrillic, Latin-1 and whatever the transliteration table maps.
    fn screen_charset() -> Vec<char> {
        ('!'..='~')
            .chain('А'..='я')
            .chain(['Ё', 'ё'])
            .chain('¡'..='ÿ')
            .chain("ŁłŒœŠšŽž‘’“”–—…№€".chars())
            .collect()
    }

    #[test]
    fn a_dot_is_a_dot_and_a_colon_two_in_every_size() {
        for size in SIZES {
            let dot = pixels('.', size);
            let xs: Vec<i32> = dot.iter().map(|p| p.0).collect();
            let ys: Vec<i32> = dot.iter().map(|p| p.1).collect();
            let span = |v: &[i32]| v.iter().max().unwrap() - v.iter().min().unwrap() + 1;
            assert!(
                !dot.is_empty() && span(&xs) <= 2 && span(&ys) <= 2,
                "{size:?}: '.' is {dot:?}, not a dot (was a cross: 127+0+0+1)"
            );
            assert_eq!(
                *ys.iter().max().unwrap(),
                pixels('0', size).iter().map(|p| p.1).max().unwrap_or(-1),
                "{size:?}: '.' ends where the digits end"
            );
            let colon = pixels(':', size);
            let cx: Vec<i32> = colon.iter().map(|p| p.0).collect();
            assert!(
                span(&cx) <= 2 && colon.len() <= 8,
                "{size:?}: ':' is {colon:?}"
            );
            assert_ne!(pixels('+', size), dot, "{size:?}");
        }
    }

    #[test]
    fn every_character_the_screens_print_is_visible_in_its_cell_and_distinct() {
        for size in SIZES {
            let w = size.cell_width();
            let mut seen: Vec<(Vec<(i32, i32)>, char)> = Vec::new();
            for c in screen_charset() {
                let p = pixels(c, size);
                assert!(!p.is_empty(), "{size:?}: {c:?} draws nothing");
                assert!(
                    p.iter().all(|&(x, _)| (0..w).contains(&x)),
                    "{size:?}: {c:?} leaves its {w}-pixel cell"
                );
                // Transliterated characters share a shape on purpose (`Ł` is drawn `L`).
                if c.is_ascii() {
                    if let Some((_, other)) = seen.iter().find(|(q, _)| *q == p) {
                        panic!("{size:?}: {c:?} looks exactly like {other:?}");
                    }
                    seen.push((p, c));
                }
            }
        }
    }

    #[test]
    fn a_character_no_font_has_is_a_visible_replacement() {
        for size in SIZES {
            for text in ["电", "📞", "\u{200b}", "a\u{301}"] {
                let cells = glyphs(text, size);
                assert!(
                    cells.iter().any(|g| g.c == '?'),
                    "{size:?}: {text:?} became {cells:?}"
                );
            }
            assert_eq!(fit("Андре\u{308}й Си\u{306}", size, 21), "Андрёй Сй");
        }
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
