//! Fuzz target: the AMI stream decoder. Any bytes, cut into any chunks, must never panic, and
//! with the production limits (never reached by inputs this small) the frames must not depend
//! on where the stream was cut. With tiny limits, the resync paths run and must stay bounded.
#![no_main]

use bytes::BytesMut;
use cdrbox::ami::{Decoder, Frame, Limits};
use libfuzzer_sys::fuzz_target;

/// Decodes `data` fed in pieces whose lengths come from `cuts` (cycled), then EOF.
fn frames(data: &[u8], cuts: &[u8], limits: Limits) -> Vec<Frame> {
    let mut dec = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = if cuts.is_empty() {
            rest.len()
        } else {
            (usize::from(cuts[i % cuts.len()]) % 64 + 1).min(rest.len())
        };
        i += 1;
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(f) = dec.decode(&mut buf) {
            out.push(f);
        }
        // The decoder never holds more than it was given.
        assert!(dec.pending() <= buf.len() + limits.max_message + limits.max_line);
    }
    while let Some(f) = dec.decode_eof(&mut buf) {
        out.push(f);
    }
    out
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let cut_len = usize::from(input[0] % 16);
    let (cuts, data) = input[1..].split_at(cut_len.min(input.len() - 1));

    // Production limits: chunking must not change what comes out.
    let whole = frames(data, &[], Limits::default());
    let pieces = frames(data, cuts, Limits::default());
    assert_eq!(whole, pieces, "frames depend on where the stream was cut");
    for f in &whole {
        if let Frame::Message(m) = f {
            // Every field a message reports lies inside its raw bytes.
            for (k, v) in m.fields() {
                assert!(k.len() + v.len() <= m.raw().len());
            }
            let _ = m.get_str("Event");
        }
    }

    // Tiny limits: the over-long line / message paths; only bounded behaviour is checked.
    let max_line = 8 + usize::from(input[0] % 64);
    let tiny = Limits {
        max_line,
        max_message: max_line * 3,
    };
    for f in frames(data, cuts, tiny) {
        if let Frame::Message(m) = f {
            assert!(m.raw().len() <= tiny.max_message + tiny.max_line);
        }
    }
});
