//! `cdrbox sim-pbx` over loopback TCP with a raw client: login (plain, MD5, bad secret),
//! Ping, Logoff, pre-login errors, Cdr broadcast to several sessions, `--calls N`, shutdown and
//! restart, and dropping a slow reader without stalling others. Compared byte for byte with the
//! captures in `tests/fixtures/ami/` wherever the capture has no time-dependent values.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cdrbox::ami::{AmiMessage, Decoder, Frame};
use cdrbox::sim::{self, Scenario, SimHandle, SimOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const BANNER: &[u8] = b"Asterisk Call Manager/11.0.0\r\n";
const WAIT: Duration = Duration::from_secs(10);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/ami/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn opts() -> SimOptions {
    SimOptions {
        rate_per_sec: 0.0,
        auth_fail_delay: Duration::from_millis(150),
        ..SimOptions::default()
    }
}

async fn start(opts: SimOptions) -> SimHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    sim::start(listener, opts).await.unwrap()
}

/// `got` is the capture's text apart from the `Uptime`/`LastReload` numbers.
fn assert_like_capture(got: &[u8], capture: &str) {
    let without_uptimes = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .filter(|l| !l.starts_with("Uptime") && !l.starts_with("LastReload"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(without_uptimes(got), without_uptimes(&fixture(capture)));
}

/// A server with the usual test options and one client connected to it, not logged in yet.
async fn start_and_connect() -> (SimHandle, Client) {
    let sim = start(opts()).await;
    let c = Client::connect(&sim).await;
    (sim, c)
}

/// A raw AMI client that keeps every byte it received.
struct Client {
    stream: TcpStream,
    buf: BytesMut,
    dec: Decoder,
    raw: Vec<u8>,
}

impl Client {
    async fn connect(sim: &SimHandle) -> Client {
        Client::from_stream(TcpStream::connect(sim.local_addr()).await.unwrap())
    }

    /// A cdr-only session that shrinks its receive window to 4 KiB and does not read, so the
    /// server's writes to it stall.
    async fn slow(sim: &SimHandle) -> Client {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut slow = Client::from_stream(socket.connect(sim.local_addr()).await.unwrap());
        slow.login(Some("cdr")).await;
        slow
    }

    /// Reads until the server ends the stream (EOF or reset); the bytes read. Fails naming
    /// `what` when the stream stays open.
    async fn read_until_closed(&mut self, what: &str) -> usize {
        let mut total = 0usize;
        let mut chunk = vec![0u8; 65536];
        loop {
            match tokio::time::timeout(WAIT, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return total,
                Ok(Ok(n)) => total += n,
                Err(_) => panic!("{what} was not closed"),
            }
        }
    }

    fn from_stream(stream: TcpStream) -> Client {
        Client {
            stream,
            buf: BytesMut::new(),
            dec: Decoder::default(),
            raw: Vec::new(),
        }
    }

    /// Sends `text` with `\n` turned into `\r\n`.
    async fn send(&mut self, text: &str) {
        self.send_raw(text.replace('\n', "\r\n").as_bytes()).await;
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Next frame, or None at EOF.
    async fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.dec.decode(&mut self.buf) {
                return Some(f);
            }
            let mut chunk = [0u8; 8192];
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                .await
                .expect("server went quiet")
                .unwrap_or(0);
            if n == 0 {
                return self.dec.decode_eof(&mut self.buf);
            }
            self.raw.extend_from_slice(&chunk[..n]);
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn message(&mut self) -> AmiMessage {
        loop {
            match self.frame().await {
                Some(Frame::Message(m)) => return m,
                Some(Frame::Banner(b)) => assert_eq!(&b[..], &BANNER[..BANNER.len() - 2]),
                Some(Frame::Discarded { .. }) => panic!("discarded bytes"),
                None => panic!("unexpected EOF"),
            }
        }
    }

    /// Reads whatever comes until the server closes.
    async fn read_to_eof(&mut self) {
        while self.frame().await.is_some() {}
    }

    async fn expect_eof(&mut self) {
        loop {
            match self.frame().await {
                None => return,
                Some(Frame::Banner(_)) => {}
                Some(other) => panic!("expected EOF, got {other:?}"),
            }
        }
    }

    /// Logs in plain with `Events: cdr` and returns after the response.
    async fn login(&mut self, events: Option<&str>) {
        let ev = events.map(|e| format!("Events: {e}\n")).unwrap_or_default();
        self.send(&format!(
            "Action: Login\nActionID: login-cdronly\nUsername: logger\nSecret: s3cret\n{ev}\n"
        ))
        .await;
        let m = self.message().await;
        assert_eq!(m.get("Message"), Some(&b"Authentication accepted"[..]));
    }

    async fn cdrs(&mut self, n: usize) -> Vec<Bytes> {
        let mut out = Vec::new();
        while out.len() < n {
            let m = self.message().await;
            if m.is_event("Cdr") {
                out.push(m.raw().clone());
            }
        }
        out
    }
}

#[tokio::test]
async fn plain_login_with_events_cdr_is_byte_exact() {
    let (sim, mut c) = start_and_connect().await;
    c.login(Some("cdr")).await;
    let capture = fixture("cdr_answered.bin");
    let end = capture.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let expected = &capture[..end];
    assert_eq!(
        String::from_utf8_lossy(&c.raw),
        String::from_utf8_lossy(expected)
    );
    // No FullyBooted for an Events: cdr session: the next thing is a Cdr.
    sim.trigger_call(Scenario::Answered);
    let m = c.message().await;
    assert!(m.is_event("Cdr"));
    assert_eq!(m.get("Privilege"), Some(&b"cdr,all"[..]));
    sim.stop().await;
}

#[tokio::test]
async fn login_without_events_gets_fully_booted() {
    let (sim, mut c) = start_and_connect().await;
    c.send("Action: Login\nActionID: login-1\nUsername: logger\nSecret: s3cret\n\n")
        .await;
    c.message().await;
    let fb = c.message().await;
    assert!(fb.is_event("FullyBooted"));
    let keys: Vec<&[u8]> = fb.fields().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        vec![
            &b"Event"[..],
            b"Privilege",
            b"Uptime",
            b"LastReload",
            b"Status"
        ]
    );
    assert_eq!(fb.get("Privilege"), Some(&b"system,all"[..]));
    assert_eq!(fb.get("Status"), Some(&b"Fully Booted"[..]));
    // Same bytes as banner_and_login_ok.bin apart from the Uptime/LastReload numbers.
    assert_like_capture(&c.raw, "banner_and_login_ok.bin");
    sim.stop().await;
}

#[tokio::test]
async fn md5_login_with_challenge() {
    let meta: serde_json::Value =
        serde_json::from_slice(&fixture("meta/login_md5_challenge.json")).unwrap();
    let key_of = |challenge: &str, secret: &str| {
        use md5::{Digest, Md5};
        let mut h = Md5::new();
        h.update(challenge.as_bytes());
        h.update(secret.as_bytes());
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    // Our key math reproduces the real exchange.
    assert_eq!(
        key_of(meta["challenge"].as_str().unwrap(), "s3cret"),
        meta["key"]
    );

    let (sim, mut c) = start_and_connect().await;
    c.send("Action: Challenge\nActionID: chal-1\nAuthType: md5\n\n")
        .await;
    let r = c.message().await;
    let keys: Vec<&[u8]> = r.fields().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![&b"Response"[..], b"ActionID", b"Challenge"]);
    let challenge = r.get_str("Challenge").unwrap().to_string();
    assert!(!challenge.is_empty() && challenge.bytes().all(|b| b.is_ascii_digit()));
    c.send(&format!(
        "Action: Login\nActionID: login-md5-1\nAuthType: md5\nUsername: logger\nKey: {}\n\n",
        key_of(&challenge, "s3cret")
    ))
    .await;
    let r = c.message().await;
    assert_eq!(r.response(), Some(&b"Success"[..]));
    assert_eq!(r.get("Message"), Some(&b"Authentication accepted"[..]));
    assert!(c.message().await.is_event("FullyBooted"));

    // A wrong key fails like a wrong secret.
    let mut bad = Client::connect(&sim).await;
    bad.send("Action: Challenge\nAuthType: MD5\n\n").await;
    bad.message().await;
    bad.send(
        "Action: Login\nAuthType: MD5\nUsername: logger\nKey: 0123456789abcdef0123456789abcdef\n\n",
    )
    .await;
    assert_eq!(
        bad.message().await.get("Message"),
        Some(&b"Authentication failed"[..])
    );
    bad.expect_eof().await;
    sim.stop().await;
}

#[tokio::test]
async fn bad_secret_fails_after_the_delay_then_closes() {
    let (sim, mut c) = start_and_connect().await;
    let t0 = std::time::Instant::now();
    c.send("Action: Login\nActionID: login-bad-1\nUsername: logger\nSecret: wrong-secret\n\n")
        .await;
    c.read_to_eof().await;
    assert!(
        t0.elapsed() >= Duration::from_millis(150),
        "no delay before failure"
    );
    assert_eq!(c.raw, fixture("login_bad_secret.bin"));

    let mut u = Client::connect(&sim).await;
    u.send("Action: Login\nActionID: login-bad-2\nUsername: nobody\nSecret: s3cret\n\n")
        .await;
    u.read_to_eof().await;
    assert_eq!(u.raw, fixture("login_bad_user.bin"));
    sim.stop().await;
}

#[tokio::test]
async fn actions_before_login_are_denied_and_the_session_stays_open() {
    let (sim, mut c) = start_and_connect().await;
    // Bare "\n" line ends, as Asterisk accepts them.
    c.send_raw(b"Action: Ping\nActionID: ping-before-login\n\n")
        .await;
    c.send("Action: Originate\nActionID: orig-before-login\nChannel: Local/2001@internal\nApplication: Wait\nData: 1\n\n").await;
    c.send("Action: Login\nActionID: login-after-errors\nUsername: logger\nSecret: s3cret\n\n")
        .await;
    c.message().await;
    c.message().await;
    c.message().await;
    let fb = c.message().await;
    assert!(fb.is_event("FullyBooted"));
    c.send("Action: Logoff\n\n").await;
    c.read_to_eof().await;
    assert_like_capture(&c.raw, "action_before_login.bin");
    sim.stop().await;
}

#[tokio::test]
async fn ping_with_and_without_action_id_and_logoff() {
    let (sim, mut c) = start_and_connect().await;
    c.login(Some("off")).await;
    c.send("Action: Ping\nActionID: ping-42\n\n").await;
    let p = c.message().await;
    let keys: Vec<&[u8]> = p.fields().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        vec![&b"Response"[..], b"ActionID", b"Ping", b"Timestamp"]
    );
    assert_eq!(p.action_id(), Some(&b"ping-42"[..]));
    let ts = p.get_str("Timestamp").unwrap().to_string();
    let (sec, usec) = ts.split_once('.').unwrap();
    let sec: i64 = sec.parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((sec - now).abs() <= 5, "Timestamp is the UTC epoch");
    assert_eq!(usec.len(), 6);

    c.send("Action: Ping\n\n").await;
    let p = c.message().await;
    let keys: Vec<&[u8]> = p.fields().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![&b"Response"[..], b"Ping", b"Timestamp"]);

    c.send("Action: Logoff\nActionID: bye-1\n\n").await;
    let bye = c.message().await;
    assert_eq!(
        &bye.raw()[..],
        b"Response: Goodbye\r\nActionID: bye-1\r\nMessage: Thanks for all the fish.\r\n\r\n"
    );
    c.expect_eof().await;
    sim.stop().await;
}

#[tokio::test]
async fn unknown_and_forbidden_actions_match_the_capture() {
    let (sim, mut c) = start_and_connect().await;
    for action in [
        "Action: Login\nActionID: login-x\nUsername: logger\nSecret: s3cret\nEvents: off\n\n",
        "Action: NoSuchAction\nActionID: bad-action-1\n\n",
        "Action: Command\nActionID: cmd-1\nCommand: core show version\n\n",
        "Action: Events\nActionID: ev-1\nEventMask: cdr\n\n",
        "Action: Logoff\n\n",
    ] {
        c.send(action).await;
    }
    c.read_to_eof().await;
    assert_eq!(
        String::from_utf8_lossy(&c.raw),
        String::from_utf8_lossy(&fixture("errors_and_misc_actions.bin"))
    );
    sim.stop().await;
}

#[tokio::test]
async fn every_session_gets_every_cdr_and_late_sessions_get_no_replay() {
    let sim = start(opts()).await;
    let mut a = Client::connect(&sim).await;
    let mut b = Client::connect(&sim).await;
    a.login(Some("cdr")).await;
    b.login(None).await; // all classes: FullyBooted first, then Cdrs
    let mut sent = Vec::new();
    for s in Scenario::ALL {
        sent.extend(sim.trigger_call(s));
    }
    assert_eq!(sim.events(), sent);
    assert_eq!(sim.calls_generated(), Scenario::ALL.len() as u64);
    assert_eq!(sim.cdrs_generated(), sent.len() as u64);
    assert_eq!(a.cdrs(sent.len()).await, sent);
    assert_eq!(b.cdrs(sent.len()).await, sent);

    // A session that logs in now sees only what is dispatched from now on.
    let mut late = Client::connect(&sim).await;
    late.login(Some("cdr,system")).await;
    assert!(late.message().await.is_event("FullyBooted"));
    let next = sim.trigger_call(Scenario::Answered);
    assert_eq!(late.cdrs(1).await, next);
    assert_eq!(a.cdrs(1).await, next);

    // A session with Events: off gets nothing, and Action: Events turns Cdrs on.
    let mut quiet = Client::connect(&sim).await;
    quiet.login(Some("off")).await;
    sim.trigger_call(Scenario::Busy);
    quiet.send("Action: Ping\nActionID: p\n\n").await;
    assert_eq!(quiet.message().await.action_id(), Some(&b"p"[..]));
    quiet
        .send("Action: Events\nActionID: e\nEventMask: cdr\n\n")
        .await;
    assert_eq!(quiet.message().await.get("Events"), Some(&b"On"[..]));
    let more = sim.trigger_call(Scenario::Queue);
    assert_eq!(quiet.cdrs(more.len()).await, more);
    sim.stop().await;
}

#[tokio::test]
async fn calls_cap_stops_generation_but_keeps_serving() {
    let sim = start(SimOptions {
        rate_per_sec: 200.0,
        calls: Some(5),
        ..opts()
    })
    .await;
    let mut c = Client::connect(&sim).await;
    c.login(Some("cdr")).await;
    sim.wait_for_calls(5).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sim.calls_generated(), 5);
    let events = sim.events();
    assert_eq!(events.len() as u64, sim.cdrs_generated());
    // The first calls may have been dispatched before we logged in; the rest reached us.
    c.send("Action: Ping\nActionID: after\n\n").await;
    let mut got = Vec::new();
    loop {
        let m = c.message().await;
        if m.action_id() == Some(&b"after"[..]) {
            break;
        }
        got.push(m.raw().clone());
    }
    assert!(
        events.ends_with(&got),
        "received a tail of the generated events"
    );
    // Still serving: triggered calls go beyond the cap.
    let extra = sim.trigger_call(Scenario::Inbound);
    assert_eq!(c.cdrs(1).await, extra);
    assert_eq!(sim.calls_generated(), 6);
    sim.stop().await;
}

#[tokio::test]
async fn same_seed_serves_the_same_calls() {
    let run = || async {
        let sim = start(SimOptions {
            generator: sim::GeneratorOptions {
                seed: 7,
                ..Default::default()
            },
            ..opts()
        })
        .await;
        for _ in 0..30 {
            sim.trigger_random_call();
        }
        let events = sim.events();
        sim.stop().await;
        events
    };
    let (a, b) = (run().await, run().await);
    assert!(a.len() >= 30);
    // Times come from the wall clock (and UniqueIDs carry the epoch); everything else matches.
    let strip = |evs: &[Bytes]| -> Vec<String> {
        evs.iter()
            .map(|e| {
                String::from_utf8_lossy(e)
                    .lines()
                    .filter(|l| {
                        !["StartTime", "AnswerTime", "EndTime", "UniqueID", "LinkedID"]
                            .iter()
                            .any(|k| l.starts_with(k))
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
}

#[tokio::test]
async fn shutdown_restart_sends_event_then_closes_and_comes_back() {
    let sim = start(opts()).await;
    let mut sys = Client::connect(&sim).await;
    sys.login(Some("cdr,system")).await;
    assert!(sys.message().await.is_event("FullyBooted"));
    let mut cdr_only = Client::connect(&sim).await;
    cdr_only.login(Some("cdr")).await;
    let before = sim.trigger_call(Scenario::Answered);
    sim.shutdown_event(true);
    assert_eq!(sys.cdrs(1).await, before);
    let ev = sys.message().await;
    assert_eq!(
        &ev.raw()[..],
        b"Event: Shutdown\r\nPrivilege: system,all\r\nShutdown: Cleanly\r\nRestart: True\r\n\r\n"
    );
    sys.expect_eof().await;
    assert_eq!(cdr_only.cdrs(1).await, before);
    cdr_only.expect_eof().await;

    assert!(sim.is_running());
    // Back up: a new session logs in, Uptime starts again, counters restarted.
    let mut again = Client::connect(&sim).await;
    again.login(None).await;
    let fb = again.message().await;
    assert_eq!(fb.get("Uptime"), Some(&b"0"[..]));
    let after = sim.trigger_call(Scenario::FailedHangup);
    let m = AmiMessage::parse(&after[0]).unwrap();
    assert!(m.get_str("UniqueID").unwrap().ends_with(".1"));
    assert_eq!(again.cdrs(1).await, after);

    // A stop without restart: event, close, and the port no longer answers with a banner.
    sim.shutdown_event(false);
    let ev = again.message().await;
    assert_eq!(ev.get("Restart"), Some(&b"False"[..]));
    assert!(!sim.is_running());
    again.expect_eof().await;
    // The listener is gone: a new connection is refused or closed without a banner.
    tokio::time::sleep(Duration::from_millis(50)).await;
    if let Ok(stream) = TcpStream::connect(sim.local_addr()).await {
        let mut late = Client::from_stream(stream);
        late.expect_eof().await;
        assert!(late.raw.is_empty());
    }
    sim.stop().await;
}

#[tokio::test]
async fn restart_with_downtime_refuses_boots_without_calls_then_comes_back() {
    // Calls on the PBX's own clock, 50/s, whether or not anyone is logged in.
    let sim = start(SimOptions {
        rate_per_sec: 50.0,
        poisson: false,
        ..opts()
    })
    .await;
    sim.wait_for_calls(5).await;
    let nobody = sim.stats();
    assert!(nobody.cdrs_while_up >= 5, "{nobody:?}");
    assert_eq!(
        nobody.cdrs_unheard, nobody.cdrs_while_up,
        "dispatched with no session logged in: lost at the PBX"
    );
    assert_eq!(nobody.cdrs_sent, 0);

    let mut sys = Client::connect(&sim).await;
    sys.login(Some("cdr,system")).await;
    assert!(sys.message().await.is_event("FullyBooted"));
    sim.restart(Duration::from_millis(600), Duration::from_millis(600));
    assert_eq!(sim.phase(), sim::Phase::Down);
    // Cdrs dispatched before the Shutdown event still arrive, then the event, then EOF.
    loop {
        let m = sys.message().await;
        if m.is_event("Shutdown") {
            assert_eq!(m.get("Restart"), Some(&b"True"[..]));
            break;
        }
        assert!(m.is_event("Cdr"), "{m:?}");
    }
    sys.expect_eof().await;

    // Down: a connection is reset before the banner; calls are counted as produced while down.
    let down = sim.stats();
    let stream = TcpStream::connect(sim.local_addr()).await.unwrap();
    let mut refused = Client::from_stream(stream);
    refused.expect_eof().await;
    assert!(refused.raw.is_empty(), "no banner while down");

    // Booting: the login is served, without FullyBooted, and no calls happen.
    sim.wait_for_phase(sim::Phase::Booting).await;
    let booting = sim.stats();
    assert!(
        booting.cdrs_while_down > down.cdrs_while_down,
        "the PBX clock kept running while it was down: {booting:?}"
    );
    assert_eq!(booting.cdrs_while_up, down.cdrs_while_up);
    assert!(booting.refused >= 1);
    let mut early = Client::connect(&sim).await;
    early.login(Some("cdr,system")).await;
    // Up: the broadcast FullyBooted (Uptime counts from the end of the downtime), then calls,
    // with the counters of a fresh Asterisk.
    let fb = early.message().await;
    assert!(fb.is_event("FullyBooted"), "{fb:?}");
    assert_eq!(fb.get("Uptime"), Some(&b"0"[..]));
    assert_eq!(sim.phase(), sim::Phase::Up);
    let first = early.cdrs(1).await;
    let m = AmiMessage::parse(&first[0]).unwrap();
    assert_eq!(m.get("Sequence"), Some(&b"0"[..]), "counters restarted");
    let up = sim.stats();
    assert_eq!(up.restarts, 1);
    assert!(up.cdrs_while_up > booting.cdrs_while_up);
    assert_eq!(
        up.cdrs_generated,
        up.cdrs_while_up + up.cdrs_while_down,
        "{up:?}"
    );
    sim.stop().await;
}

#[tokio::test]
async fn unauthenticated_sessions_time_out() {
    let sim = start(SimOptions {
        auth_timeout: Duration::from_millis(200),
        ..opts()
    })
    .await;
    let mut c = Client::connect(&sim).await;
    c.expect_eof().await;
    assert_eq!(c.raw, BANNER);
    sim.stop().await;
}

/// A server with small socket buffers, a per-session queue of `session_queue` events and
/// `write_timeout`, and a cdr-only client that shrinks its receive window and never reads, so
/// the server's writes to it stall.
async fn with_a_slow_session(session_queue: usize, write_timeout: Duration) -> (SimHandle, Client) {
    let sim = start(SimOptions {
        send_buffer: Some(4096),
        session_queue,
        write_timeout,
        ..opts()
    })
    .await;
    let slow = Client::slow(&sim).await;
    (sim, slow)
}

/// Polls until the server has dropped a session, or `WAIT` passes.
async fn until_a_session_is_dropped(sim: &SimHandle) {
    let deadline = std::time::Instant::now() + WAIT;
    while sim.sessions_dropped() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_slow_reader_is_dropped_without_stalling_others() {
    // A queue bigger than the whole run: only the write timeout can drop a session here.
    let (sim, mut slow) = with_a_slow_session(8192, Duration::from_millis(500)).await;
    let mut fast = Client::connect(&sim).await;
    fast.login(Some("cdr")).await;
    assert_eq!(sim.logged_in(), 2);

    // Answered calls give exactly one Cdr each, so the reader knows how many to expect.
    const CALLS: usize = 4000;
    let reader = tokio::spawn(async move {
        let got = fast.cdrs(CALLS).await;
        (got, fast)
    });
    for _ in 0..CALLS / 50 {
        for _ in 0..50 {
            assert_eq!(sim.trigger_call(Scenario::Answered).len(), 1);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (received, _fast) = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("fast client stalled")
        .unwrap();
    assert_eq!(
        received,
        sim.events(),
        "fast client got every event in order"
    );
    until_a_session_is_dropped(&sim).await;
    assert_eq!(sim.sessions_dropped(), 1);
    assert_eq!(sim.logged_in(), 1);
    assert!(sim.cdrs_sent() >= CALLS as u64);
    assert!(
        sim.cdrs_sent() < 2 * CALLS as u64,
        "the slow session did not get everything"
    );

    // The slow client, once it reads, finds a truncated stream that ends (EOF or reset).
    let total = slow.read_until_closed("slow session").await;
    let all: usize = sim.events().iter().map(|e| e.len()).sum();
    assert!(
        total < all,
        "slow client got everything; it was not dropped"
    );
    sim.stop().await;
}

#[tokio::test]
async fn a_session_whose_queue_overflows_is_dropped_and_the_generator_never_waits() {
    // A write timeout long enough that only the queue bound can drop the session.
    let (sim, mut slow) = with_a_slow_session(16, Duration::from_secs(30)).await;
    // First let the session fill the socket and block inside a write (small batches, so its
    // queue never fills while it is still writing) …
    let mut last_sent = u64::MAX;
    for _ in 0..100 {
        for _ in 0..4 {
            sim.trigger_call(Scenario::Answered);
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        if sim.cdrs_sent() == last_sent {
            break;
        }
        last_sent = sim.cdrs_sent();
    }
    assert_eq!(sim.cdrs_sent(), last_sent, "the session never blocked");
    assert_eq!(
        sim.sessions_dropped(),
        0,
        "dropped before its queue was full"
    );
    // … then overflow its queue. Synchronous triggers: if broadcasting waited on the stalled
    // session, this would hang; and the write stalled inside must be abandoned at once, well
    // before the 30 s write timeout.
    let before = sim.calls_generated();
    for _ in 0..100 {
        sim.trigger_call(Scenario::Answered);
    }
    assert_eq!(sim.calls_generated(), before + 100);
    until_a_session_is_dropped(&sim).await;
    assert_eq!(sim.sessions_dropped(), 1);
    assert_eq!(sim.logged_in(), 0);
    slow.read_until_closed("overflowed session").await;
    sim.stop().await;
}

#[tokio::test]
async fn reload_event_matches_the_capture_and_respects_the_mask() {
    let sim = start(opts()).await;
    let mut sys = Client::connect(&sim).await;
    sys.login(None).await;
    assert!(sys.message().await.is_event("FullyBooted"));
    let mut cdr_only = Client::connect(&sim).await;
    cdr_only.login(Some("cdr")).await;
    sim.reload_event();
    let reload = sys.message().await;
    let capture = String::from_utf8(fixture("reload_events.bin")).unwrap();
    let start = capture.find("Event: Reload").unwrap();
    let end = start + capture[start..].find("\r\n\r\n").unwrap() + 4;
    assert_eq!(String::from_utf8_lossy(reload.raw()), &capture[start..end]);
    // The cdr-only session sees the next Cdr and nothing before it.
    let next = sim.trigger_call(Scenario::Answered);
    let m = cdr_only.message().await;
    assert_eq!(m.raw(), &next[0]);
    assert_eq!(sim.events_from(0), next);
    assert!(sim.events_from(5).is_empty());
    sim.stop().await;
}

#[tokio::test]
async fn bind_reports_the_address_it_could_not_use() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = match sim::bind(&addr, opts()).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("bound a port that is in use"),
    };
    assert!(err.contains(&addr), "{err}");
    let bad_rate = SimOptions {
        rate_per_sec: f64::NAN,
        ..opts()
    };
    assert!(sim::bind("127.0.0.1:0", bad_rate).await.is_err());
}
