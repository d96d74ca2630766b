//! The web gate against tiny_http's own parser, on generated request heads (the stable-Rust
//! twin of the `web_gate` fuzz target): whatever the gate admits, tiny_http must see exactly
//! the same request, and the two must never disagree on where a body ends (issue 11,
//! finding 1).

use crate::differential;

use proptest::prelude::*;

/// Pieces that have broken HTTP parsers before: duplicate and conflicting lengths, odd
/// whitespace, bare LF, obs-fold, signs, leading zeros, non-ASCII, huge numbers.
fn header() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Host: 127.0.0.1".to_string()),
        Just("Host: a\r\nHost: b".to_string()),
        (0u64..70_000).prop_map(|n| format!("Content-Length: {n}")),
        (0u64..40).prop_map(|n| format!("Content-Length:  {n} ")),
        (0u64..40).prop_map(|n| format!("Content-length: +{n}")),
        (0u64..40).prop_map(|n| format!("Content-Length: 0{n}")),
        (0u64..40, 0u64..40)
            .prop_map(|(a, b)| format!("Content-Length: {a}\r\nContent-Length: {b}")),
        (0u64..40).prop_map(|n| format!("Content-Length: {n}, {n}")),
        Just("Content-Length: 99999999999999999999999".to_string()),
        Just("Transfer-Encoding: chunked".to_string()),
        Just("Transfer-Encoding: identity".to_string()),
        Just("Transfer-Encoding : chunked".to_string()),
        Just("Connection: upgrade".to_string()),
        Just("Connection: keep-alive".to_string()),
        Just("Expect: 100-continue".to_string()),
        Just("X-Cdrbox-Peer: tok 6.6.6.6 https".to_string()),
        Just("X-Folded: a\r\n b".to_string()),
        Just("X-Tab:\tv\t".to_string()),
        Just("X-Empty:".to_string()),
        Just("X-Utf8: Пётр".to_string()),
        "[A-Za-z-]{1,12}: [ -~]{0,20}",
    ]
}

fn request() -> impl Strategy<Value = Vec<u8>> {
    // Weighted towards requests the gate admits, so the comparison has something to compare.
    (
        prop_oneof![8 => Just("GET"), 4 => Just("POST"), 2 => Just("PUT"), 1 => Just("HEAD"), 1 => Just("get")],
        prop_oneof![
            4 => Just("/".to_string()),
            8 => "/[a-z/?=&%0-9.]{0,30}",
            1 => Just("/звонки".to_string()),
            1 => Just("*".to_string()),
            1 => Just("http://evil/".to_string()),
        ],
        prop_oneof![6 => Just("HTTP/1.1"), 3 => Just("HTTP/1.0"), 1 => Just("HTTP/2.0")],
        prop::bool::weighted(0.85),
        prop::collection::vec(
            prop_oneof![3 => "[A-Za-z-]{1,12}: [ -~]{0,20}", 2 => header()],
            0..5,
        ),
        prop_oneof![9 => Just("\r\n"), 1 => Just("\n")],
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(m, t, v, host, hs, eol, body)| {
            let mut s = format!("{m} {t} {v}{eol}");
            if host {
                s.push_str("Host: 127.0.0.1");
                s.push_str(eol);
            }
            for h in hs {
                s.push_str(&h);
                s.push_str(eol);
            }
            s.push_str(eol);
            let mut b = s.into_bytes();
            b.extend_from_slice(&body);
            b
        })
}

#[test]
fn the_gate_and_tiny_http_see_the_same_request() {
    use proptest::test_runner::{Config, TestRunner};
    let peer = differential::TinyHttp::new();
    let mut runner = TestRunner::new(Config {
        cases: 600,
        ..Config::default()
    });
    let admitted = std::cell::Cell::new(0u32);
    runner
        .run(&request(), |input| {
            if differential::check(&peer, &input) {
                admitted.set(admitted.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    // The comparison means something only if many inputs got through the gate.
    assert!(
        admitted.get() >= 60,
        "only {} of 600 admitted",
        admitted.get()
    );
}

/// The inputs that wedged the first release, and their neighbours, are refused or agreed on.
#[test]
fn the_wedging_request_is_refused_and_plain_ones_agree() {
    let peer = differential::TinyHttp::new();
    assert!(!differential::check(
        &peer,
        b"POST /api/setup HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2000\r\nContent-Length: 0\r\n\r\n"
    ));
    assert!(differential::check(
        &peer,
        b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello"
    ));
    assert!(differential::check(
        &peer,
        b"GET /api/calls?limit=5 HTTP/1.0\r\nX-A: b\r\n\r\n"
    ));
}

/// The fuzzer's find (CI, 2026-12-01): pipelined raw input leaves a second request ("T / …")
/// queued in the parsing server, and the next comparison must not take it for its own.
#[test]
fn a_pipelined_request_left_queued_is_not_taken_for_the_next_answer() {
    let peer = differential::TinyHttp::new();
    let pipelined: &[u8] = b"POST /api/setup HTTP/1.1\r\nHost: 1nLg-et :0h\r\n\r\nT / HTTP/1.1\r\nHost: 1 4\r\n\r\n0\r0\r\n";
    for _ in 0..3 {
        differential::check(&peer, pipelined);
        assert!(differential::check(
            &peer,
            b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello"
        ));
    }
}

/// The fuzzer's second find (CI, 2026-12-01): a bare LF between two header lines. The gate
/// reads `Content-Length: 16` and frames the 16-byte body; the head it sends upstream (CRLF
/// only) makes tiny_http frame the same body, so the two still agree where it matters.
#[test]
fn a_bare_lf_between_headers_is_framed_the_same_once_the_gate_rebuilds_the_head() {
    let peer = differential::TinyHttp::new();
    assert!(differential::check(
        &peer,
        b"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/jsonk\nContent-Length: 16\r\n\r\n{\"paHTTord\":\"x\"}\n"
    ));
}
