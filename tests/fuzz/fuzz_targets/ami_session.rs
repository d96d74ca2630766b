//! Fuzz target: the AMI session state machine fed arbitrary frames, ticks, EOFs and logoffs on a
//! fake clock. Beside arbitrary bytes (through the real decoder) it can answer the session's
//! last action correctly, so the logged-in paths are reached too. Checked: no panic; a `Close`
//! leaves the session closed and is its last output; Cdr outputs are Cdr events; nothing is
//! emitted while closed; timeouts fire by their deadlines.
#![no_main]

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;
use cdrbox::ami::{Decoder, Output, Session, SessionConfig, State};
use cdrbox::config::{AuthMethod, Secret};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Connect,
    /// Bytes through a decoder (kept per connection, so frames can span ops).
    Bytes(Vec<u8>),
    /// Answer the last action we saw with this response kind.
    Answer(u8),
    /// A Cdr event, or an event by name.
    Cdr,
    Event(u8),
    Tick(u16),
    Eof,
    Logoff,
}

fn action_id(sent: &[u8]) -> Option<String> {
    String::from_utf8_lossy(sent)
        .lines()
        .find_map(|l| l.strip_prefix("ActionID: ").map(str::to_owned))
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let auth = if u.arbitrary::<bool>().unwrap_or(false) {
        AuthMethod::Md5
    } else {
        AuthMethod::Plain
    };
    let mut cfg = SessionConfig::new("logger", Secret("s3cret".into()), auth);
    cfg.ping_interval = Duration::from_millis(200);
    cfg.ping_timeout = Duration::from_millis(100);
    cfg.banner_timeout = Duration::from_millis(100);
    cfg.login_timeout = Duration::from_millis(150);
    cfg.boot_grace = Duration::from_millis(50);
    let mut s = Session::new(cfg.clone());
    let t0 = cdrbox::clock::Clock::system().now();
    let mut now = t0;
    let mut connected_at = t0;
    let mut dec = Decoder::default();
    let mut buf = BytesMut::new();
    let mut last_action: Option<String> = None;

    for _ in 0..64 {
        let Ok(op) = Op::arbitrary(&mut u) else {
            break;
        };
        let before = s.state();
        let mut frames = Vec::new();
        let mut outs = Vec::new();
        let msg = |text: String| {
            let mut b = BytesMut::from(text.as_bytes());
            let mut d = Decoder::default();
            let mut v = Vec::new();
            // These crafted messages have no banner in front.
            b = {
                let mut with = BytesMut::from(&b"Asterisk Call Manager/11.0.0\r\n"[..]);
                with.extend_from_slice(&b);
                with
            };
            while let Some(f) = d.decode(&mut b) {
                v.push(f);
            }
            v.into_iter()
                .filter(|f| !matches!(f, cdrbox::ami::Frame::Banner(_)))
                .collect::<Vec<_>>()
        };
        match op {
            Op::Connect => {
                if matches!(before, State::Disconnected | State::Closed) {
                    dec = Decoder::default();
                    buf.clear();
                    connected_at = now;
                    outs.extend(s.on_connected(now));
                    assert_eq!(s.state(), State::AwaitingBanner);
                }
            }
            Op::Bytes(b) => {
                buf.extend_from_slice(&b);
                while let Some(f) = dec.decode(&mut buf) {
                    frames.push(f);
                }
            }
            Op::Answer(k) => {
                if before == State::AwaitingBanner {
                    let mut b = BytesMut::from(&b"Asterisk Call Manager/11.0.0\r\n"[..]);
                    if let Some(f) = Decoder::default().decode(&mut b) {
                        frames.push(f);
                    }
                } else if let Some(id) = &last_action {
                    let body = match k % 6 {
                        0 => "Response: Success\r\nMessage: Authentication accepted".to_string(),
                        1 => "Response: Success\r\nChallenge: 123456789".to_string(),
                        2 => "Response: Error\r\nMessage: Authentication failed".to_string(),
                        3 => "Response: Success\r\nPing: Pong\r\nTimestamp: 1.0".to_string(),
                        4 => "Response: Goodbye\r\nMessage: Thanks for all the fish.".to_string(),
                        _ => "Response: Error\r\nMessage: Login Already In Use".to_string(),
                    };
                    frames.extend(msg(format!("{body}\r\nActionID: {id}\r\n\r\n")));
                }
            }
            Op::Cdr => frames.extend(msg(
                "Event: Cdr\r\nPrivilege: cdr,all\r\nUniqueID: 1.1\r\nDisposition: ANSWERED\r\n\r\n"
                    .into(),
            )),
            Op::Event(k) => {
                let e = match k % 4 {
                    0 => "Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 5\r\nLastReload: 5\r\nStatus: Fully Booted",
                    1 => "Event: Shutdown\r\nPrivilege: system,all\r\nShutdown: Cleanly\r\nRestart: True",
                    2 => "Event: Reload\r\nPrivilege: system,all\r\nModule: manager",
                    _ => "Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 0\r\nLastReload: 0\r\nStatus: Fully Booted",
                };
                frames.extend(msg(format!("{e}\r\n\r\n")));
            }
            Op::Tick(ms) => {
                now += Duration::from_millis(u64::from(ms % 400));
                outs.extend(s.on_tick(now));
                let waited = now.saturating_duration_since(connected_at);
                // Banner and login deadlines are enforced by the tick that passes them.
                if before == State::AwaitingBanner && waited >= cfg.banner_timeout {
                    assert_eq!(s.state(), State::Closed, "banner timeout not enforced");
                }
                if matches!(before, State::Challenging | State::LoggingIn)
                    && waited >= cfg.login_timeout
                {
                    assert_eq!(s.state(), State::Closed, "login timeout not enforced");
                }
            }
            Op::Eof => {
                let was_open = !matches!(before, State::Disconnected | State::Closed);
                outs.extend(s.on_eof(now));
                if was_open {
                    assert_eq!(s.state(), State::Closed, "EOF must close");
                }
            }
            Op::Logoff => outs.extend(s.logoff(now)),
        }
        for f in frames {
            let is_cdr = matches!(&f, cdrbox::ami::Frame::Message(m) if m.is_event("Cdr"));
            let st = s.state();
            let o = s.on_frame(f, now);
            if st == State::LoggedIn && is_cdr {
                assert!(
                    o.iter().any(|x| matches!(x, Output::Cdr(_))),
                    "a Cdr while logged in was not delivered: {o:?}"
                );
            }
            outs.extend(o);
        }
        if matches!(before, State::Disconnected | State::Closed) && !reopened(&s) {
            // Nothing comes out of a closed session (a Connect produces nothing either).
            assert!(outs.is_empty(), "output while closed: {outs:?}");
        }
        for (i, o) in outs.iter().enumerate() {
            match o {
                Output::Send(b) => {
                    assert!(b.ends_with(b"\r\n\r\n"), "action not terminated");
                    if let Some(id) = action_id(b) {
                        last_action = Some(id);
                    }
                }
                Output::Cdr(m) => assert!(m.is_event("Cdr")),
                Output::Close(reason) => {
                    let _ = reason.to_string();
                    let _ = reason.kind();
                    assert_eq!(s.state(), State::Closed, "Close emitted but not closed");
                    assert!(
                        outs[i + 1..].iter().all(|o| !matches!(o, Output::Close(_))),
                        "two Closes: {outs:?}"
                    );
                }
                _ => {}
            }
        }
    }
});

/// True when the session is open again (a Connect ran in this step).
fn reopened(s: &Session) -> bool {
    !matches!(s.state(), State::Disconnected | State::Closed)
}
