//! The tokio adapter for one PBX link: owns the TCP socket, feeds the pure codec and session,
//! carries out what they decide, and reconnects forever with the pacing of `ami::backoff`.
//!
//! This is the only AMI code that does I/O. It must never wait on anything but the socket and
//! its timers: Cdrs go to [`RecordSink::record`], which never blocks, because Asterisk drops a
//! client that leaves its writes stalled for 100 ms (`writetimeout`), discarding queued events.
//! Protocol decisions (what to send, when a link is dead, which messages are records) live in
//! `ami::session`; pacing lives in `ami::backoff`. There is no periodic tick: the one timer
//! is armed for the session's next deadline (ping, pong, login), so an idle link wakes a few
//! times a minute for its keep-alive and nothing else.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::ami::backoff::{Backoff, BackoffConfig};
use crate::ami::codec::{AmiMessage, Decoder, Limits};
use crate::ami::pause::JournalPause;
use crate::ami::session::{Output, Session, SessionConfig};
use crate::clock::{Clock, Mono};
use crate::config::PbxConfig;
use crate::record::CallRecord;
use crate::sink::{DownKind, LinkEvent, RecordSink};

/// Everything one link needs; built from a `[[pbx]]` table with [`LinkConfig::from_pbx`].
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// The configured PBX name (for the sink and logs).
    pub pbx: String,
    /// `host:port` to connect to.
    pub addr: String,
    pub session: SessionConfig,
    pub connect_timeout: Duration,
    pub limits: Limits,
    pub backoff: BackoffConfig,
    /// Every socket write must finish within this.
    pub write_timeout: Duration,
    /// On shutdown or a config change, how long to wait for the `Logoff` reply (reading the
    /// Cdrs still on their way meanwhile) before closing anyway.
    pub logoff_timeout: Duration,
}

impl LinkConfig {
    pub fn from_pbx(p: &PbxConfig) -> Self {
        let addr = if p.host.contains(':') && !p.host.starts_with('[') {
            format!("[{}]:{}", p.host, p.port) // bare IPv6 literal
        } else {
            format!("{}:{}", p.host, p.port)
        };
        let mut session = SessionConfig::new(p.username.clone(), p.secret.clone(), p.auth);
        session.ping_interval = p.ping_interval;
        session.ping_timeout = p.ping_timeout;
        session.banner_timeout = p.login_timeout;
        session.login_timeout = p.login_timeout;
        let backoff = BackoffConfig {
            quick_interval: p.reconnect_quick,
            quick_retries: p.reconnect_quick_retries,
            ..BackoffConfig::default()
        };
        LinkConfig {
            pbx: p.name.clone(),
            addr,
            session,
            connect_timeout: p.connect_timeout,
            limits: Limits::default(),
            backoff,
            write_timeout: Duration::from_secs(5),
            logoff_timeout: Duration::from_secs(1),
        }
    }
}

/// Turns a decoded `Event: Cdr` and its box arrival time (Unix seconds) into a record.
pub type ToRecord = Arc<dyn Fn(&AmiMessage, i64) -> CallRecord + Send + Sync>;

const READ_CHUNK: usize = 16 * 1024;
/// A log line per this much time spent waiting for the journal (`pause`).
const PAUSE_REPORT: Duration = Duration::from_secs(5);
// The link never waits on a failing journal (issue 10 item 5): Asterisk drops a manager session
// whose write blocks longer than `writetimeout` (100 ms by default), and a paused reader lets
// the kernel's window close on it. The journal makes each record durable in its ring on
// arrival; what it cannot hold while storage fails is counted and ledgered there. The one wait
// is `pause`: at most a second while storage works but a blast outruns the ring thread.

/// How one connection ended.
enum End {
    Shutdown,
    Down { reason: String, kind: DownKind },
}

/// Runs one PBX link until `shutdown` becomes true (or its sender is dropped): connect, log in,
/// deliver every Cdr to `sink`, reconnect after any failure with backoff.
pub async fn run_link(
    cfg: LinkConfig,
    sink: Arc<dyn RecordSink>,
    to_record: ToRecord,
    clock: Clock,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut link = Link {
        session: Session::new(cfg.session.clone()),
        backoff: Backoff::new(cfg.backoff.clone(), fastrand::Rng::new()),
        attempt: 0,
        cfg,
        sink,
        to_record,
        clock,
    };
    loop {
        if *shutdown.borrow() {
            return;
        }
        link.attempt += 1;
        link.event(LinkEvent::Connecting {
            attempt: link.attempt,
        });
        match link.connect_and_serve(&mut shutdown).await {
            End::Shutdown => {
                link.event(LinkEvent::Down {
                    reason: format!(
                        "link to PBX {} logged off: cdrbox is stopping or its settings changed",
                        link.cfg.addr
                    ),
                    kind: DownKind::Transient,
                });
                return;
            }
            End::Down { reason, kind } => {
                let now = link.clock.now();
                tracing::warn!(target: "cdrbox::ami", pbx = %link.cfg.pbx, ?kind, "{reason}");
                let logged_in_for = link.session.take_logged_in_for(now);
                link.event(LinkEvent::Down { reason, kind });
                let retry = link.backoff.next_delay(kind, logged_in_for, now);
                tracing::debug!(target: "cdrbox::ami", pbx = %link.cfg.pbx, delay = ?retry.delay, lane = ?retry.lane, "reconnecting");
                // An immediate reconnect must not even wait for the timer wheel's next
                // millisecond: every instant without a session is calls lost.
                if !retry.delay.is_zero()
                    && !sleep_unless_shutdown(&link.clock, retry.delay, &mut shutdown).await
                {
                    return;
                }
            }
        }
    }
}

/// Sleeps `d`; false when shutdown was requested meanwhile.
async fn sleep_unless_shutdown(
    clock: &Clock,
    d: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        _ = clock.sleep(d) => !*shutdown.borrow(),
        _ = wait_shutdown(shutdown) => false,
    }
}

/// Resolves once shutdown is requested or its sender is gone.
async fn wait_shutdown(shutdown: &mut watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// TCP keepalive (30 s idle, 10 s interval, 3 probes) and `TCP_USER_TIMEOUT` catch a dead peer
/// even when AMI is idle between pings; NODELAY because actions are tiny and latency-bound.
fn tune_socket(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let sock = SockRef::from(stream);
    let ka = TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10));
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "macos"))]
    let ka = ka.with_retries(3);
    sock.set_tcp_keepalive(&ka)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    sock.set_tcp_user_timeout(Some(Duration::from_secs(30)))?;
    Ok(())
}

struct Link {
    cfg: LinkConfig,
    session: Session,
    backoff: Backoff,
    /// Attempts since the link was last up.
    attempt: u64,
    sink: Arc<dyn RecordSink>,
    to_record: ToRecord,
    clock: Clock,
}

enum Wake {
    Shutdown,
    Read(io::Result<usize>),
    /// Not reading for a moment: the journal is behind a burst ([`super::pause`]).
    Paused,
    /// The session's next deadline passed.
    Deadline,
}

/// Sleeps until `at` on `clock`, or forever when nothing is due.
async fn sleep_until_deadline(clock: &Clock, at: Option<Mono>) {
    match at {
        Some(at) => clock.sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Link {
    fn event(&self, e: LinkEvent) {
        self.sink.link_event(&self.cfg.pbx, self.clock.unix(), e);
    }

    async fn connect_and_serve(&mut self, shutdown: &mut watch::Receiver<bool>) -> End {
        let addr = self.cfg.addr.clone();
        let connect = tokio::time::timeout(self.cfg.connect_timeout, TcpStream::connect(&addr));
        let stream = tokio::select! {
            r = connect => r,
            _ = wait_shutdown(shutdown) => return End::Shutdown,
        };
        let mut stream = match stream {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return End::Down {
                    reason: format!(
                        "cannot connect to PBX {addr}: {e}; check [[pbx]] host/port, that Asterisk \
                         runs with manager.conf enabled = yes, and the firewall"
                    ),
                    kind: DownKind::Transient,
                }
            }
            Err(_) => {
                return End::Down {
                    reason: format!(
                        "PBX {addr} did not accept a connection within {} ms: check [[pbx]] host \
                         and the network",
                        self.cfg.connect_timeout.as_millis()
                    ),
                    kind: DownKind::Transient,
                }
            }
        };
        if let Err(e) = tune_socket(&stream) {
            // Not fatal: AMI Ping still detects dead links.
            tracing::warn!(target: "cdrbox::ami", pbx = %self.cfg.pbx, "cannot set TCP keepalive options: {e}");
        }

        let mut decoder = Decoder::new(self.cfg.limits);
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let outs = self.session.on_connected(self.clock.now());
        if let Some(end) = self.apply(&mut stream, outs).await {
            return end;
        }

        let mut pause = JournalPause::default();
        loop {
            // Frames already read are handed over first, one by one while the journal keeps
            // up; when it falls behind, the rest wait in `buf` (at most one read) while the link
            // pauses, so a pause holds back every byte, not just the next read.
            if pause.wait(self.sink.behind(), self.clock.now()).is_none() {
                while let Some(frame) = decoder.decode(&mut buf) {
                    let outs = self.session.on_frame(frame, self.clock.now());
                    if let Some(end) = self.apply(&mut stream, outs).await {
                        return end;
                    }
                    if pause.wait(self.sink.behind(), self.clock.now()).is_some() {
                        break;
                    }
                }
            }
            buf.reserve(READ_CHUNK);
            let deadline = self.session.next_deadline();
            let wait = pause.wait(self.sink.behind(), self.clock.now());
            let wake = match wait {
                None => tokio::select! {
                    biased;
                    _ = wait_shutdown(shutdown) => Wake::Shutdown,
                    r = stream.read_buf(&mut buf) => Wake::Read(r),
                    _ = sleep_until_deadline(&self.clock, deadline) => Wake::Deadline,
                },
                Some(until) => tokio::select! {
                    biased;
                    _ = wait_shutdown(shutdown) => Wake::Shutdown,
                    _ = sleep_until_deadline(&self.clock, deadline) => Wake::Deadline,
                    _ = self.clock.sleep_until(until) => Wake::Paused,
                },
            };
            if !matches!(wake, Wake::Paused) && pause.paused_total() >= PAUSE_REPORT {
                let paused_ms = pause.take_paused_total().as_millis() as u64;
                tracing::info!(target: "cdrbox::ami", pbx = %self.cfg.pbx, paused_ms,
                    "the link waited for the journal to catch up with a burst");
            }
            match wake {
                // What was read is decoded at the top of the loop.
                Wake::Paused | Wake::Read(Ok(1..)) => {}
                Wake::Shutdown => {
                    self.logoff(&mut stream, &mut decoder, &mut buf).await;
                    return End::Shutdown;
                }
                Wake::Read(Ok(0)) => {
                    let now = self.clock.now();
                    let mut outs = Vec::new();
                    while let Some(frame) = decoder.decode_eof(&mut buf) {
                        outs.extend(self.session.on_frame(frame, now));
                    }
                    outs.extend(self.session.on_eof(now));
                    if let Some(end) = self.apply(&mut stream, outs).await {
                        return end;
                    }
                    return self.down_unexpected("the connection ended");
                }
                Wake::Read(Err(e)) => {
                    // Complete frames still waiting in the buffer (a pause) are handed over; a
                    // partial one is dropped with the buffer.
                    let now = self.clock.now();
                    while let Some(frame) = decoder.decode(&mut buf) {
                        let outs = self.session.on_frame(frame, now);
                        if let Some(end) = self.apply(&mut stream, outs).await {
                            return end;
                        }
                    }
                    return End::Down {
                        reason: format!(
                            "connection to PBX {addr} failed: {e}; reconnecting (check the network \
                             if this repeats)"
                        ),
                        kind: DownKind::Transient,
                    };
                }
                Wake::Deadline => {
                    let outs = self.session.on_tick(self.clock.now());
                    if let Some(end) = self.apply(&mut stream, outs).await {
                        return end;
                    }
                }
            }
        }
    }

    fn down_unexpected(&self, what: &str) -> End {
        End::Down {
            reason: format!("PBX {}: {what}", self.cfg.addr),
            kind: DownKind::Transient,
        }
    }

    /// Carries out session outputs; `Some` when the connection must end.
    async fn apply(&mut self, stream: &mut TcpStream, outs: Vec<Output>) -> Option<End> {
        for out in outs {
            match out {
                Output::Send(bytes) => {
                    match tokio::time::timeout(self.cfg.write_timeout, stream.write_all(&bytes))
                        .await
                    {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            return Some(End::Down {
                                reason: format!(
                                    "cannot write to PBX {}: {e}; reconnecting",
                                    self.cfg.addr
                                ),
                                kind: DownKind::Transient,
                            })
                        }
                        Err(_) => {
                            return Some(End::Down {
                                reason: format!(
                                    "PBX {} stopped accepting data (a write took over {} ms); reconnecting",
                                    self.cfg.addr,
                                    self.cfg.write_timeout.as_millis()
                                ),
                                kind: DownKind::Transient,
                            })
                        }
                    }
                }
                Output::Cdr(msg) => {
                    let record = (self.to_record)(&msg, self.clock.unix());
                    self.sink.record(record);
                }
                Output::LoggedIn {
                    banner,
                    pbx_restarted,
                } => {
                    tracing::info!(target: "cdrbox::ami", pbx = %self.cfg.pbx, pbx_restarted, "logged in");
                    self.attempt = 0;
                    self.event(LinkEvent::Up {
                        banner,
                        pbx_restarted,
                    });
                }
                Output::PbxRestarted => {
                    tracing::info!(target: "cdrbox::ami", pbx = %self.cfg.pbx, "PBX finished booting after a restart");
                    self.event(LinkEvent::Up {
                        banner: self.session.banner().map(str::to_string),
                        pbx_restarted: true,
                    });
                }
                Output::LoggedOff => {
                    tracing::info!(target: "cdrbox::ami", pbx = %self.cfg.pbx, "logged off");
                }
                Output::ShutdownNoticed { restart } => {
                    tracing::info!(target: "cdrbox::ami", pbx = %self.cfg.pbx, restart, "PBX announced shutdown; reading until it closes");
                }
                Output::Discarded { bytes } => {
                    tracing::warn!(target: "cdrbox::ami", pbx = %self.cfg.pbx, bytes, "discarded malformed or oversized AMI data");
                    self.event(LinkEvent::Discarded { bytes });
                }
                Output::PbxClock {
                    pbx_unix_us,
                    round_trip,
                } => {
                    // The PBX read its clock about half the round trip before the pong arrived.
                    let half = i64::try_from(round_trip.as_micros() / 2).unwrap_or(i64::MAX);
                    let box_us = crate::clock::unix_millis(self.clock.wall()).saturating_mul(1000);
                    let skew_ms = pbx_unix_us.saturating_add(half).saturating_sub(box_us) / 1000;
                    self.event(LinkEvent::PbxClock { skew_ms });
                }
                Output::Close(reason) => {
                    return Some(End::Down {
                        reason: reason.describe(&self.cfg.addr, &self.session.config().username),
                        kind: reason.kind(),
                    });
                }
            }
        }
        None
    }

    /// Best-effort `Logoff`, then read what is already on its way (Cdrs included) until the
    /// PBX says Goodbye, closes, or `logoff_timeout` passes. A new session for the same user
    /// may log in only after this returns (`allowmultiplelogin = no` would refuse it).
    async fn logoff(&mut self, stream: &mut TcpStream, decoder: &mut Decoder, buf: &mut BytesMut) {
        // Frames held back by a pause go first.
        let mut outs = Vec::new();
        while let Some(frame) = decoder.decode(buf) {
            outs.extend(self.session.on_frame(frame, self.clock.now()));
        }
        outs.extend(self.session.logoff(self.clock.now()));
        let deadline = self.clock.now() + self.cfg.logoff_timeout;
        if self.apply(stream, outs).await.is_some() {
            return;
        }
        loop {
            buf.reserve(READ_CHUNK);
            let r = tokio::select! {
                r = stream.read_buf(buf) => Some(r),
                _ = self.clock.sleep_until(deadline) => None,
            };
            let now = self.clock.now();
            let mut outs = Vec::new();
            match r {
                Some(Ok(n)) if n > 0 => {
                    while let Some(frame) = decoder.decode(buf) {
                        outs.extend(self.session.on_frame(frame, now));
                    }
                }
                Some(Ok(_)) => {
                    while let Some(frame) = decoder.decode_eof(buf) {
                        outs.extend(self.session.on_frame(frame, now));
                    }
                    outs.extend(self.session.on_eof(now));
                }
                _ => return,
            }
            // Only records and counters matter now; Goodbye or a close ends the wait.
            let closing = outs
                .iter()
                .any(|o| matches!(o, Output::Close(_) | Output::LoggedOff));
            let keep: Vec<_> = outs
                .into_iter()
                .filter(|o| matches!(o, Output::Cdr(_) | Output::Discarded { .. }))
                .collect();
            let _ = self.apply(stream, keep).await;
            if closing {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthMethod, Secret};

    fn pbx(host: &str) -> PbxConfig {
        PbxConfig {
            name: "office".into(),
            host: host.into(),
            port: 5038,
            username: "logger".into(),
            secret: Secret("s3cret".into()),
            auth: AuthMethod::Md5,
            timezone: "Europe/Moscow".into(),
            charset: "windows-1251".into(),
            trunk_patterns: Vec::new(),
            ping_interval: Duration::from_secs(15),
            ping_timeout: Duration::from_secs(7),
            connect_timeout: Duration::from_secs(4),
            login_timeout: Duration::from_secs(9),
            reconnect_quick: Duration::from_millis(700),
            reconnect_quick_retries: 3,
            enabled: true,
            cdr_db: None,
            cdr_db_table: "cdr".into(),
            cdr_db_lookback: Duration::from_secs(6 * 3600),
            cdr_db_reconcile_every: Duration::from_secs(3600),
            cdr_db_reconcile_window: Duration::from_secs(24 * 3600),
            cdr_db_settle: Duration::from_secs(120),
        }
    }

    #[test]
    fn from_pbx_copies_the_settings() {
        let c = LinkConfig::from_pbx(&pbx("10.0.0.5"));
        assert_eq!(c.pbx, "office");
        assert_eq!(c.addr, "10.0.0.5:5038");
        assert_eq!(c.session.username, "logger");
        assert_eq!(c.session.auth, AuthMethod::Md5);
        assert_eq!(c.session.events, "cdr,system");
        assert_eq!(c.session.ping_interval, Duration::from_secs(15));
        assert_eq!(c.session.ping_timeout, Duration::from_secs(7));
        assert_eq!(c.session.login_timeout, Duration::from_secs(9));
        assert_eq!(c.connect_timeout, Duration::from_secs(4));
        assert_eq!(c.backoff.quick_interval, Duration::from_millis(700));
        assert_eq!(c.backoff.quick_retries, 3);
        assert!(!format!("{c:?}").contains("s3cret"), "secret redacted");
    }

    #[test]
    fn ipv6_literal_is_bracketed() {
        assert_eq!(LinkConfig::from_pbx(&pbx("fd00::5")).addr, "[fd00::5]:5038");
        assert_eq!(LinkConfig::from_pbx(&pbx("pbx.lan")).addr, "pbx.lan:5038");
    }
}
