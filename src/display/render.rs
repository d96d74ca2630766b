//! The OLED screens: `StatusView` → pixels on any `DrawTarget<Color = BinaryColor>`; the expected
//! pictures are the ASCII dumps in `tests/fixtures/display/`.
//!
//! Pure code: no I2C, no clock, no threads. The caller picks the page; [`pages`] lists them with
//! alarms first. Layout of every page on the 128×64 panel:
//!
//! ```text
//!  y 0..8   header, 5×8 font: IP address left; page "2/3" (or USB progress) right
//!  y 9      rule
//!  y 11..62 four body lines, 6×12 font (21 columns), baselines 21, 34, 47, 60
//! ```
//!
//! The uplink page (when `[uplink] url` is set): `Uplink  UP TO DATE` / `Not sent  312 4min` /
//! then the last error on two lines, or `Sent N` and `Last sent HH:MM` while there is none.
//!
//! Times are shown as local `HH:MM` (`now_utc + local_offset_seconds`); a time on an earlier
//! day shows as `DD.MM` instead, so "DOWN 14:05" never means yesterday's 14:05.

use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::{DrawTarget, Point, Primitive, Size};
use embedded_graphics::primitives::{Line, PrimitiveStyle, Rectangle};
use embedded_graphics::Drawable;

use super::frame::{Frame, WIDTH};
use super::text::{self, FontSize};
use crate::status::{ClockSync, LinkState, LinkStatus, StatusView, UsbState};

/// Baselines of the four body lines.
const BODY: [i32; 4] = [21, 34, 47, 60];
/// Baseline of the header line (5×8 font).
const HEADER_BASELINE: i32 = 7;
/// Row of the rule under the header.
const RULE_Y: i32 = 9;
/// Baseline of the big (8×13) message on the USB page.
const LARGE_BASELINE: i32 = 36;
/// Body columns in the 6×12 font.
const COLS: usize = FontSize::Normal.columns();
/// PBX links listed per links page.
const LINKS_PER_PAGE: usize = 4;

/// One screen of the rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The one-time setup code, before anything else, while no admin password is set: the
    /// owner reads it here to prove, on the first visit, that the box is theirs.
    Setup,
    /// The HTTPS certificate's SHA-256 fingerprint (when HTTPS is on), to compare with what the
    /// browser or `curl` shows.
    Tls,
    /// Up to four active alarm codes from index `first`; alarm pages always come first.
    Alarms { first: usize },
    /// The USB stick: copying with progress, safe to remove, or error.
    Usb,
    /// Link summary, today's calls, last call, storage.
    Summary,
    /// Up to four PBX links from index `first`, one line each (when there are several).
    Links { first: usize },
    /// The only PBX link in detail (when there is exactly one and it is not up).
    Link,
    /// The central PostgreSQL uplink (issue 16 item 4), whenever `[uplink] url` is set: its
    /// state, the records not yet sent and for how long, the last error.
    Uplink,
}

/// The pages `view` needs, in display order: alarms, USB, summary, links, uplink.
pub fn page_list(view: &StatusView) -> Vec<Page> {
    let mut pages = Vec::with_capacity(4);
    if view.setup_code.is_some() {
        pages.push(Page::Setup);
    }
    pages.extend(
        (0..view.alarms.len())
            .step_by(BODY.len())
            .map(|first| Page::Alarms { first }),
    );
    if view.usb != UsbState::NoStick {
        pages.push(Page::Usb);
    }
    pages.push(Page::Summary);
    match view.links.as_slice() {
        [] => {}
        // One healthy PBX says all there is on the summary line: one still page, no rotation,
        // no I2C traffic while nothing happens. Details only when something is wrong.
        [one] if one.state == LinkState::Up => {}
        [_] => pages.push(Page::Link),
        many => pages.extend(
            (0..many.len())
                .step_by(LINKS_PER_PAGE)
                .map(|first| Page::Links { first }),
        ),
    }
    // Always shown while an uplink is configured, healthy or not: "up to date, 0 waiting" is
    // what the office checks before it trusts the central reports.
    if view.uplink.is_some() {
        pages.push(Page::Uplink);
    }
    if view.tls_fingerprint.is_some() {
        pages.push(Page::Tls);
    }
    pages
}

/// How many pages `view` rotates through (at least 1).
pub fn pages(view: &StatusView) -> usize {
    page_list(view).len()
}

/// The page a clock-driven mirror (e.g. the web page's `/display.png`) should show at
/// `unix_seconds` when pages rotate every `interval_seconds`.
pub fn page_for_time(view: &StatusView, unix_seconds: i64, interval_seconds: u64) -> usize {
    let n = pages(view) as i64;
    let step = unix_seconds.div_euclid(interval_seconds.max(1) as i64);
    step.rem_euclid(n) as usize
}

/// Draw page `page` (taken modulo [`pages`]) of `view` into `target`, clearing it first.
pub fn render<D>(view: &StatusView, page: usize, target: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    let list = page_list(view);
    let index = page % list.len();
    target.clear(BinaryColor::Off)?;
    let which = list[index];
    header(view, which, index, list.len(), target)?;
    match which {
        Page::Setup => setup_page(view, target),
        Page::Tls => tls_page(view, target),
        Page::Alarms { first } => alarms_page(view, first, target),
        Page::Usb => usb_page(view, target),
        Page::Summary => summary_page(view, target),
        Page::Links { first } => links_page(view, first, target),
        Page::Link => link_page(view, target),
        Page::Uplink => uplink_page(view, target),
    }
}

/// [`render`] into a fresh [`Frame`].
pub fn render_frame(view: &StatusView, page: usize) -> Frame {
    let mut frame = Frame::new();
    match render(view, page, &mut frame) {
        Ok(()) => frame,
        Err(never) => match never {},
    }
}

/// Every page of `view`, in order.
pub fn render_all(view: &StatusView) -> Vec<Frame> {
    (0..pages(view)).map(|p| render_frame(view, p)).collect()
}

fn header<D>(
    view: &StatusView,
    which: Page,
    index: usize,
    count: usize,
    t: &mut D,
) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    let cols = FontSize::Small.columns();
    let right = match (&view.usb, which) {
        (UsbState::Copying { percent }, p) if p != Page::Usb => {
            format!("USB {}%", (*percent).min(100))
        }
        (UsbState::SafeToRemove { .. }, p) if p != Page::Usb => "USB OK".to_string(),
        (UsbState::Error { .. }, p) if p != Page::Usb => "USB ERR".to_string(),
        _ if count > 1 => format!("{}/{}", index + 1, count),
        _ => String::new(),
    };
    let right = match which {
        Page::Tls => "HTTPS SHA-256".to_string(),
        Page::Alarms { .. } => right,
        _ => with_health(view, right, cols),
    };
    let (fg, left) = if matches!(which, Page::Alarms { .. }) {
        // The alarm page's header is inverted so it reads as an alarm from across the room.
        Rectangle::new(Point::zero(), Size::new(WIDTH, RULE_Y as u32))
            .into_styled(PrimitiveStyle::with_fill(BinaryColor::On))
            .draw(t)?;
        (
            BinaryColor::Off,
            format!("ALARM{}", plural(view.alarms.len())),
        )
    } else {
        let ip = match view.ip_address.as_deref() {
            Some(ip) if !ip.is_empty() => ip.to_string(),
            _ => "NO NETWORK".to_string(),
        };
        (BinaryColor::On, ip)
    };
    let right_cols = text::width_in_cells(&right, FontSize::Small);
    let left_cols = cols.saturating_sub(right_cols + usize::from(right_cols > 0));
    text::draw(t, &left, FontSize::Small, 1, HEADER_BASELINE, left_cols, fg)?;
    if right_cols > 0 {
        let x = WIDTH as i32 - 1 - (right_cols as i32) * FontSize::Small.cell_width();
        text::draw(
            t,
            &right,
            FontSize::Small,
            x,
            HEADER_BASELINE,
            right_cols,
            fg,
        )?;
    }
    Line::new(Point::new(0, RULE_Y), Point::new(WIDTH as i32 - 1, RULE_Y))
        .into_styled(PrimitiveStyle::with_stroke(BinaryColor::On, 1))
        .draw(t)
}

/// The header's right side with the box's health where it fits beside the address (issue 13
/// item 4): `CLK?` while the clock is not synchronised, then the CPU temperature (`51C`).
/// The address is never cut for them; a value the box could not read is not drawn.
fn with_health(view: &StatusView, right: String, cols: usize) -> String {
    let ip_cols = match view.ip_address.as_deref() {
        Some(ip) if !ip.is_empty() => text::width_in_cells(ip, FontSize::Small),
        _ => "NO NETWORK".len(),
    };
    let mut tags = Vec::new();
    if matches!(view.health.clock, ClockSync::NotSynchronised { .. }) {
        tags.push("CLK?".to_string());
    }
    if let Some(milli) = view.health.cpu_temp_millicelsius {
        tags.push(format!("{}C", (milli + 500).div_euclid(1000)));
    }
    let mut out = right;
    // Most important first: a tag that does not fit is dropped with the ones after it.
    let mut shown: Vec<String> = Vec::new();
    for tag in tags {
        shown.push(tag);
        let candidate = shown
            .iter()
            .cloned()
            .chain((!out.is_empty()).then(|| out.clone()))
            .collect::<Vec<_>>()
            .join(" ");
        if ip_cols + 1 + text::width_in_cells(&candidate, FontSize::Small) > cols {
            shown.pop();
            break;
        }
    }
    if !shown.is_empty() {
        shown.extend((!out.is_empty()).then(|| std::mem::take(&mut out)));
        out = shown.join(" ");
    }
    out
}

fn plural(n: usize) -> String {
    if n > 1 {
        format!("S ({n})")
    } else {
        String::new()
    }
}

/// Body line `row` (0–3): `left` from the left edge, cut to leave room for `right`, which is
/// aligned to the right edge.
fn line<D>(t: &mut D, row: usize, left: &str, right: &str) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    let baseline = BODY[row];
    let right_cols = text::width_in_cells(right, FontSize::Normal).min(COLS);
    let left_cols = COLS.saturating_sub(right_cols + usize::from(right_cols > 0));
    text::draw(
        t,
        left,
        FontSize::Normal,
        1,
        baseline,
        left_cols,
        BinaryColor::On,
    )?;
    if right_cols > 0 {
        let x = 1 + ((COLS - right_cols) as i32) * FontSize::Normal.cell_width();
        text::draw(
            t,
            right,
            FontSize::Normal,
            x,
            baseline,
            right_cols,
            BinaryColor::On,
        )?;
    }
    Ok(())
}

fn setup_page<D>(view: &StatusView, t: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    let code = view.setup_code.as_deref().unwrap_or("");
    line(t, 0, "SETUP CODE", "")?;
    let cols = text::width_in_cells(code, FontSize::Large).min(FontSize::Large.columns());
    let x = (WIDTH as i32 - cols as i32 * FontSize::Large.cell_width()) / 2;
    text::draw(
        t,
        code,
        FontSize::Large,
        x,
        LARGE_BASELINE,
        FontSize::Large.columns(),
        BinaryColor::On,
    )?;
    line(t, 3, "type it on web page", "")
}

fn tls_page<D>(view: &StatusView, t: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    // 64 hex digits: four lines of 16, in groups of four, as `openssl x509 -fingerprint`
    // prints them (without the colons).
    let fp: Vec<char> = view
        .tls_fingerprint
        .as_deref()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    for (row, chunk) in fp.chunks(16).take(BODY.len()).enumerate() {
        let groups: Vec<String> = chunk.chunks(4).map(|g| g.iter().collect()).collect();
        line(t, row, &groups.join(" "), "")?;
    }
    Ok(())
}

fn alarms_page<D>(view: &StatusView, first: usize, t: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    for (row, alarm) in view.alarms.iter().skip(first).take(BODY.len()).enumerate() {
        line(t, row, &alarm.code, "")?;
    }
    Ok(())
}

fn usb_page<D>(view: &StatusView, t: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    line(t, 0, "USB stick", "")?;
    let large = |t: &mut D, s: &str| {
        let cols = text::width_in_cells(s, FontSize::Large).min(FontSize::Large.columns());
        let x = (WIDTH as i32 - cols as i32 * FontSize::Large.cell_width()) / 2;
        text::draw(
            t,
            s,
            FontSize::Large,
            x,
            LARGE_BASELINE,
            FontSize::Large.columns(),
            BinaryColor::On,
        )
        .map(|_| ())
    };
    match &view.usb {
        UsbState::NoStick => line(t, 1, "no stick", ""),
        UsbState::Copying { percent } => {
            let p = u32::from((*percent).min(100));
            large(t, &format!("COPYING {p}%"))?;
            // Progress bar: outline plus a fill proportional to the percentage.
            let outer = Rectangle::new(Point::new(4, 46), Size::new(WIDTH - 8, 10));
            outer
                .into_styled(PrimitiveStyle::with_stroke(BinaryColor::On, 1))
                .draw(t)?;
            let inner_w = (WIDTH - 12) * p / 100;
            if inner_w > 0 {
                Rectangle::new(Point::new(6, 48), Size::new(inner_w, 6))
                    .into_styled(PrimitiveStyle::with_fill(BinaryColor::On))
                    .draw(t)?;
            }
            Ok(())
        }
        UsbState::SafeToRemove { records } => {
            large(t, "SAFE TO REMOVE")?;
            line(t, 3, &format!("{records} records"), "")
        }
        UsbState::Error { message } => {
            large(t, "USB ERROR")?;
            let (a, b) = wrap2(message, COLS);
            line(t, 2, &a, "")?;
            line(t, 3, &b, "")
        }
    }
}

/// Split `s` into two lines of at most `cols` cells at a space when possible; the second line
/// is cut with a marker if the text is longer still.
fn wrap2(s: &str, cols: usize) -> (String, String) {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= cols {
        return (s.to_string(), String::new());
    }
    let cut = chars[..=cols]
        .iter()
        .rposition(|c| *c == ' ')
        .filter(|&i| i > 0)
        .unwrap_or(cols);
    let first: String = chars[..cut].iter().collect();
    let rest: String = chars[cut..].iter().collect();
    (
        first.trim_end().to_string(),
        text::fit(rest.trim_start(), FontSize::Normal, cols),
    )
}

fn summary_page<D>(view: &StatusView, t: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    match view.links.as_slice() {
        [] => line(t, 0, "NO PBX CONFIGURED", "")?,
        [one] => line(t, 0, &one.pbx, &short_state(one, view))?,
        many => {
            let up = many.iter().filter(|l| l.state == LinkState::Up).count();
            let s = if up == many.len() {
                format!("PBX: all {up} UP")
            } else {
                format!("PBX: {up} of {} UP", many.len())
            };
            line(t, 0, &s, "")?
        }
    }
    // Open gaps (calls may be missing, no import has filled them: issue 12) share the line;
    // the count goes first on the left so that a cut for width takes letters, not digits.
    match view.storage.gaps {
        0 => line(t, 1, "Calls today", &view.today.total.to_string())?,
        n => line(
            t,
            1,
            &format!("{} calls", view.today.total),
            &format!("Open gaps {n}"),
        )?,
    }
    line(
        t,
        2,
        &format!("Ans {}", view.today.answered),
        &format!("Miss {}", view.today.missed),
    )?;
    let last = match view.last_call_utc {
        Some(at) => format!("Last {}", local_time_or_date(at, view)),
        None => "Last --:--".to_string(),
    };
    let s = &view.storage;
    let storage = if (s.total_bytes > 0 && s.free_bytes == 0) || s.memory_only > 0 {
        "DISK FULL".to_string()
    } else if s.total_bytes == 0 {
        String::new()
    } else {
        format!("Free {}", human_bytes(s.free_bytes))
    };
    line(t, 3, &last, &storage)
}

fn links_page<D>(view: &StatusView, first: usize, t: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    for (row, link) in view
        .links
        .iter()
        .skip(first)
        .take(LINKS_PER_PAGE)
        .enumerate()
    {
        line(t, row, &link.pbx, &short_state(link, view))?;
    }
    Ok(())
}

fn link_page<D>(view: &StatusView, t: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    let Some(link) = view.links.first() else {
        return Ok(());
    };
    line(t, 0, &link.pbx, "")?;
    let since = local_time_or_date(link.since_utc, view);
    let (state, detail) = match &link.state {
        LinkState::Up => (format!("UP since {since}"), link.address.clone()),
        LinkState::Connecting => ("CONNECTING...".to_string(), link.address.clone()),
        LinkState::Down { reason } => (format!("DOWN since {since}"), reason.clone()),
        LinkState::AuthFailed => ("AUTH FAILED".to_string(), "check user/secret".to_string()),
        LinkState::PbxShutdown => (format!("PBX RESTART {since}"), link.address.clone()),
    };
    line(t, 1, &state, "")?;
    line(t, 2, &detail, "")?;
    match link.last_record_utc {
        Some(at) => line(t, 3, "Last CDR", &local_time_or_date(at, view)),
        None => line(t, 3, "No CDR yet", ""),
    }
}

fn uplink_page<D>(view: &StatusView, t: &mut D) -> Result<(), D::Error>
where
    D: DrawTarget<Color = BinaryColor>,
{
    let Some(u) = view.uplink.as_ref() else {
        return Ok(());
    };
    line(t, 0, "Uplink", &uplink_short_state(u))?;
    // The count first, then the age: a cut for width takes the age, never digits of the count.
    let lag = match (u.lag_records, u.lag_seconds) {
        (0, _) => "none".to_string(),
        (n, Some(secs)) => format!("{n} {}", short_span(secs)),
        (n, None) => n.to_string(),
    };
    line(t, 1, "Not sent", &lag)?;
    match u.last_error.as_deref() {
        Some(err) => {
            let (a, b) = wrap2(root_cause(err, 2 * COLS), COLS);
            line(t, 2, &a, "")?;
            line(t, 3, &b, "")
        }
        None => {
            line(t, 2, "Sent", &u.sent_records.to_string())?;
            let last = u
                .last_ok_utc
                .map_or_else(|| "--:--".to_string(), |at| local_time_or_date(at, view));
            line(t, 3, "Last sent", &last)
        }
    }
}

/// An error chain ("cannot connect: error connecting to server: Connection refused") that does
/// not fit in `cols` cells, cut to its last link: the root cause is what a person can act on,
/// and the state beside it already says what failed.
fn root_cause(err: &str, cols: usize) -> &str {
    if err.chars().count() <= cols {
        return err;
    }
    err.rsplit_once(": ").map_or(err, |(_, cause)| cause)
}

/// The uplink's state in the panel's few columns. `retrying` covers every failure; the error's
/// own words (`crate::uplink::forward`: "cannot connect: …", "no answer from the server …")
/// tell an unreachable server from one that refused the records.
fn uplink_short_state(u: &crate::status::UplinkStatus) -> String {
    let err = u.last_error.as_deref().unwrap_or("");
    match u.state.as_str() {
        "up to date" => "UP TO DATE".to_string(),
        "retrying" if err.starts_with("cannot connect") || err.starts_with("no answer") => {
            "NO SERVER".to_string()
        }
        other => other.to_uppercase(),
    }
}

/// `40s`, `4min`, `3h`, `2d`: how long the oldest unsent record has waited.
fn short_span(secs: i64) -> String {
    let s = secs.max(0);
    if s < 90 {
        format!("{s}s")
    } else if s < 90 * 60 {
        format!("{}min", (s + 30) / 60)
    } else if s < 48 * 3600 {
        format!("{}h", (s + 1800) / 3600)
    } else {
        format!("{}d", (s + 43_200) / 86_400)
    }
}

/// The few characters after a PBX name on a one-line link entry.
fn short_state(link: &LinkStatus, view: &StatusView) -> String {
    match link.state {
        LinkState::Up => "UP".to_string(),
        LinkState::Connecting => "CONNECTING".to_string(),
        LinkState::Down { .. } => format!("DOWN {}", local_time_or_date(link.since_utc, view)),
        LinkState::AuthFailed => "AUTH FAILED".to_string(),
        LinkState::PbxShutdown => "RESTART".to_string(),
    }
}

/// `HH:MM` if `at_utc` is on the local day of `view.now_utc`, else `DD.MM`.
pub fn local_time_or_date(at_utc: i64, view: &StatusView) -> String {
    let offset = i64::from(view.local_offset_seconds);
    let at = at_utc.saturating_add(offset);
    let now = view.now_utc.saturating_add(offset);
    let day = at.div_euclid(86_400);
    if day == now.div_euclid(86_400) {
        let secs = at.rem_euclid(86_400);
        format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60)
    } else {
        let (_, month, d) = crate::record::civil_from_days(day);
        format!("{d:02}.{month:02}")
    }
}

/// `512B`, `3.2G`, `14G`: at most four characters for sizes below 10 PiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "K", "M", "G", "T", "P"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else if value < 9.95 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{:.0}{}", value.round(), UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Alarm;

    fn link(name: &str, state: LinkState) -> LinkStatus {
        LinkStatus::new(name, "10.0.0.5:5038", state, 0)
    }

    #[test]
    fn alarms_come_first_and_usb_second() {
        let mut v = StatusView::default();
        assert_eq!(page_list(&v), vec![Page::Summary]);
        v.links = vec![link("a", LinkState::Up)];
        assert_eq!(
            page_list(&v),
            vec![Page::Summary],
            "one healthy PBX: one still page"
        );
        v.links = vec![link("a", LinkState::AuthFailed)];
        assert_eq!(page_list(&v), vec![Page::Summary, Page::Link]);
        v.usb = UsbState::Copying { percent: 3 };
        v.alarms = vec![Alarm::new("DISK FULL", "x")];
        assert_eq!(
            page_list(&v),
            vec![
                Page::Alarms { first: 0 },
                Page::Usb,
                Page::Summary,
                Page::Link
            ]
        );
    }

    #[test]
    fn links_split_four_per_page() {
        let v = StatusView {
            links: (0..9)
                .map(|i| link(&i.to_string(), LinkState::Up))
                .collect(),
            ..Default::default()
        };
        assert_eq!(
            page_list(&v),
            vec![
                Page::Summary,
                Page::Links { first: 0 },
                Page::Links { first: 4 },
                Page::Links { first: 8 }
            ]
        );
    }

    #[test]
    fn page_index_wraps_and_time_mirror_rotates() {
        let v = StatusView {
            links: vec![link("a", LinkState::Connecting)],
            ..Default::default()
        };
        assert_eq!(render_frame(&v, 2), render_frame(&v, 0));
        assert_ne!(render_frame(&v, 1), render_frame(&v, 0));
        assert_eq!(page_for_time(&v, 0, 5), 0);
        assert_eq!(page_for_time(&v, 5, 5), 1);
        assert_eq!(page_for_time(&v, 10, 5), 0);
        assert_eq!(page_for_time(&v, -1, 0), 1);
    }

    #[test]
    fn times_are_local_and_dates_for_other_days() {
        let mut v = StatusView {
            now_utc: 1_795_860_000, // 2026-11-28 10:00:00 UTC
            local_offset_seconds: 3 * 3600,
            ..Default::default()
        };
        assert_eq!(local_time_or_date(1_795_860_000 - 3600, &v), "12:00");
        assert_eq!(local_time_or_date(1_795_860_000 - 86_400, &v), "27.11");
        v.local_offset_seconds = -11 * 3600; // 23:00 the day before, locally
        assert_eq!(local_time_or_date(1_795_860_000, &v), "23:00");
    }

    #[test]
    fn bytes_are_short() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(999), "999B");
        assert_eq!(human_bytes(1000), "1.0K");
        assert_eq!(human_bytes(3_435_973_837), "3.2G");
        assert_eq!(human_bytes(15 * 1024 * 1024 * 1024), "15G");
        assert_eq!(human_bytes(u64::MAX), "16384P");
    }

    #[test]
    fn uplink_spans_and_states_are_short() {
        assert_eq!(short_span(-5), "0s");
        assert_eq!(short_span(89), "89s");
        assert_eq!(short_span(90), "2min");
        assert_eq!(short_span(4 * 60 + 10), "4min");
        assert_eq!(short_span(3 * 3600), "3h");
        assert_eq!(short_span(3 * 86_400), "3d");
        let mut u = crate::status::UplinkStatus {
            state: "retrying".into(),
            last_error: Some("cannot connect: error connecting to server".into()),
            ..Default::default()
        };
        assert_eq!(uplink_short_state(&u), "NO SERVER");
        u.last_error = Some("cannot insert a record: permission denied (SQLSTATE 42501)".into());
        assert_eq!(uplink_short_state(&u), "RETRYING");
        u.state = "up to date".into();
        assert_eq!(uplink_short_state(&u), "UP TO DATE");
        assert_eq!(
            root_cause(
                "cannot connect: error connecting to server: Connection refused (os error 111)",
                42
            ),
            "Connection refused (os error 111)"
        );
        assert_eq!(root_cause("no answer in 60 s", 42), "no answer in 60 s");
        let v = StatusView {
            uplink: Some(u),
            ..Default::default()
        };
        assert_eq!(page_list(&v), vec![Page::Summary, Page::Uplink]);
    }

    #[test]
    fn wrap_prefers_spaces() {
        assert_eq!(
            wrap2("stick is read-only, remount rw", 21),
            ("stick is read-only,".into(), "remount rw".into())
        );
        assert_eq!(wrap2("short", 21), ("short".into(), String::new()));
        let (a, b) = wrap2(&"x".repeat(50), 21);
        assert_eq!(a.len(), 21);
        assert!(b.ends_with('~'));
    }
}
