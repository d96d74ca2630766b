//! A scripted fake Asterisk manager on `127.0.0.1:0` for the AMI client tests.
//!
//! Each accepted connection runs the test's script (an async closure over a [`FakeConn`]). The
//! connection offers the moves a real or broken PBX makes: banner, plain/MD5 login (checked
//! against the configured user and secret like `manager.c` does), refusals after a delay,
//! Ping answered in the modern or 1.4 form or not at all, byte streams in chosen chunk sizes,
//! a close in the middle of an event, a stall. Every write is timed, so a test can assert the
//! client never made the PBX's writes block (Asterisk drops a client after 100 ms).
//! Not a protocol reference: only what the tests need.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use cdrbox::ami::{AmiMessage, Decoder, Frame};
use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

pub const BANNER: &[u8] = b"Asterisk Call Manager/11.0.0\r\n";
pub const CHALLENGE: &str = "213960544";

/// Counters the tests assert on.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicUsize,
    /// `Action: Login` received (accepted or not).
    pub logins: AtomicUsize,
    pub logins_accepted: AtomicUsize,
    pub pings: AtomicUsize,
    pub logoffs: AtomicUsize,
    /// Longest single `write_all` of the fake PBX, in microseconds.
    pub max_write_us: AtomicU64,
    /// Arrival time of each Login action.
    pub login_times: std::sync::Mutex<Vec<Instant>>,
    /// What happened when, on which connection: `connect`, `login` (received), `accepted`,
    /// `logoff` (received), `goodbye` (answered and closed: the PBX's session is gone), `closed`
    /// (the client's EOF after [`FakeConn::serve`]).
    pub timeline: std::sync::Mutex<Vec<(Instant, usize, &'static str)>>,
}

impl Stats {
    pub fn logins(&self) -> usize {
        self.logins.load(Ordering::SeqCst)
    }
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
    pub fn max_write(&self) -> Duration {
        Duration::from_micros(self.max_write_us.load(Ordering::SeqCst))
    }
    pub fn note(&self, conn: usize, what: &'static str) {
        self.timeline
            .lock()
            .unwrap()
            .push((Instant::now(), conn, what));
    }
    /// Sessions logged in and not yet ended (Goodbye sent or the client gone), as Asterisk
    /// counts them for `allowmultiplelogin = no`.
    pub fn open_sessions(&self) -> usize {
        let t = self.timeline.lock().unwrap();
        let ended = |c: usize| {
            t.iter()
                .any(|(_, i, w)| *i == c && (*w == "goodbye" || *w == "closed"))
        };
        t.iter()
            .filter(|(_, c, w)| *w == "accepted" && !ended(*c))
            .count()
    }

    /// Times of every `what` in the timeline, in order.
    pub fn times_of(&self, what: &str) -> Vec<Instant> {
        self.timeline
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, w)| *w == what)
            .map(|(t, _, _)| *t)
            .collect()
    }
}

/// The server: accepts forever, one script run per connection.
pub struct FakeAmi {
    pub addr: std::net::SocketAddr,
    pub stats: Arc<Stats>,
    accept: JoinHandle<()>,
}

impl Drop for FakeAmi {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The credentials the fake PBX accepts.
pub const USER: &str = "logger";
pub const SECRET: &str = "s3cret";
/// `(USER, SECRET)`, as a box config takes its login.
pub const LOGIN: (&str, &str) = (USER, SECRET);

impl FakeAmi {
    /// A PBX that logs every connection in and sends it `bytes` (see [`FakeConn::deliver`]).
    pub async fn delivering(bytes: Vec<u8>) -> FakeAmi {
        FakeAmi::start(move |mut c| {
            let bytes = bytes.clone();
            async move { c.deliver(&bytes).await }
        })
        .await
    }

    /// A PBX that logs each connection in and sends it Cdrs `PREFIX.0` … `PREFIX.(total-1)` in
    /// batches of 10, one batch every `every` after the first (`Duration::ZERO`: as fast as the
    /// client reads), then answers pings until the client leaves.
    pub async fn cdr_stream(prefix: &'static str, total: usize, every: Duration) -> FakeAmi {
        FakeAmi::start(move |mut c| async move {
            let Some(done) = c.open(Pong::Modern, None).await else {
                return;
            };
            let start = Instant::now();
            for batch in 0..total / 10 {
                let blob: Vec<u8> = (0..10)
                    .flat_map(|i| cdr_event(&format!("{prefix}.{}", batch * 10 + i), b"\"\" <>"))
                    .collect();
                c.send(&blob).await.unwrap();
                if !every.is_zero() {
                    let due = start + every * (batch as u32 + 1);
                    tokio::time::sleep_until(due.into()).await;
                }
            }
            let _ = done.await;
        })
        .await
    }

    pub async fn start<F, Fut>(script: F) -> FakeAmi
    where
        F: Fn(FakeConn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Stats::default());
        let st = stats.clone();
        let script = Arc::new(script);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let index = st.connections.fetch_add(1, Ordering::SeqCst);
                st.note(index, "connect");
                let (rd, wr) = sock.into_split();
                let conn = FakeConn {
                    index,
                    reader: Some(Reader {
                        rd,
                        dec: Decoder::default(),
                        buf: BytesMut::new(),
                    }),
                    writer: Writer {
                        wr: Arc::new(Mutex::new(wr)),
                        stats: st.clone(),
                    },
                    stats: st.clone(),
                };
                tokio::spawn(script(conn));
            }
        });
        FakeAmi {
            addr,
            stats,
            accept,
        }
    }
}

/// How the fake answers `Ping`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pong {
    /// `Response: Success` / `Ping: Pong` / `Timestamp:` (Asterisk ≥ 1.6).
    Modern,
    /// `Response: Pong` (Asterisk 1.4).
    Legacy,
    /// Never answer (a hung PBX or a half-open link).
    Silent,
}

/// Outcome of [`FakeConn::login`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    Accepted,
    Rejected,
    /// The client closed before logging in.
    Gone,
}

struct Reader {
    rd: OwnedReadHalf,
    dec: Decoder,
    buf: BytesMut,
}

impl Reader {
    /// The next action from the client; `None` at EOF.
    async fn action(&mut self) -> Option<AmiMessage> {
        loop {
            while let Some(f) = self.dec.decode(&mut self.buf) {
                if let Frame::Message(m) = f {
                    return Some(m);
                }
            }
            self.buf.reserve(4096);
            match self.rd.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }
}

/// The writing side; cheap to clone into background tasks.
#[derive(Clone)]
pub struct Writer {
    wr: Arc<Mutex<OwnedWriteHalf>>,
    stats: Arc<Stats>,
}

impl Writer {
    /// Writes all bytes, recording how long the write blocked.
    pub async fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let mut wr = self.wr.lock().await;
        let t = Instant::now();
        let r = wr.write_all(bytes).await;
        let us = t.elapsed().as_micros() as u64;
        self.stats.max_write_us.fetch_max(us, Ordering::SeqCst);
        r
    }

    /// Sends `bytes` in pieces of `chunk` bytes with a pause between them, so the client sees
    /// them in separate reads (TCP_NODELAY on our side, a short sleep between writes).
    pub async fn send_chunked(
        &self,
        bytes: &[u8],
        chunk: usize,
        pause: Duration,
    ) -> io::Result<()> {
        {
            let wr = self.wr.lock().await;
            wr.as_ref().set_nodelay(true)?;
        }
        for piece in bytes.chunks(chunk.max(1)) {
            self.send(piece).await?;
            tokio::time::sleep(pause).await;
        }
        Ok(())
    }

    /// Half-closes: the client reads EOF after what was sent.
    pub async fn close(&self) {
        let _ = self.wr.lock().await.shutdown().await;
    }
}

/// One accepted connection, driven by the test script.
pub struct FakeConn {
    /// 0 for the first connection the server accepted.
    pub index: usize,
    reader: Option<Reader>,
    pub writer: Writer,
    pub stats: Arc<Stats>,
}

impl FakeConn {
    pub async fn send(&self, bytes: &[u8]) -> io::Result<()> {
        self.writer.send(bytes).await
    }

    pub async fn banner(&self) {
        let _ = self.send(BANNER).await;
    }

    /// The next action; `None` at EOF or after [`FakeConn::serve`] took the reader.
    pub async fn action(&mut self) -> Option<AmiMessage> {
        self.reader.as_mut()?.action().await
    }

    /// Sends the banner and handles Challenge/Login like Asterisk: a wrong secret or key (or
    /// `refuse`, a forced error message) is answered after `reject_delay` and the connection is
    /// closed. On success `Event: FullyBooted` follows when `uptime` is given.
    pub async fn login(
        &mut self,
        refuse: Option<&str>,
        reject_delay: Duration,
        uptime: Option<u64>,
    ) -> LoginResult {
        self.banner().await;
        let mut challenge: Option<String> = None;
        loop {
            let Some(a) = self.action().await else {
                return LoginResult::Gone;
            };
            let id = a.get_str("ActionID").map(|s| s.into_owned());
            let idl = id
                .as_ref()
                .map(|i| format!("ActionID: {i}\r\n"))
                .unwrap_or_default();
            let action = a.get_str("Action").unwrap_or_default().to_ascii_lowercase();
            match action.as_str() {
                "challenge" => {
                    challenge = Some(CHALLENGE.to_string());
                    let _ = self
                        .send(
                            format!("Response: Success\r\n{idl}Challenge: {CHALLENGE}\r\n\r\n")
                                .as_bytes(),
                        )
                        .await;
                }
                "login" => {
                    self.stats.logins.fetch_add(1, Ordering::SeqCst);
                    self.stats.login_times.lock().unwrap().push(Instant::now());
                    self.stats.note(self.index, "login");
                    let user_ok = a.get_str("Username").as_deref() == Some(USER);
                    let md5 = a
                        .get_str("AuthType")
                        .is_some_and(|t| t.eq_ignore_ascii_case("md5"));
                    let secret_ok = if md5 {
                        let mut h = Md5::new();
                        h.update(challenge.clone().unwrap_or_default().as_bytes());
                        h.update(SECRET.as_bytes());
                        let want: String =
                            h.finalize().iter().map(|b| format!("{b:02x}")).collect();
                        challenge.is_some() && a.get_str("Key").as_deref() == Some(want.as_str())
                    } else {
                        a.get_str("Secret").as_deref() == Some(SECRET)
                    };
                    let refusal = match refuse {
                        Some(r) => Some(r.to_string()),
                        None if !(user_ok && secret_ok) => Some("Authentication failed".into()),
                        None => None,
                    };
                    if let Some(msg) = refusal {
                        tokio::time::sleep(reject_delay).await;
                        let _ = self
                            .send(
                                format!("Response: Error\r\n{idl}Message: {msg}\r\n\r\n")
                                    .as_bytes(),
                            )
                            .await;
                        self.writer.close().await;
                        return LoginResult::Rejected;
                    }
                    self.stats.logins_accepted.fetch_add(1, Ordering::SeqCst);
                    self.stats.note(self.index, "accepted");
                    let mut resp = format!(
                        "Response: Success\r\n{idl}Message: Authentication accepted\r\n\r\n"
                    );
                    if let Some(up) = uptime {
                        resp.push_str(&format!(
                            "Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: {up}\r\nLastReload: {up}\r\nStatus: Fully Booted\r\n\r\n"
                        ));
                    }
                    let _ = self.send(resp.as_bytes()).await;
                    return LoginResult::Accepted;
                }
                _ => {
                    let _ = self
                        .send(
                            format!("Response: Error\r\n{idl}Message: Permission denied\r\n\r\n")
                                .as_bytes(),
                        )
                        .await;
                }
            }
        }
    }

    /// Answers Ping (per `pong`) and Logoff in the background until the client closes.
    /// Returns the task; awaiting it waits for the client's EOF.
    pub fn serve(&mut self, pong: Pong) -> JoinHandle<()> {
        self.serve_with(pong, Duration::ZERO)
    }

    /// [`FakeConn::serve`], answering Logoff only after `goodbye_delay` (a busy PBX).
    pub fn serve_with(&mut self, pong: Pong, goodbye_delay: Duration) -> JoinHandle<()> {
        let mut reader = self.reader.take().expect("reader already taken");
        let writer = self.writer.clone();
        let stats = self.stats.clone();
        let index = self.index;
        tokio::spawn(async move {
            while let Some(a) = reader.action().await {
                let idl = a
                    .get_str("ActionID")
                    .map(|i| format!("ActionID: {i}\r\n"))
                    .unwrap_or_default();
                let action = a.get_str("Action").unwrap_or_default().to_ascii_lowercase();
                match action.as_str() {
                    "ping" => {
                        stats.pings.fetch_add(1, Ordering::SeqCst);
                        let reply = match pong {
                            Pong::Modern => format!(
                                "Response: Success\r\n{idl}Ping: Pong\r\nTimestamp: 1795331189.231419\r\n\r\n"
                            ),
                            Pong::Legacy => format!("Response: Pong\r\n{idl}\r\n"),
                            Pong::Silent => continue,
                        };
                        let _ = writer.send(reply.as_bytes()).await;
                    }
                    "logoff" => {
                        stats.logoffs.fetch_add(1, Ordering::SeqCst);
                        stats.note(index, "logoff");
                        tokio::time::sleep(goodbye_delay).await;
                        let _ = writer
                            .send(format!("Response: Goodbye\r\n{idl}Message: Thanks for all the fish.\r\n\r\n").as_bytes())
                            .await;
                        writer.close().await;
                        stats.note(index, "goodbye");
                    }
                    _ => {}
                }
            }
            stats.note(index, "closed");
        })
    }

    /// Logs in (accepting, no FullyBooted), sends `bytes`, and serves pings until the client
    /// closes: the common "a PBX with one thing to say" script.
    pub async fn deliver(&mut self, bytes: &[u8]) {
        let Some(done) = self.open(Pong::Modern, None).await else {
            return;
        };
        let _ = self.send(bytes).await;
        let _ = done.await;
    }

    /// Answers the login with `Login Already In Use` after `delay`, then closes
    /// (`allowmultiplelogin = no` and another session of the user exists).
    pub async fn refuse_in_use(&mut self, delay: Duration) {
        let _ = self.login(Some("Login Already In Use"), delay, None).await;
    }

    /// Logs in (accepting), then answers pings in the background; the common opening.
    pub async fn open(&mut self, pong: Pong, uptime: Option<u64>) -> Option<JoinHandle<()>> {
        match self.login(None, Duration::ZERO, uptime).await {
            LoginResult::Accepted => Some(self.serve(pong)),
            _ => None,
        }
    }
}

/// A Cdr event with every standard field, as `cdr_manager` writes it.
pub fn cdr_event(unique_id: &str, caller_id: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(b"Event: Cdr\r\nPrivilege: cdr,all\r\nAccountCode: \r\nSource: 1001\r\nDestination: 2001\r\nDestinationContext: internal\r\nCallerID: ");
    v.extend_from_slice(caller_id);
    v.extend_from_slice(b"\r\nChannel: PJSIP/1001-00000001\r\nDestinationChannel: PJSIP/2001-00000002\r\nLastApplication: Dial\r\nLastData: PJSIP/2001,20\r\nStartTime: 2026-11-22 10:07:06\r\nAnswerTime: 2026-11-22 10:07:07\r\nEndTime: 2026-11-22 10:07:10\r\nDuration: 4\r\nBillableSeconds: 3\r\nDisposition: ANSWERED\r\nAMAFlags: DOCUMENTATION\r\nUniqueID: ");
    v.extend_from_slice(unique_id.as_bytes());
    v.extend_from_slice(b"\r\nUserField: \r\n\r\n");
    v
}

/// Path of a fixture file.
pub fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ami")
        .join(name)
}

/// The `Event: Shutdown` message exactly as Asterisk 22 sent it (`restart.bin`).
pub fn captured_shutdown_event() -> Vec<u8> {
    let bytes = std::fs::read(fixture("restart.bin")).unwrap();
    let mut dec = Decoder::default();
    let mut buf = BytesMut::from(&bytes[..]);
    while let Some(f) = dec.decode(&mut buf) {
        if let Frame::Message(m) = f {
            if m.is_event("Shutdown") {
                return m.raw().to_vec();
            }
        }
    }
    panic!("restart.bin has no Shutdown event");
}
