//! The AMI session as a pure state machine: login (plain or MD5), keep-alive, time-outs,
//! restart detection and which messages are call records. No sockets, no tokio, no clock reads.
//!
//! The adapter (`ami::client`) feeds it what happened — a connection was made, a frame was
//! decoded, time passed, the peer closed — each with an injected `now`, and carries out the
//! [`Output`]s it answers with (send bytes, store a Cdr, report the link up, close). Because time
//! is a parameter, every time-out here is unit-tested without sleeping.
//!
//! Protocol facts this relies on are in `tests/fixtures/ami/README.md` ("Login behaviour",
//! "Shutdown/restart") and Asterisk's `main/manager.c` (`action_login`, `authenticate`):
//! - responses are matched to our actions **only** by `ActionID`; events may arrive between an
//!   action and its response, and a response with an ActionID we did not send (or no longer wait
//!   for) is ignored;
//! - `Authentication failed` and `Login Already In Use` come about 1 s late and the server then
//!   closes; `Permission denied` for a stray action is not fatal;
//! - Cdr events may still follow `Event: Shutdown`, so Shutdown is noted, never acted on: the
//!   session ends at EOF;
//! - `Event: FullyBooted` (sent right after Login when we read `system`) carries `Uptime:`; a boot
//!   later than the one seen before means the PBX restarted, and CDRs of calls that were up at
//!   that moment may be missing.

use std::fmt;
use std::time::Duration;

use md5::{Digest, Md5};

use crate::ami::codec::{encode_action, AmiMessage, Frame};
use crate::clock::Mono;
use crate::config::{AuthMethod, Secret};
use crate::sink::DownKind;

/// What a session needs to know; durations are configurable so tests can use milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub username: String,
    /// Redacted in `Debug`.
    pub secret: Secret,
    pub auth: AuthMethod,
    /// The `Events:` login header: the classes we want (`cdr,system`).
    pub events: String,
    /// Send `Ping` this long after the previous pong (or the login).
    pub ping_interval: Duration,
    /// A `Ping` unanswered for this long means the link is dead.
    pub ping_timeout: Duration,
    /// The banner must arrive this long after the TCP connect.
    pub banner_timeout: Duration,
    /// Banner, challenge and login response together must take no longer than this.
    pub login_timeout: Duration,
    /// After `Authentication accepted`, how long to wait for `Event: FullyBooted` (which
    /// Asterisk writes right behind the response) before reporting the link up without it.
    pub boot_grace: Duration,
}

impl SessionConfig {
    /// A config with the production defaults for everything but the credentials.
    pub fn new(username: impl Into<String>, secret: Secret, auth: AuthMethod) -> Self {
        SessionConfig {
            username: username.into(),
            secret,
            auth,
            events: "cdr,system".to_string(),
            ping_interval: Duration::from_secs(20),
            ping_timeout: Duration::from_secs(10),
            banner_timeout: Duration::from_secs(10),
            login_timeout: Duration::from_secs(10),
            boot_grace: Duration::from_millis(500),
        }
    }
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No connection (before the first `on_connected`).
    Disconnected,
    /// Connected, waiting for `Asterisk Call Manager/…`.
    AwaitingBanner,
    /// `Action: Challenge` sent (MD5 login).
    Challenging,
    /// `Action: Login` sent.
    LoggingIn,
    /// Authenticated; Cdr events flow.
    LoggedIn,
    /// A `Close` was emitted (or EOF seen); the adapter must drop the socket.
    Closed,
}

/// What the adapter must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write these bytes to the socket (a whole action).
    Send(Vec<u8>),
    /// Login complete. `pbx_restarted` is true when FullyBooted showed a boot later than the
    /// one seen on an earlier connection.
    LoggedIn {
        banner: Option<String>,
        pbx_restarted: bool,
    },
    /// A FullyBooted arriving after `LoggedIn` was reported shows that the PBX restarted.
    PbxRestarted,
    /// `Event: Shutdown` seen; the session keeps reading (Cdrs may follow) until EOF.
    ShutdownNoticed { restart: bool },
    /// The PBX answered our `Logoff` (`Response: Goodbye`); it closes right after and sends
    /// nothing more, so the adapter may close at once.
    LoggedOff,
    /// A complete `Event: Cdr`, exactly as received.
    Cdr(AmiMessage),
    /// The codec threw bytes away while resynchronising; count them, carry on.
    Discarded { bytes: usize },
    /// A pong carried the PBX's wall clock (`Timestamp: 1795331221.819198`, Asterisk ≥ 1.6):
    /// its reading in microseconds since the Unix epoch and the Ping's round trip, so the
    /// adapter can compare it with the box's clock (half the round trip after the reading).
    PbxClock {
        pbx_unix_us: i64,
        round_trip: Duration,
    },
    /// The link is over: drop the socket and reconnect after the backoff.
    Close(CloseReason),
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// No banner within `banner_timeout` (wrong port, or not an Asterisk manager).
    BannerTimeout(Duration),
    /// The challenge or login was not answered within `login_timeout`.
    LoginTimeout(Duration),
    /// `Authentication failed` (or another refusal of our login); the server's message.
    AuthFailed(String),
    /// `Login Already In Use`: `allowmultiplelogin = no` and another session (maybe our own
    /// ghost) holds the user.
    LoginInUse,
    /// `Asterisk is shutting down` in answer to our login.
    ShuttingDown,
    /// A `Ping` went unanswered for `ping_timeout` (half-open link or hung PBX).
    PingTimeout(Duration),
    /// The peer closed the connection.
    Eof {
        during_login: bool,
        after_shutdown: bool,
    },
    /// The peer answered something we cannot work with.
    Protocol(String),
}

fn human(d: &Duration) -> String {
    if d.as_millis() < 1000 || d.subsec_millis() != 0 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} s", d.as_secs())
    }
}

impl CloseReason {
    /// The category used for alarms and retry pacing.
    pub fn kind(&self) -> DownKind {
        match self {
            CloseReason::AuthFailed(_) => DownKind::AuthFailed,
            CloseReason::LoginInUse => DownKind::LoginInUse,
            CloseReason::ShuttingDown => DownKind::PbxShutdown,
            CloseReason::Eof {
                after_shutdown: true,
                ..
            } => DownKind::PbxShutdown,
            _ => DownKind::Transient,
        }
    }

    /// A sentence for the status page naming the PBX address and what to fix.
    pub fn describe(&self, addr: &str, username: &str) -> String {
        match self {
            CloseReason::BannerTimeout(t) => format!(
                "PBX {addr} accepted the connection but sent no AMI banner within {}: check that \
                 [[pbx]] port is the Asterisk manager port (usually 5038) and manager.conf has enabled = yes",
                human(t)
            ),
            CloseReason::LoginTimeout(t) => format!(
                "PBX {addr} did not answer the login within {}: the PBX may be overloaded; check \
                 the network and [[pbx]] login_timeout",
                human(t)
            ),
            CloseReason::AuthFailed(msg) => format!(
                "PBX {addr} rejected username '{username}' ({msg}): check [[pbx]] username/secret \
                 (and auth) and the [{username}] section, secret and permit/deny in manager.conf"
            ),
            CloseReason::LoginInUse => format!(
                "PBX {addr} refused the login: '{username}' is already logged in elsewhere (Login \
                 Already In Use): set allowmultiplelogin = yes in manager.conf or stop the other client"
            ),
            CloseReason::ShuttingDown => {
                format!("PBX {addr} is shutting down; reconnecting until it is back")
            }
            CloseReason::PingTimeout(t) => format!(
                "PBX {addr} stopped answering keep-alive pings for {}: the network or the PBX is down; reconnecting",
                human(t)
            ),
            CloseReason::Eof {
                after_shutdown: true,
                ..
            } => format!("PBX {addr} shut down or restarted (Event: Shutdown, then it closed the connection); reconnecting"),
            CloseReason::Eof {
                during_login: true,
                ..
            } => format!(
                "PBX {addr} closed the connection during login: check manager.conf permit/deny \
                 for this box's address, and [[pbx]] host/port"
            ),
            CloseReason::Eof { .. } => format!(
                "PBX {addr} closed the connection; reconnecting (check the Asterisk log if this repeats)"
            ),
            CloseReason::Protocol(msg) => {
                format!("PBX {addr} sent something cdrbox cannot use: {msg}")
            }
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::BannerTimeout(t) => write!(f, "no AMI banner within {}", human(t)),
            CloseReason::LoginTimeout(t) => write!(f, "login not answered within {}", human(t)),
            CloseReason::AuthFailed(m) => write!(f, "login rejected: {m}"),
            CloseReason::LoginInUse => f.write_str("Login Already In Use"),
            CloseReason::ShuttingDown => f.write_str("Asterisk is shutting down"),
            CloseReason::PingTimeout(t) => write!(f, "no reply to Ping within {}", human(t)),
            CloseReason::Eof {
                during_login,
                after_shutdown,
            } => write!(
                f,
                "connection closed by the PBX{}{}",
                if *during_login { " during login" } else { "" },
                if *after_shutdown {
                    " after Event: Shutdown"
                } else {
                    ""
                }
            ),
            CloseReason::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

/// Remembers when the PBX booted, across connections, to detect restarts.
///
/// Kept as "uptime U was seen at instant T" rather than "booted at T − U", so an uptime longer
/// than the box's own monotonic clock never underflows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootTracker {
    last: Option<(Mono, Duration)>,
}

impl BootTracker {
    /// Slack for whole-second uptimes and network latency.
    const TOLERANCE: Duration = Duration::from_secs(2);

    /// Records a FullyBooted `Uptime`; true when it shows a boot later than the last one seen.
    pub fn observe(&mut self, now: Mono, uptime: Duration) -> bool {
        let restarted = match self.last {
            Some((seen, up)) => {
                let expected = up + now.saturating_duration_since(seen);
                uptime + Self::TOLERANCE < expected
            }
            None => false,
        };
        self.last = Some((now, uptime));
        restarted
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Challenge,
    Login,
    Ping,
    Logoff,
}

/// One PBX's AMI session. Lives across reconnects (so it can number connections and remember
/// the PBX's boot time); [`Session::on_connected`] starts each new connection afresh.
#[derive(Debug, Clone)]
pub struct Session {
    cfg: SessionConfig,
    state: State,
    conn: u64,
    next_action: u64,
    pending: Vec<(String, Pending)>,
    connected_at: Option<Mono>,
    banner: Option<String>,
    logged_in_at: Option<Mono>,
    /// Report `LoggedIn` at this instant unless FullyBooted comes first.
    announce_at: Option<Mono>,
    next_ping: Option<Mono>,
    /// ActionID and deadline of the Ping in flight.
    ping_in_flight: Option<(String, Mono)>,
    shutdown_seen: bool,
    boot: BootTracker,
}

impl Session {
    pub fn new(cfg: SessionConfig) -> Self {
        Session {
            cfg,
            state: State::Disconnected,
            conn: 0,
            next_action: 0,
            pending: Vec::new(),
            connected_at: None,
            banner: None,
            logged_in_at: None,
            announce_at: None,
            next_ping: None,
            ping_in_flight: None,
            shutdown_seen: false,
            boot: BootTracker::default(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// How many connections this session has started.
    pub fn connections(&self) -> u64 {
        self.conn
    }

    /// The banner line of the current connection, once received.
    pub fn banner(&self) -> Option<&str> {
        self.banner.as_deref()
    }

    /// How long the current (or just closed) connection has been logged in; `None` if it never
    /// logged in. The backoff re-arms its quick lane only after a stable logged-in period.
    pub fn logged_in_for(&self, now: Mono) -> Option<Duration> {
        self.logged_in_at.map(|t| now.saturating_duration_since(t))
    }

    /// [`Session::logged_in_for`], once per connection: the adapter asks when a connection
    /// ended, and a later failed TCP connect (no `on_connected`) must not see the old login
    /// again — that would count as another stable session on every refused connect.
    pub fn take_logged_in_for(&mut self, now: Mono) -> Option<Duration> {
        let d = self.logged_in_for(now);
        self.logged_in_at = None;
        d
    }

    /// The next instant [`Session::on_tick`] has something to do: a banner or login time-out,
    /// the FullyBooted grace, the next Ping or the deadline of the one in flight. `None` while
    /// nothing is due (no connection, or closed). The adapter sleeps until then instead of
    /// ticking, so an idle link wakes only for its keep-alive.
    pub fn next_deadline(&self) -> Option<Mono> {
        let connected = self.connected_at?;
        match self.state {
            State::Disconnected | State::Closed => None,
            State::AwaitingBanner => Some(connected + self.cfg.banner_timeout),
            State::Challenging | State::LoggingIn => Some(connected + self.cfg.login_timeout),
            State::LoggedIn => {
                let keepalive = match &self.ping_in_flight {
                    Some((_, deadline)) => Some(*deadline),
                    None => self.next_ping,
                };
                [keepalive, self.announce_at].into_iter().flatten().min()
            }
        }
    }

    /// True once `Event: Shutdown` was seen on this connection.
    pub fn shutdown_seen(&self) -> bool {
        self.shutdown_seen
    }

    /// A TCP connection was established: wait for the banner.
    pub fn on_connected(&mut self, now: Mono) -> Vec<Output> {
        self.conn += 1;
        self.next_action = 0;
        self.state = State::AwaitingBanner;
        self.pending.clear();
        self.connected_at = Some(now);
        self.banner = None;
        self.logged_in_at = None;
        self.announce_at = None;
        self.next_ping = None;
        self.ping_in_flight = None;
        self.shutdown_seen = false;
        Vec::new()
    }

    /// A frame was decoded from the stream.
    pub fn on_frame(&mut self, frame: Frame, now: Mono) -> Vec<Output> {
        let mut out = Vec::new();
        if matches!(self.state, State::Disconnected | State::Closed) {
            return out;
        }
        match frame {
            Frame::Discarded { bytes, .. } => out.push(Output::Discarded { bytes }),
            Frame::Banner(b) => {
                if self.state == State::AwaitingBanner {
                    self.banner = Some(String::from_utf8_lossy(&b).into_owned());
                    self.start_login(&mut out);
                }
            }
            Frame::Message(m) => {
                if self.announce_at.is_some() && !m.is_event("FullyBooted") {
                    self.announce(false, &mut out);
                }
                if m.response().is_some() {
                    self.on_response(&m, now, &mut out);
                } else if m.event().is_some() {
                    self.on_event(m, now, &mut out);
                }
            }
        }
        out
    }

    /// Time passed: fire time-outs and keep-alives.
    pub fn on_tick(&mut self, now: Mono) -> Vec<Output> {
        let mut out = Vec::new();
        let since_connect = self
            .connected_at
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or_default();
        match self.state {
            State::Disconnected | State::Closed => {}
            State::AwaitingBanner => {
                if since_connect >= self.cfg.banner_timeout {
                    self.close(
                        CloseReason::BannerTimeout(self.cfg.banner_timeout),
                        &mut out,
                    );
                }
            }
            State::Challenging | State::LoggingIn => {
                if since_connect >= self.cfg.login_timeout {
                    self.close(CloseReason::LoginTimeout(self.cfg.login_timeout), &mut out);
                }
            }
            State::LoggedIn => {
                if self.announce_at.is_some_and(|t| now >= t) {
                    self.announce(false, &mut out);
                }
                if let Some((_, deadline)) = &self.ping_in_flight {
                    if now >= *deadline {
                        self.close(CloseReason::PingTimeout(self.cfg.ping_timeout), &mut out);
                    }
                } else if self.next_ping.is_some_and(|t| now >= t) {
                    let id = self.action_id();
                    out.push(Output::Send(encode_action(&[
                        ("Action", "Ping"),
                        ("ActionID", &id),
                    ])));
                    self.pending.push((id.clone(), Pending::Ping));
                    self.ping_in_flight = Some((id, now + self.cfg.ping_timeout));
                    self.next_ping = None;
                }
            }
        }
        out
    }

    /// The peer closed the connection (after the last frames were fed).
    pub fn on_eof(&mut self, _now: Mono) -> Vec<Output> {
        let mut out = Vec::new();
        if matches!(self.state, State::Disconnected | State::Closed) {
            return out;
        }
        if self.announce_at.is_some() {
            self.announce(false, &mut out);
        }
        let reason = CloseReason::Eof {
            during_login: self.state != State::LoggedIn,
            after_shutdown: self.shutdown_seen,
        };
        self.close(reason, &mut out);
        out
    }

    /// We are stopping: the `Logoff` action to send, best-effort. The session stays readable
    /// (Cdrs still arriving before the server's close are delivered).
    pub fn logoff(&mut self, _now: Mono) -> Vec<Output> {
        if matches!(self.state, State::Disconnected | State::Closed) {
            return Vec::new();
        }
        let id = self.action_id();
        self.pending.push((id.clone(), Pending::Logoff));
        vec![Output::Send(encode_action(&[
            ("Action", "Logoff"),
            ("ActionID", &id),
        ]))]
    }

    fn action_id(&mut self) -> String {
        self.next_action += 1;
        format!("cdrbox-{}-{}", self.conn, self.next_action)
    }

    fn start_login(&mut self, out: &mut Vec<Output>) {
        match self.cfg.auth {
            AuthMethod::Md5 => {
                let id = self.action_id();
                out.push(Output::Send(encode_action(&[
                    ("Action", "Challenge"),
                    ("ActionID", &id),
                    ("AuthType", "MD5"),
                ])));
                self.pending.push((id, Pending::Challenge));
                self.state = State::Challenging;
            }
            AuthMethod::Plain => {
                let id = self.action_id();
                let secret = self.cfg.secret.0.clone();
                out.push(Output::Send(encode_action(&[
                    ("Action", "Login"),
                    ("ActionID", &id),
                    ("Username", &self.cfg.username),
                    ("Secret", &secret),
                    ("Events", &self.cfg.events),
                ])));
                self.pending.push((id, Pending::Login));
                self.state = State::LoggingIn;
            }
        }
    }

    fn announce(&mut self, pbx_restarted: bool, out: &mut Vec<Output>) {
        self.announce_at = None;
        out.push(Output::LoggedIn {
            banner: self.banner.clone(),
            pbx_restarted,
        });
    }

    fn close(&mut self, reason: CloseReason, out: &mut Vec<Output>) {
        self.state = State::Closed;
        self.pending.clear();
        self.ping_in_flight = None;
        self.next_ping = None;
        self.announce_at = None;
        out.push(Output::Close(reason));
    }

    fn on_response(&mut self, m: &AmiMessage, now: Mono, out: &mut Vec<Output>) {
        let Some(id) = m.action_id() else { return };
        let Some(pos) = self.pending.iter().position(|(p, _)| p.as_bytes() == id) else {
            return; // stale or foreign ActionID
        };
        let (id, what) = self.pending.remove(pos);
        let success = m
            .response()
            .is_some_and(|r| r.eq_ignore_ascii_case(b"Success"));
        let message = m.get_str("Message").unwrap_or_default().into_owned();
        match what {
            Pending::Challenge => {
                let challenge = m.get("Challenge").filter(|c| !c.is_empty());
                match (success, challenge) {
                    (true, Some(challenge)) => {
                        let mut h = Md5::new();
                        h.update(challenge);
                        h.update(self.cfg.secret.0.as_bytes());
                        let key = crate::hex::encode(&h.finalize());
                        let login_id = self.action_id();
                        out.push(Output::Send(encode_action(&[
                            ("Action", "Login"),
                            ("ActionID", &login_id),
                            ("AuthType", "MD5"),
                            ("Username", &self.cfg.username),
                            ("Key", &key),
                            ("Events", &self.cfg.events),
                        ])));
                        self.pending.push((login_id, Pending::Login));
                        self.state = State::LoggingIn;
                    }
                    _ => {
                        let reason = classify_refusal(&message).unwrap_or_else(|| {
                            CloseReason::Protocol(format!(
                                "the MD5 challenge was refused ({message}); set [[pbx]] auth = \"plain\" if this PBX does not support it"
                            ))
                        });
                        self.close(reason, out);
                    }
                }
            }
            Pending::Login => {
                if success {
                    self.state = State::LoggedIn;
                    self.logged_in_at = Some(now);
                    self.next_ping = Some(now + self.cfg.ping_interval);
                    if self.cfg.boot_grace.is_zero() {
                        self.announce(false, out);
                    } else {
                        self.announce_at = Some(now + self.cfg.boot_grace);
                    }
                } else {
                    let reason = classify_refusal(&message).unwrap_or_else(|| {
                        CloseReason::AuthFailed(if message.is_empty() {
                            "login refused".to_string()
                        } else {
                            message
                        })
                    });
                    self.close(reason, out);
                }
            }
            Pending::Ping => {
                // Any Response with our ActionID is a pong: `Success` + `Ping: Pong`, the legacy
                // `Response: Pong`, or even an error — the PBX is alive and reading.
                if let Some((_, deadline)) = self.ping_in_flight.take_if(|(p, _)| *p == id) {
                    self.next_ping = Some(now + self.cfg.ping_interval);
                    let sent = deadline - self.cfg.ping_timeout;
                    if let Some(pbx_unix_us) =
                        m.get_str("Timestamp").and_then(|t| parse_timestamp(&t))
                    {
                        out.push(Output::PbxClock {
                            pbx_unix_us,
                            round_trip: now - sent,
                        });
                    }
                }
            }
            Pending::Logoff => out.push(Output::LoggedOff),
        }
    }

    fn on_event(&mut self, m: AmiMessage, now: Mono, out: &mut Vec<Output>) {
        if m.is_event("Cdr") {
            // Asterisk sends events only to authenticated sessions; anything earlier is not ours.
            if self.state == State::LoggedIn {
                out.push(Output::Cdr(m));
            }
        } else if m.is_event("FullyBooted") {
            let uptime = m
                .get_str("Uptime")
                .and_then(|u| u.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let restarted = uptime.is_some_and(|u| self.boot.observe(now, u));
            if self.announce_at.is_some() {
                self.announce(restarted, out);
            } else if restarted && self.state == State::LoggedIn {
                out.push(Output::PbxRestarted);
            }
        } else if m.is_event("Shutdown") {
            self.shutdown_seen = true;
            let restart = m
                .get("Restart")
                .is_some_and(|r| r.eq_ignore_ascii_case(b"True"));
            out.push(Output::ShutdownNoticed { restart });
        }
    }
}

/// Login refusals that are not a wrong password.
fn classify_refusal(message: &str) -> Option<CloseReason> {
    let lower = message.to_ascii_lowercase();
    if lower.contains("already in use") {
        Some(CloseReason::LoginInUse)
    } else if lower.contains("shutting down") {
        Some(CloseReason::ShuttingDown)
    } else if lower.contains("authentication failed") {
        Some(CloseReason::AuthFailed(message.to_string()))
    } else {
        None
    }
}

/// `Timestamp:` of a pong — Unix seconds with up to six decimals, as Asterisk's `ast_tvnow`
/// prints it — in microseconds; `None` for anything else (a hostile or broken PBX is simply
/// not measured).
fn parse_timestamp(t: &str) -> Option<i64> {
    let (secs, frac) = t.trim().split_once('.').unwrap_or((t.trim(), ""));
    if secs.is_empty() || secs.len() > 12 || frac.len() > 9 {
        return None;
    }
    if !secs.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut us = 0i64;
    for (i, d) in frac.bytes().take(6).enumerate() {
        us += i64::from(d - b'0') * 10i64.pow(5 - i as u32);
    }
    secs.checked_mul(1_000_000)?.checked_add(us)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn cfg(auth: AuthMethod) -> SessionConfig {
        SessionConfig {
            ping_interval: Duration::from_secs(20),
            ping_timeout: Duration::from_secs(5),
            banner_timeout: Duration::from_secs(3),
            login_timeout: Duration::from_secs(8),
            boot_grace: Duration::from_millis(500),
            ..SessionConfig::new("logger", Secret("s3cret".into()), auth)
        }
    }

    fn banner() -> Frame {
        Frame::Banner(Bytes::from_static(b"Asterisk Call Manager/11.0.0"))
    }

    fn frame(text: &str) -> Frame {
        Frame::Message(AmiMessage::parse(text.replace('\n', "\r\n").as_bytes()).unwrap())
    }

    fn sent(out: &[Output]) -> Vec<AmiMessage> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send(b) => Some(AmiMessage::parse(b).unwrap()),
                _ => None,
            })
            .collect()
    }

    fn id_of(m: &AmiMessage) -> String {
        m.get_str("ActionID").unwrap().into_owned()
    }

    fn cdrs(out: &[Output]) -> Vec<String> {
        out.iter()
            .filter_map(|o| match o {
                Output::Cdr(m) => Some(m.get_str("UniqueID").unwrap().into_owned()),
                _ => None,
            })
            .collect()
    }

    fn closes(out: &[Output]) -> Vec<CloseReason> {
        out.iter()
            .filter_map(|o| match o {
                Output::Close(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    /// Connects, answers the plain login, and returns the session logged in at `t0`.
    fn logged_in(t0: Mono) -> Session {
        let mut s = Session::new(cfg(AuthMethod::Plain));
        assert!(s.on_connected(t0).is_empty());
        let out = s.on_frame(banner(), t0);
        let login = &sent(&out)[0];
        let id = id_of(login);
        let out = s.on_frame(
            frame(&format!(
                "Response: Success\nActionID: {id}\nMessage: Authentication accepted\n\n"
            )),
            t0,
        );
        assert!(out.is_empty(), "LoggedIn waits for FullyBooted: {out:?}");
        assert_eq!(s.state(), State::LoggedIn);
        s
    }

    fn cdr(uid: &str) -> Frame {
        frame(&format!(
            "Event: Cdr\nPrivilege: cdr,all\nUniqueID: {uid}\nDisposition: ANSWERED\n\n"
        ))
    }

    #[test]
    fn plain_login_sends_credentials_and_events_then_reports_up() {
        let t0 = Mono::ZERO;
        let mut s = Session::new(cfg(AuthMethod::Plain));
        s.on_connected(t0);
        assert_eq!(s.state(), State::AwaitingBanner);
        let out = s.on_frame(banner(), t0);
        let login = &sent(&out)[0];
        assert_eq!(login.get_str("Action").unwrap(), "Login");
        assert_eq!(login.get_str("Username").unwrap(), "logger");
        assert_eq!(login.get_str("Secret").unwrap(), "s3cret");
        assert_eq!(login.get_str("Events").unwrap(), "cdr,system");
        assert_eq!(id_of(login), "cdrbox-1-1");
        let out = s.on_frame(
            frame("Response: Success\nActionID: cdrbox-1-1\nMessage: Authentication accepted\n\n"),
            t0,
        );
        assert!(out.is_empty());
        // No FullyBooted (user without `system`): the link is reported up after the grace.
        assert!(s.on_tick(t0 + Duration::from_millis(100)).is_empty());
        let out = s.on_tick(t0 + Duration::from_millis(500));
        assert_eq!(
            out,
            vec![Output::LoggedIn {
                banner: Some("Asterisk Call Manager/11.0.0".into()),
                pbx_restarted: false
            }]
        );
        assert_eq!(
            s.logged_in_for(t0 + Duration::from_secs(3)),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn md5_login_matches_the_captured_challenge_and_key() {
        // tests/fixtures/ami/meta/login_md5_challenge.json: challenge 213960544, secret s3cret.
        let t0 = Mono::ZERO;
        let mut s = Session::new(cfg(AuthMethod::Md5));
        s.on_connected(t0);
        let out = s.on_frame(banner(), t0);
        let chal = &sent(&out)[0];
        assert_eq!(chal.get_str("Action").unwrap(), "Challenge");
        assert!(chal
            .get_str("AuthType")
            .unwrap()
            .eq_ignore_ascii_case("md5"));
        assert_eq!(s.state(), State::Challenging);
        let out = s.on_frame(
            frame(&format!(
                "Response: Success\nActionID: {}\nChallenge: 213960544\n\n",
                id_of(chal)
            )),
            t0,
        );
        let login = &sent(&out)[0];
        assert_eq!(login.get_str("Action").unwrap(), "Login");
        assert!(login
            .get_str("AuthType")
            .unwrap()
            .eq_ignore_ascii_case("md5"));
        assert_eq!(
            login.get_str("Key").unwrap(),
            "1b98db6b14fd77743e8eddf68965cc29"
        );
        assert_eq!(
            login.get("Secret"),
            None,
            "the secret never goes on the wire"
        );
        assert_eq!(login.get_str("Events").unwrap(), "cdr,system");
        assert_ne!(
            id_of(login),
            id_of(chal),
            "ActionIDs are unique per connection"
        );
        s.on_frame(
            frame(&format!(
                "Response: Success\nActionID: {}\nMessage: Authentication accepted\n\n",
                id_of(login)
            )),
            t0,
        );
        let out = s.on_frame(
            frame("Event: FullyBooted\nPrivilege: system,all\nUptime: 13\nLastReload: 13\nStatus: Fully Booted\n\n"),
            t0,
        );
        assert!(matches!(
            out[..],
            [Output::LoggedIn {
                pbx_restarted: false,
                ..
            }]
        ));
    }

    #[test]
    fn responses_match_only_by_action_id() {
        let t0 = Mono::ZERO;
        let mut s = Session::new(cfg(AuthMethod::Plain));
        s.on_connected(t0);
        s.on_frame(banner(), t0);
        // A stray success without our ActionID, or with a stale one, is not our login.
        for f in [
            "Response: Success\nMessage: Authentication accepted\n\n",
            "Response: Success\nActionID: cdrbox-0-1\nMessage: Authentication accepted\n\n",
            "Response: Error\nActionID: other\nMessage: Authentication failed\n\n",
            // Permission denied for somebody else's action before login is not fatal.
            "Response: Error\nMessage: Permission denied\n\n",
        ] {
            assert!(s.on_frame(frame(f), t0).is_empty(), "{f}");
            assert_eq!(s.state(), State::LoggingIn);
        }
    }

    #[test]
    fn refusals_are_classified() {
        let table = [
            ("Authentication failed", DownKind::AuthFailed),
            ("Login Already In Use", DownKind::LoginInUse),
            ("Asterisk is shutting down", DownKind::PbxShutdown),
            ("Something new", DownKind::AuthFailed),
        ];
        for (msg, kind) in table {
            let t0 = Mono::ZERO;
            let mut s = Session::new(cfg(AuthMethod::Plain));
            s.on_connected(t0);
            s.on_frame(banner(), t0);
            let out = s.on_frame(
                frame(&format!(
                    "Response: Error\nActionID: cdrbox-1-1\nMessage: {msg}\n\n"
                )),
                t0,
            );
            let c = closes(&out);
            assert_eq!(c.len(), 1, "{msg}");
            assert_eq!(c[0].kind(), kind, "{msg}");
            assert_eq!(s.state(), State::Closed);
        }
        let text = CloseReason::AuthFailed("Authentication failed".into())
            .describe("10.0.0.5:5038", "logger");
        assert!(
            text.contains("10.0.0.5:5038") && text.contains("'logger'") && text.contains("secret"),
            "{text}"
        );
    }

    #[test]
    fn md5_challenge_refused_names_the_fix() {
        let t0 = Mono::ZERO;
        let mut s = Session::new(cfg(AuthMethod::Md5));
        s.on_connected(t0);
        s.on_frame(banner(), t0);
        let out = s.on_frame(
            frame("Response: Error\nActionID: cdrbox-1-1\nMessage: Must specify AuthType\n\n"),
            t0,
        );
        let c = closes(&out);
        assert!(
            matches!(&c[..], [CloseReason::Protocol(m)] if m.contains("auth = \"plain\"")),
            "{c:?}"
        );
    }

    #[test]
    fn banner_and_login_timeouts() {
        let t0 = Mono::ZERO;
        let mut s = Session::new(cfg(AuthMethod::Md5));
        s.on_connected(t0);
        assert!(s.on_tick(t0 + Duration::from_millis(2999)).is_empty());
        assert_eq!(
            closes(&s.on_tick(t0 + Duration::from_secs(3))),
            vec![CloseReason::BannerTimeout(Duration::from_secs(3))]
        );

        // Banner on time, challenge answered, login never answered: the total counts.
        let mut s = Session::new(cfg(AuthMethod::Md5));
        s.on_connected(t0);
        s.on_frame(banner(), t0 + Duration::from_secs(2));
        s.on_frame(
            frame("Response: Success\nActionID: cdrbox-1-1\nChallenge: 1\n\n"),
            t0 + Duration::from_secs(4),
        );
        assert_eq!(s.state(), State::LoggingIn);
        assert!(s.on_tick(t0 + Duration::from_millis(7999)).is_empty());
        assert_eq!(
            closes(&s.on_tick(t0 + Duration::from_secs(8))),
            vec![CloseReason::LoginTimeout(Duration::from_secs(8))]
        );
        // Closed sessions stay quiet.
        assert!(s.on_tick(t0 + Duration::from_secs(100)).is_empty());
        assert!(s.on_frame(cdr("1.1"), t0).is_empty());
    }

    #[test]
    fn ping_keepalive_accepts_both_pong_forms_and_times_out() {
        let t0 = Mono::ZERO;
        let mut s = logged_in(t0);
        let ms = Duration::from_millis;
        assert!(sent(&s.on_tick(t0 + ms(19_999))).is_empty());
        let out = s.on_tick(t0 + ms(20_000));
        let ping = &sent(&out)[1 - 1];
        assert_eq!(ping.get_str("Action").unwrap(), "Ping");
        // Only one ping in flight.
        assert!(sent(&s.on_tick(t0 + ms(21_000))).is_empty());
        // Modern pong: only its clock reading surfaces (for the PBX-vs-box skew), with the
        // round trip from the Ping.
        let out = s.on_frame(
            frame(&format!(
                "Response: Success\nActionID: {}\nPing: Pong\nTimestamp: 1.0\n\n",
                id_of(ping)
            )),
            t0 + ms(21_000),
        );
        assert_eq!(
            out,
            vec![Output::PbxClock {
                pbx_unix_us: 1_000_000,
                round_trip: ms(1_000)
            }]
        );
        // Next ping an interval after the pong; answered in the legacy 1.4 form.
        assert!(sent(&s.on_tick(t0 + ms(40_999))).is_empty());
        let out = s.on_tick(t0 + ms(41_000));
        let ping2 = &sent(&out)[0];
        assert_ne!(id_of(ping2), id_of(ping));
        let out = s.on_frame(
            frame(&format!("Response: Pong\nActionID: {}\n\n", id_of(ping2))),
            t0 + ms(42_000),
        );
        assert!(out.is_empty());
        // Third ping unanswered: closed exactly at the deadline, not before.
        let out = s.on_tick(t0 + ms(62_000));
        let ping3 = &sent(&out)[0];
        // A pong for an old ping does not count for the new one.
        s.on_frame(
            frame(&format!(
                "Response: Success\nActionID: {}\nPing: Pong\n\n",
                id_of(ping)
            )),
            t0 + ms(63_000),
        );
        assert!(closes(&s.on_tick(t0 + ms(66_999))).is_empty());
        assert_eq!(
            closes(&s.on_tick(t0 + ms(67_000))),
            vec![CloseReason::PingTimeout(Duration::from_secs(5))]
        );
        let _ = ping3;
    }

    #[test]
    fn pong_timestamps_parse_as_asterisk_prints_them_and_nothing_else() {
        assert_eq!(
            parse_timestamp("1795331221.819198"),
            Some(1_795_331_221_819_198)
        );
        assert_eq!(
            parse_timestamp(" 1795331221.8 "),
            Some(1_795_331_221_800_000)
        );
        assert_eq!(parse_timestamp("1795331221"), Some(1_795_331_221_000_000));
        assert_eq!(parse_timestamp("1.123456789"), Some(1_123_456));
        for bad in [
            "",
            ".5",
            "-1.0",
            "1e9",
            "12a.0",
            "1.2.3",
            "1.-5",
            "9999999999999.0",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn events_between_action_and_response_are_delivered() {
        let t0 = Mono::ZERO;
        let mut s = logged_in(t0);
        let out = s.on_tick(t0 + Duration::from_secs(20));
        let ping = id_of(&sent(&out)[0]);
        // The grace for FullyBooted ran out first, so the link was reported up by that tick.
        assert!(matches!(out[0], Output::LoggedIn { .. }));
        let out = s.on_frame(cdr("1795331189.1"), t0 + Duration::from_secs(20));
        assert_eq!(cdrs(&out), vec!["1795331189.1"]);
        let out = s.on_frame(frame("Event: Newchannel\nUniqueid: 5\n\n"), t0);
        assert!(out.is_empty());
        let out = s.on_frame(frame("event: CDR\nUniqueID: 1795331189.2\n\n"), t0);
        assert_eq!(
            cdrs(&out),
            vec!["1795331189.2"],
            "event names compare case-insensitively"
        );
        assert!(s
            .on_frame(
                frame(&format!(
                    "Response: Success\nActionID: {ping}\nPing: Pong\n\n"
                )),
                t0
            )
            .is_empty());
    }

    #[test]
    fn first_message_after_login_reports_up_before_itself() {
        let t0 = Mono::ZERO;
        let mut s = logged_in(t0);
        let out = s.on_frame(cdr("1.1"), t0);
        assert!(
            matches!(
                out[..],
                [
                    Output::LoggedIn {
                        pbx_restarted: false,
                        ..
                    },
                    Output::Cdr(_)
                ]
            ),
            "{out:?}"
        );
    }

    #[test]
    fn cdr_before_login_is_not_delivered() {
        let t0 = Mono::ZERO;
        let mut s = Session::new(cfg(AuthMethod::Plain));
        s.on_connected(t0);
        s.on_frame(banner(), t0);
        assert!(cdrs(&s.on_frame(cdr("1.1"), t0)).is_empty());
    }

    #[test]
    fn shutdown_is_noted_and_cdrs_after_it_still_arrive_until_eof() {
        let t0 = Mono::ZERO;
        let mut s = logged_in(t0);
        s.on_tick(t0 + Duration::from_secs(1));
        let out = s.on_frame(
            frame("Event: Shutdown\nPrivilege: system,all\nShutdown: Cleanly\nRestart: True\n\n"),
            t0,
        );
        assert_eq!(out, vec![Output::ShutdownNoticed { restart: true }]);
        assert_eq!(s.state(), State::LoggedIn);
        assert_eq!(cdrs(&s.on_frame(cdr("9.1"), t0)), vec!["9.1"]);
        assert_eq!(cdrs(&s.on_frame(cdr("9.2"), t0)), vec!["9.2"]);
        let c = closes(&s.on_eof(t0));
        assert_eq!(
            c,
            vec![CloseReason::Eof {
                during_login: false,
                after_shutdown: true
            }]
        );
        assert_eq!(c[0].kind(), DownKind::PbxShutdown);
    }

    #[test]
    fn eof_during_login_and_after_login() {
        let t0 = Mono::ZERO;
        let mut s = Session::new(cfg(AuthMethod::Plain));
        s.on_connected(t0);
        s.on_frame(banner(), t0);
        assert_eq!(
            closes(&s.on_eof(t0)),
            vec![CloseReason::Eof {
                during_login: true,
                after_shutdown: false
            }]
        );
        // Closed right after login: Up is still reported before Down.
        let mut s = logged_in(t0);
        let out = s.on_eof(t0);
        assert!(matches!(out[0], Output::LoggedIn { .. }));
        assert_eq!(closes(&out)[0].kind(), DownKind::Transient);
    }

    fn reconnect_with_uptime(s: &mut Session, now: Mono, uptime: u64) -> Vec<Output> {
        s.on_connected(now);
        let out = s.on_frame(banner(), now);
        let id = id_of(&sent(&out)[0]);
        assert_eq!(id, format!("cdrbox-{}-1", s.connections()));
        s.on_frame(
            frame(&format!(
                "Response: Success\nActionID: {id}\nMessage: Authentication accepted\n\n"
            )),
            now,
        );
        s.on_frame(frame(&format!("Event: FullyBooted\nPrivilege: system,all\nUptime: {uptime}\nLastReload: 3\nStatus: Fully Booted\n\n")), now)
    }

    #[test]
    fn restart_is_detected_from_fully_booted_uptime_across_connections() {
        let t0 = Mono::ZERO;
        let s60 = Duration::from_secs(60);
        let mut s = Session::new(cfg(AuthMethod::Plain));
        let up = |out: Vec<Output>| match &out[..] {
            [Output::LoggedIn { pbx_restarted, .. }] => *pbx_restarted,
            other => panic!("{other:?}"),
        };
        assert!(
            !up(reconnect_with_uptime(&mut s, t0, 1000)),
            "first sight is not a restart"
        );
        assert!(
            !up(reconnect_with_uptime(&mut s, t0 + s60, 1060)),
            "same boot"
        );
        assert!(
            up(reconnect_with_uptime(&mut s, t0 + 2 * s60, 5)),
            "booted 55 s ago"
        );
        assert!(
            !up(reconnect_with_uptime(&mut s, t0 + 3 * s60, 65)),
            "same boot again"
        );
        // A late FullyBooted (we connected while the PBX was booting) reports the restart apart.
        s.on_tick(t0 + 3 * s60 + Duration::from_secs(1));
        let out = s.on_frame(
            frame("Event: FullyBooted\nUptime: 2\n\n"),
            t0 + 3 * s60 + Duration::from_secs(1),
        );
        assert_eq!(out, vec![Output::PbxRestarted]);
    }

    #[test]
    fn boot_tracker_handles_uptime_longer_than_our_clock() {
        let mut b = BootTracker::default();
        let t0 = Mono::ZERO;
        assert!(!b.observe(t0, Duration::from_secs(10_000_000_000)));
        assert!(!b.observe(
            t0 + Duration::from_secs(1),
            Duration::from_secs(10_000_000_001)
        ));
        assert!(b.observe(t0 + Duration::from_secs(2), Duration::from_secs(0)));
    }

    #[test]
    fn discarded_bytes_are_reported_and_never_close() {
        let t0 = Mono::ZERO;
        let mut s = logged_in(t0);
        s.on_tick(t0 + Duration::from_secs(1));
        let out = s.on_frame(
            Frame::Discarded {
                bytes: 5_000_000,
                reason: crate::ami::codec::DiscardReason::MessageTooLong,
            },
            t0,
        );
        assert_eq!(out, vec![Output::Discarded { bytes: 5_000_000 }]);
        assert_eq!(s.state(), State::LoggedIn);
    }

    #[test]
    fn logoff_is_an_action_with_its_own_id_and_goodbye_ends_it() {
        let t0 = Mono::ZERO;
        let mut s = logged_in(t0);
        let out = s.logoff(t0);
        let m = &sent(&out)[0];
        assert_eq!(m.get_str("Action").unwrap(), "Logoff");
        assert!(id_of(m).starts_with("cdrbox-1-"));
        // Cdrs before the Goodbye still arrive; the Goodbye tells the adapter it may close
        // (it used to be swallowed, and the adapter waited for EOF or its deadline).
        assert_eq!(cdrs(&s.on_frame(cdr("7.1"), t0)), vec!["7.1"]);
        let out = s.on_frame(
            frame(&format!(
                "Response: Goodbye\nActionID: {}\nMessage: Thanks for all the fish.\n\n",
                id_of(m)
            )),
            t0,
        );
        assert_eq!(out, vec![Output::LoggedOff]);
        // A Goodbye for somebody else's Logoff is not ours.
        let mut s = logged_in(t0);
        s.on_tick(t0 + Duration::from_secs(1));
        s.logoff(t0);
        assert!(s
            .on_frame(frame("Response: Goodbye\nActionID: other\n\n"), t0)
            .is_empty());
    }

    #[test]
    fn next_deadline_follows_the_state() {
        let ms = Duration::from_millis;
        let t0 = Mono::ZERO;
        let mut s = Session::new(cfg(AuthMethod::Plain));
        assert_eq!(s.next_deadline(), None, "not connected");
        s.on_connected(t0);
        assert_eq!(s.next_deadline(), Some(t0 + ms(3000)), "banner timeout");
        let out = s.on_frame(banner(), t0 + ms(100));
        assert_eq!(s.next_deadline(), Some(t0 + ms(8000)), "login timeout");
        let id = id_of(&sent(&out)[0]);
        s.on_frame(
            frame(&format!(
                "Response: Success\nActionID: {id}\nMessage: Authentication accepted\n\n"
            )),
            t0 + ms(200),
        );
        assert_eq!(
            s.next_deadline(),
            Some(t0 + ms(700)),
            "the FullyBooted grace comes before the first ping"
        );
        s.on_tick(t0 + ms(700));
        assert_eq!(s.next_deadline(), Some(t0 + ms(20_200)), "next ping");
        let out = s.on_tick(t0 + ms(20_200));
        let ping = id_of(&sent(&out)[0]);
        assert_eq!(s.next_deadline(), Some(t0 + ms(25_200)), "pong deadline");
        s.on_frame(
            frame(&format!(
                "Response: Success\nActionID: {ping}\nPing: Pong\n\n"
            )),
            t0 + ms(20_300),
        );
        assert_eq!(s.next_deadline(), Some(t0 + ms(40_300)));
        s.on_eof(t0 + ms(30_000));
        assert_eq!(s.next_deadline(), None, "closed");
        assert_eq!(
            s.take_logged_in_for(t0 + ms(30_200)),
            Some(ms(30_000)),
            "logged in from 200 ms to the end"
        );
        assert_eq!(s.take_logged_in_for(t0 + ms(31_000)), None, "only once");
    }

    /// One step of a random session: time passes, then something arrives (or nothing).
    #[derive(Debug, Clone)]
    enum Step {
        Wait(u64),
        Pong,
        Cdr,
        Booted,
        Eof,
    }

    fn steps() -> impl proptest::strategy::Strategy<Value = Vec<Step>> {
        use proptest::prelude::*;
        proptest::collection::vec(
            prop_oneof![
                4 => (0u64..30_000).prop_map(Step::Wait),
                2 => Just(Step::Pong),
                2 => Just(Step::Cdr),
                1 => Just(Step::Booted),
                1 => Just(Step::Eof),
            ],
            1..60,
        )
    }

    proptest::proptest! {
        /// Sleeping until `next_deadline` instead of ticking loses nothing and never spins:
        /// before the deadline a tick has nothing to do, and a tick at the deadline always
        /// moves it later (or ends the session).
        #[test]
        fn deadlines_replace_the_tick(auth_md5 in proptest::bool::ANY, script in steps()) {
            let auth = if auth_md5 { AuthMethod::Md5 } else { AuthMethod::Plain };
            let t0 = Mono::ZERO;
            let mut s = Session::new(cfg(auth));
            let mut now = t0;
            s.on_connected(now);
            let mut pending_ping: Option<String> = None;
            let mut out = s.on_frame(banner(), now);
            for step in script {
                // Answer the login steps as a PBX would, so most scripts reach LoggedIn.
                for m in sent(&out) {
                    let id = id_of(&m);
                    match m.get_str("Action").unwrap().as_ref() {
                        "Challenge" => {
                            out = s.on_frame(frame(&format!("Response: Success\nActionID: {id}\nChallenge: 1\n\n")), now);
                        }
                        "Login" => {
                            out = s.on_frame(frame(&format!("Response: Success\nActionID: {id}\nMessage: Authentication accepted\n\n")), now);
                        }
                        "Ping" => pending_ping = Some(id),
                        _ => {}
                    }
                }
                if let Some(deadline) = s.next_deadline() {
                    if deadline > now {
                        let before = deadline - Duration::from_nanos(1);
                        let mut probe = s.clone();
                        proptest::prop_assert!(probe.on_tick(before.max(now)).is_empty());
                    }
                }
                match step {
                    Step::Wait(ms) => {
                        let until = now + Duration::from_millis(ms);
                        // Fire every deadline on the way, as the adapter's timer would.
                        while let Some(d) = s.next_deadline().filter(|d| *d <= until) {
                            now = now.max(d);
                            out = s.on_tick(now);
                            let after = s.next_deadline();
                            proptest::prop_assert!(
                                after.is_none_or(|a| a > d),
                                "deadline {d:?} did not move: {after:?}"
                            );
                            for m in sent(&out) {
                                if m.get_str("Action").as_deref() == Some("Ping") {
                                    pending_ping = Some(id_of(&m));
                                }
                            }
                        }
                        now = until;
                    }
                    Step::Pong => {
                        if let Some(id) = pending_ping.take() {
                            out = s.on_frame(frame(&format!("Response: Success\nActionID: {id}\nPing: Pong\n\n")), now);
                        }
                    }
                    Step::Cdr => out = s.on_frame(cdr("1.1"), now),
                    Step::Booted => out = s.on_frame(frame("Event: FullyBooted\nUptime: 5\n\n"), now),
                    Step::Eof => {
                        s.on_eof(now);
                        proptest::prop_assert_eq!(s.next_deadline(), None);
                        break;
                    }
                }
            }
        }
    }

    #[test]
    fn secret_is_redacted_in_debug() {
        let c = cfg(AuthMethod::Plain);
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
