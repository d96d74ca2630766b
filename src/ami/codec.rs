//! Sans-IO framing of the Asterisk Manager Interface byte stream into banner and messages.
//!
//! Spec: `docs/AMI-v2-Specification` ("Message Layout") and what real Asterisk sends
//! (`tests/fixtures/ami/README.md`, "Observed format facts"). This module never touches a socket:
//! callers push bytes into a `BytesMut` and call [`Decoder::decode`] until it returns `None`.
//!
//! What it tolerates, because Asterisk itself has shipped each of these at some point:
//! bare `\n` line ends, `\r\n\n` terminators, extra blank lines between messages, empty values
//! with or without the trailing space, repeated and case-varied keys, a message whose blank-line
//! terminator is missing (a second `Event:` line starts a new message), and the legacy
//! `Response: Follows … --END COMMAND--` block. Bytes are never decoded as text here: values are
//! raw, so a Latin-1 caller name or a UTF-8 character cut by Asterisk's 79-byte truncation can
//! never end the session.
//!
//! Memory is bounded: a line longer than [`Limits::max_line`] or a message longer than
//! [`Limits::max_message`] is discarded while it streams in (resynchronisation), reported once
//! as [`Frame::Discarded`], and decoding resumes at the next blank line or `Event:`/`Response:`
//! line.
//!
//! Written by hand because no maintained crate frames AMI losslessly (see
//! the Rust AMI crates read in 2026: they decode to UTF-8 strings, drop duplicate keys, or fail
//! the stream on a long message).

use std::fmt;
use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

/// Size bounds that keep a hostile or broken peer from exhausting memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted line, in bytes, including its line end.
    pub max_line: usize,
    /// Longest accepted message, in bytes, including its terminator.
    pub max_message: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // A Cdr event is bounded at the source to about 2.5 KiB plus 1 KiB of mappings;
        // the generous caps leave room for big list responses we might ask for one day.
        Limits {
            max_line: 64 * 1024,
            max_message: 1024 * 1024,
        }
    }
}

/// One unit of the server-to-client stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The greeting line (`Asterisk Call Manager/11.0.0`), without its line end.
    Banner(Bytes),
    /// A response or event.
    Message(AmiMessage),
    /// Bytes thrown away while resynchronising after an over-long line or message.
    Discarded { bytes: usize, reason: DiscardReason },
}

/// Why bytes were discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardReason {
    LineTooLong,
    MessageTooLong,
}

impl fmt::Display for DiscardReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscardReason::LineTooLong => f.write_str("line too long"),
            DiscardReason::MessageTooLong => f.write_str("message too long"),
        }
    }
}

/// A decoded AMI message: the exact bytes received plus the position of each header in them.
///
/// Keys compare ASCII case-insensitively (`UniqueID` in Cdr, `Uniqueid` elsewhere); repeated
/// keys are all kept, in order.
#[derive(Clone, PartialEq, Eq)]
pub struct AmiMessage {
    raw: Bytes,
    fields: Vec<(Range<u32>, Range<u32>)>,
    body: Vec<Range<u32>>,
    terminated: bool,
}

impl AmiMessage {
    /// The message exactly as received, including its line ends and terminator.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// `false` when the message had no blank-line terminator and was cut at the next `Event:`.
    pub fn terminated(&self) -> bool {
        self.terminated
    }

    /// All `Key: value` headers in wire order; the value is the raw bytes after `": "`.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields.iter().map(move |(k, v)| {
            (
                &self.raw[k.start as usize..k.end as usize],
                &self.raw[v.start as usize..v.end as usize],
            )
        })
    }

    /// Lines that carry no colon (legacy `Response: Follows` output, odd events).
    pub fn body_lines(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.body
            .iter()
            .map(move |r| &self.raw[r.start as usize..r.end as usize])
    }

    /// The first value of `key`, compared case-insensitively, as the server looks headers up.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.fields()
            .find(|(k, _)| k.eq_ignore_ascii_case(key.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Every value of `key`, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key.as_bytes()))
            .map(|(_, v)| v)
    }

    /// `get` as text, replacing invalid UTF-8; for protocol keys that are ASCII by definition.
    pub fn get_str(&self, key: &str) -> Option<std::borrow::Cow<'_, str>> {
        self.get(key).map(String::from_utf8_lossy)
    }

    /// The `Event:` name, if this is an event.
    pub fn event(&self) -> Option<&[u8]> {
        self.get("Event")
    }

    /// True when this is the event `name` (case-insensitive).
    pub fn is_event(&self, name: &str) -> bool {
        self.event()
            .is_some_and(|e| e.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The `Response:` value, if this is a response.
    pub fn response(&self) -> Option<&[u8]> {
        self.get("Response")
    }

    /// The echoed `ActionID`, if any.
    pub fn action_id(&self) -> Option<&[u8]> {
        self.get("ActionID")
    }

    /// Number of header fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when the message has no header at all (only body lines).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Builds a message from raw bytes holding exactly one message (used on replay from the
    /// journal, where the raw event bytes are the source of truth).
    pub fn parse(raw: &[u8]) -> Option<AmiMessage> {
        let mut dec = Decoder::new(Limits {
            max_line: usize::MAX,
            max_message: usize::MAX,
        });
        dec.expect_banner = false;
        let mut buf = BytesMut::from(raw);
        // A message cut at the next `Event:` line was stored without its blank line.
        if !raw.ends_with(b"\n\n") && !raw.ends_with(b"\n\r\n") {
            if !raw.ends_with(b"\n") {
                buf.extend_from_slice(b"\r\n");
            }
            buf.extend_from_slice(b"\r\n");
        }
        match dec.decode(&mut buf) {
            Some(Frame::Message(m)) => Some(m),
            _ => None,
        }
    }
}

impl fmt::Debug for AmiMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in self.fields() {
            m.entry(
                &String::from_utf8_lossy(k),
                &String::from_utf8_lossy(v).as_ref(),
            );
        }
        m.finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Collecting lines of a message that starts at `buf[0]`.
    Normal,
    /// Inside `Response: Follows`: blank lines do not end the message until `--END COMMAND--`.
    Follows { ended: bool },
    /// Throwing bytes away until a blank line or a new `Event:`/`Response:` line.
    Resync {
        discarded: usize,
        reason: DiscardReason,
        /// The bytes most recently thrown away ended in the middle of a line.
        mid_line: bool,
    },
}

/// Incremental AMI stream decoder. Keeps its scan position between calls, so feeding a
/// message one byte at a time costs the same as feeding it whole.
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    expect_banner: bool,
    mode: Mode,
    /// Offset in the buffer up to which complete lines have been scanned.
    cursor: usize,
    fields: Vec<(Range<u32>, Range<u32>)>,
    body: Vec<Range<u32>>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(Limits::default())
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn key_of(line: &[u8]) -> Option<&[u8]> {
    memchr::memchr(b':', line).map(|i| &line[..i])
}

fn starts_message(line: &[u8]) -> bool {
    key_of(line)
        .is_some_and(|k| k.eq_ignore_ascii_case(b"Event") || k.eq_ignore_ascii_case(b"Response"))
}

impl Decoder {
    /// A decoder for a fresh connection: the first line may be the banner.
    pub fn new(limits: Limits) -> Self {
        Decoder {
            limits,
            expect_banner: true,
            mode: Mode::Normal,
            cursor: 0,
            fields: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Takes the next frame out of `buf`, or returns `None` when `buf` holds only part of one
    /// (the partial bytes stay in `buf`, or are dropped when they are being discarded).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        loop {
            if let Mode::Resync { .. } = self.mode {
                match self.resync(buf) {
                    Some(frame) => return Some(frame),
                    None if buf.is_empty() => return None,
                    None => {
                        if let Mode::Resync { .. } = self.mode {
                            return None;
                        }
                        continue;
                    }
                }
            }
            let Some(nl) = memchr::memchr(b'\n', &buf[self.cursor..]) else {
                let partial = buf.len() - self.cursor;
                if partial > self.limits.max_line {
                    self.start_resync(buf, buf.len(), DiscardReason::LineTooLong, true);
                    continue;
                }
                if buf.len() > self.limits.max_message {
                    self.start_resync(buf, buf.len(), DiscardReason::MessageTooLong, true);
                    continue;
                }
                return None;
            };
            let start = self.cursor;
            let end = start + nl; // index of '\n'
            let line_len = nl + 1;
            if line_len > self.limits.max_line {
                self.start_resync(buf, end + 1, DiscardReason::LineTooLong, false);
                continue;
            }
            let content_end = if end > start && buf[end - 1] == b'\r' {
                end - 1
            } else {
                end
            };
            let line = &buf[start..content_end];

            if line.is_empty() {
                if let Mode::Follows { ended: false } = self.mode {
                    self.body.push(start as u32..start as u32);
                    self.cursor = end + 1;
                    continue;
                }
                if self.fields.is_empty() && self.body.is_empty() {
                    // Leading or extra blank lines between messages: skip them.
                    buf.advance(end + 1);
                    self.cursor = 0;
                    continue;
                }
                return Some(self.finish(buf, end + 1, true));
            }

            if self.expect_banner {
                self.expect_banner = false;
                if self.fields.is_empty() && !line.contains(&b':') {
                    let banner = Bytes::copy_from_slice(line);
                    buf.advance(end + 1);
                    self.cursor = 0;
                    return Some(Frame::Banner(banner));
                }
            }

            let has_content = !self.fields.is_empty() || !self.body.is_empty();
            if has_content
                && matches!(self.mode, Mode::Normal)
                && key_of(line).is_some_and(|k| k.eq_ignore_ascii_case(b"Event"))
            {
                // A message that lost its terminator (cdr_manager's 1 KiB mapping buffer can
                // overflow): it ends where the next event begins.
                return Some(self.finish(buf, start, false));
            }

            if let Mode::Follows { ended: false } = self.mode {
                if strip_cr(line).ends_with(b"--END COMMAND--") {
                    self.mode = Mode::Follows { ended: true };
                }
            }
            match memchr::memchr(b':', line) {
                Some(colon)
                    if !matches!(self.mode, Mode::Follows { .. }) || has_no_body(&self.body) =>
                {
                    let key = start..start + colon;
                    let mut vstart = start + colon + 1;
                    if vstart < content_end && buf[vstart] == b' ' {
                        vstart += 1;
                    }
                    let value = vstart..content_end;
                    if self.fields.is_empty()
                        && buf[key.clone()].eq_ignore_ascii_case(b"Response")
                        && buf[value.clone()].eq_ignore_ascii_case(b"Follows")
                    {
                        self.mode = Mode::Follows { ended: false };
                    }
                    self.fields.push((
                        key.start as u32..key.end as u32,
                        value.start as u32..value.end as u32,
                    ));
                }
                _ => self.body.push(start as u32..content_end as u32),
            }
            self.cursor = end + 1;
            if self.cursor > self.limits.max_message {
                self.start_resync(buf, self.cursor, DiscardReason::MessageTooLong, false);
            }
        }
    }

    /// Called once the peer closed: a message cut short by the close is reported as discarded
    /// bytes, never as a message, because a half-received Cdr must not be stored.
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        if let Some(frame) = self.decode(buf) {
            return Some(frame);
        }
        let pending = match self.mode {
            Mode::Resync {
                discarded, reason, ..
            } => Some(Frame::Discarded {
                bytes: discarded + buf.len(),
                reason,
            }),
            _ if buf.is_empty() => None,
            _ => Some(Frame::Discarded {
                bytes: buf.len(),
                reason: DiscardReason::MessageTooLong,
            }),
        };
        // A lone unterminated message at EOF is only "complete" for replay of stored raw
        // bytes, which always end in a blank line; over a socket it is a truncated event.
        buf.clear();
        self.reset_message();
        self.mode = Mode::Normal;
        pending
    }

    /// Bytes of the current partial message already scanned (for tests and metrics).
    pub fn pending(&self) -> usize {
        self.cursor
    }

    fn finish(&mut self, buf: &mut BytesMut, len: usize, terminated: bool) -> Frame {
        let raw = buf.split_to(len).freeze();
        let msg = AmiMessage {
            raw,
            fields: std::mem::take(&mut self.fields),
            body: std::mem::take(&mut self.body),
            terminated,
        };
        self.cursor = 0;
        self.mode = Mode::Normal;
        Frame::Message(msg)
    }

    fn reset_message(&mut self) {
        self.fields.clear();
        self.body.clear();
        self.cursor = 0;
    }

    fn start_resync(
        &mut self,
        buf: &mut BytesMut,
        drop: usize,
        reason: DiscardReason,
        mid_line: bool,
    ) {
        buf.advance(drop);
        self.reset_message();
        self.expect_banner = false;
        self.mode = Mode::Resync {
            discarded: drop,
            reason,
            mid_line,
        };
    }

    /// Discards lines until a blank line (end of the junk) or a line that starts a message.
    fn resync(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        let Mode::Resync {
            mut discarded,
            reason,
            mut mid_line,
        } = self.mode
        else {
            return None;
        };
        loop {
            let Some(nl) = memchr::memchr(b'\n', buf) else {
                // Keep a short tail so a split "\r\n" or a split "Event:" is still seen whole.
                let keep = if mid_line { 0 } else { buf.len().min(16) };
                let drop = buf.len() - keep;
                if drop > 0 || buf.len() > self.limits.max_line {
                    let drop = if buf.len() > self.limits.max_line {
                        buf.len()
                    } else {
                        drop
                    };
                    buf.advance(drop);
                    discarded += drop;
                    mid_line = true;
                }
                self.mode = Mode::Resync {
                    discarded,
                    reason,
                    mid_line,
                };
                return None;
            };
            let line = strip_cr(&buf[..nl]);
            let was_mid_line = mid_line;
            mid_line = false;
            if !was_mid_line && line.is_empty() {
                buf.advance(nl + 1);
                discarded += nl + 1;
                self.mode = Mode::Normal;
                return Some(Frame::Discarded {
                    bytes: discarded,
                    reason,
                });
            }
            if !was_mid_line && starts_message(line) {
                self.mode = Mode::Normal;
                self.cursor = 0;
                return Some(Frame::Discarded {
                    bytes: discarded,
                    reason,
                });
            }
            buf.advance(nl + 1);
            discarded += nl + 1;
        }
    }
}

fn has_no_body(body: &[Range<u32>]) -> bool {
    body.is_empty()
}

/// Encodes an action as the server expects it: `Key: value\r\n` lines and a blank line (the
/// simulator's events are framed the same way and use it too).
///
/// Values must not contain CR or LF (AMI has no escaping); such bytes are replaced by spaces so a
/// hostile config value cannot inject a second action.
pub fn encode_action(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 * fields.len().max(1));
    for (k, v) in fields {
        for part in [*k, ": ", *v] {
            out.extend(
                part.bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Vec<Frame> {
        let mut dec = Decoder::default();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(f) = dec.decode(&mut buf) {
            out.push(f);
        }
        out
    }

    fn msg(f: &Frame) -> &AmiMessage {
        match f {
            Frame::Message(m) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn banner_then_response_in_one_read() {
        let frames = decode_all(
            b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nMessage: Authentication accepted\r\n\r\n",
        );
        assert_eq!(frames.len(), 2);
        assert_eq!(
            frames[0],
            Frame::Banner(Bytes::from_static(b"Asterisk Call Manager/11.0.0"))
        );
        assert_eq!(msg(&frames[1]).response(), Some(&b"Success"[..]));
    }

    #[test]
    fn framing_tolerances() {
        // (input, expected number of messages, description)
        let table: &[(&[u8], usize, &str)] = &[
            (b"Event: A\nX: 1\n\n", 1, "bare LF"),
            (b"Event: A\r\nX: 1\r\n\n", 1, "CRLF then LF terminator"),
            (
                b"\r\n\r\nEvent: A\r\n\r\n\r\n\r\nEvent: B\r\n\r\n",
                2,
                "extra blank lines",
            ),
            (
                b"Event: A\r\nX: 1\r\nEvent: B\r\n\r\n",
                2,
                "missing terminator split at Event",
            ),
            (
                b"Event: A\r\nAnswerTime:\r\nY: \r\n\r\nEvent: B\r\n\r\n",
                2,
                "empty values never merge",
            ),
        ];
        for (input, n, what) in table {
            let frames: Vec<_> = decode_all(input)
                .into_iter()
                .filter(|f| matches!(f, Frame::Message(_)))
                .collect();
            assert_eq!(frames.len(), *n, "{what}");
        }
    }

    #[test]
    fn values_are_split_at_first_colon_and_keep_bytes() {
        let frames = decode_all(
            b"Event: Cdr\r\nUserField: ticket=42; note: x\r\nAnswerTime: \r\nCallerID: \"O\\\"Brien\" <1>\r\nKey:\r\nName: \xcf\xf0\r\n\r\n",
        );
        let m = msg(&frames[0]);
        assert_eq!(m.get("userfield"), Some(&b"ticket=42; note: x"[..]));
        assert_eq!(m.get("AnswerTime"), Some(&b""[..]));
        assert_eq!(m.get("Key"), Some(&b""[..]));
        assert_eq!(m.get("callerid"), Some(&b"\"O\\\"Brien\" <1>"[..]));
        assert_eq!(m.get("Name"), Some(&b"\xcf\xf0"[..]));
    }

    #[test]
    fn repeated_keys_are_kept_in_order() {
        let frames = decode_all(b"Event: X\r\nVariable: a=1\r\nvariable: b=2\r\n\r\n");
        let m = msg(&frames[0]);
        let all: Vec<_> = m.get_all("VARIABLE").collect();
        assert_eq!(all, vec![&b"a=1"[..], &b"b=2"[..]]);
    }

    #[test]
    fn byte_at_a_time_equals_whole() {
        let input = b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nPing: Pong\r\n\r\nEvent: Cdr\r\nA: \xd0\x98\r\n\r\n";
        let whole = decode_all(input);
        let mut dec = Decoder::default();
        let mut buf = BytesMut::new();
        let mut split = Vec::new();
        for b in input {
            buf.extend_from_slice(&[*b]);
            while let Some(f) = dec.decode(&mut buf) {
                split.push(f);
            }
        }
        assert_eq!(whole, split);
    }

    #[test]
    fn oversized_message_is_discarded_with_bounded_memory_and_next_event_survives() {
        let limits = Limits {
            max_line: 1024,
            max_message: 4096,
        };
        let mut dec = Decoder::new(limits);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        buf.extend_from_slice(b"Event: Junk\r\n");
        for _ in 0..5_000 {
            buf.extend_from_slice(b"Filler: 0123456789012345678901234567890123456789\r\n");
            while let Some(f) = dec.decode(&mut buf) {
                frames.push(f);
            }
            assert!(buf.len() <= 4096 + 1024, "buffer grew to {}", buf.len());
        }
        buf.extend_from_slice(b"Event: Cdr\r\nUniqueID: 1.2\r\n\r\n");
        while let Some(f) = dec.decode(&mut buf) {
            frames.push(f);
        }
        assert!(matches!(
            frames[0],
            Frame::Discarded {
                reason: DiscardReason::MessageTooLong,
                ..
            }
        ));
        assert_eq!(
            msg(frames.last().unwrap()).get("UniqueID"),
            Some(&b"1.2"[..])
        );
    }

    #[test]
    fn endless_line_is_discarded() {
        let mut dec = Decoder::new(Limits {
            max_line: 100,
            max_message: 1000,
        });
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for _ in 0..1000 {
            buf.extend_from_slice(&[b'x'; 97]);
            while let Some(f) = dec.decode(&mut buf) {
                frames.push(f);
            }
            assert!(buf.len() <= 200);
        }
        buf.extend_from_slice(b"\r\n\r\nEvent: Cdr\r\n\r\n");
        while let Some(f) = dec.decode(&mut buf) {
            frames.push(f);
        }
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert!(msg(&frames[1]).is_event("cdr"));
    }

    #[test]
    fn eof_mid_message_never_yields_a_message() {
        let mut dec = Decoder::default();
        let mut buf = BytesMut::from(&b"Event: Cdr\r\nUniqueID: 1.2\r\nDispo"[..]);
        assert!(dec.decode(&mut buf).is_none());
        assert!(matches!(
            dec.decode_eof(&mut buf),
            Some(Frame::Discarded { .. })
        ));
    }

    #[test]
    fn legacy_follows_block_with_blank_lines() {
        let frames = decode_all(
            b"Response: Follows\r\nPrivilege: Command\r\nline one\r\n\r\nKey: looks like a header\r\n--END COMMAND--\r\n\r\nEvent: Cdr\r\n\r\n",
        );
        let msgs: Vec<_> = frames.iter().map(msg).collect();
        assert_eq!(msgs.len(), 2);
        assert!(msgs[1].is_event("Cdr"));
    }

    #[test]
    fn encode_strips_line_breaks() {
        let out = encode_action(&[("Action", "Login"), ("Secret", "a\r\nAction: Originate")]);
        assert_eq!(
            out,
            b"Action: Login\r\nSecret: a  Action: Originate\r\n\r\n"
        );
    }

    #[test]
    fn parse_single_raw_message() {
        let m = AmiMessage::parse(b"Event: Cdr\r\nUniqueID: 9\r\n\r\n").expect("parses");
        assert!(m.is_event("cdr"));
        assert_eq!(m.get("uniqueid"), Some(&b"9"[..]));
    }
}
