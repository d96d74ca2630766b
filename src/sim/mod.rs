//! `cdrbox sim-pbx`: a simulated Asterisk 22 Manager Interface that speaks, byte for byte, what a
//! CDR logger sees from a real one (`tests/fixtures/ami/`), for demos, tests and load tests.
//!
//! Layout: [`calls`] is the pure, seeded generator of call scenarios (Cdr event bytes),
//! [`protocol`] the pure per-connection action handling; this file is the tokio adapter: the
//! listener, one task per connection, the call generator task, and [`SimHandle`] to control and
//! observe it all.
//!
//! Delivery is modelled on `main/manager.c`: every logged-in session whose event mask has `cdr`
//! gets every Cdr event dispatched *after* it logged in (no replay); each session has its own
//! bounded queue, so a slow reader never blocks the generator or other sessions; a session
//! whose queue overflows, or whose socket write stalls longer than `write_timeout` (Asterisk's
//! `writetimeout`, 100 ms), is dropped, as Asterisk drops it. Must not print: the CLI does.

pub mod calls;
pub mod protocol;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::ami::{Decoder, Frame, Limits};

pub use calls::{
    callerid_merge, default_timezone, local_time, CallGenerator, CdrData, GeneratedCall,
    GeneratorOptions, Scenario, UnknownScenario,
};
pub use protocol::{class, Account, Clock, Effect, ServerSession};

/// The greeting of Asterisk 22 (AMI 11.0.0); no blank line follows it.
pub const BANNER: &[u8] = b"Asterisk Call Manager/11.0.0\r\n";

/// Everything the simulated PBX can be told.
#[derive(Clone)]
pub struct SimOptions {
    /// The one AMI user (`manager.conf` section name). Default `logger`.
    pub username: String,
    /// Its secret, for plain and MD5 login. Default `s3cret` (the captures' user).
    pub secret: String,
    /// Automatic calls per second (mean); 0 = none, only [`SimHandle::trigger_call`].
    pub rate_per_sec: f64,
    /// Stop generating automatic calls after this many (the server keeps serving).
    pub calls: Option<u64>,
    /// Poisson arrivals (exponential gaps) when true, evenly spaced calls when false.
    pub poisson: bool,
    /// Seed, time zone, mappings, `timestampevents`, `systemname`, scenario mix.
    pub generator: GeneratorOptions,
    /// Wait before `Authentication failed` (Asterisk sleeps 1 s).
    pub auth_fail_delay: Duration,
    /// An unauthenticated connection is closed after this long (Asterisk `authtimeout`, 30 s).
    pub auth_timeout: Duration,
    /// A socket write that takes longer drops the session (Asterisk `writetimeout`, 100 ms).
    pub write_timeout: Duration,
    /// Events queued per session before it counts as unable to keep up and is dropped.
    pub session_queue: usize,
    /// `SO_SNDBUF` for accepted sockets (None = the OS default); small values make tests of
    /// slow readers fast.
    pub send_buffer: Option<usize>,
    /// Keep a copy of every Cdr event generated ([`SimHandle::events`]); costs ~0.7 KB each.
    pub record_events: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            username: "logger".into(),
            secret: "s3cret".into(),
            rate_per_sec: 0.2,
            calls: None,
            poisson: true,
            generator: GeneratorOptions::default(),
            auth_fail_delay: Duration::from_secs(1),
            auth_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_millis(100),
            session_queue: 8192,
            send_buffer: None,
            record_events: true,
        }
    }
}

impl std::fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimOptions")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .field("rate_per_sec", &self.rate_per_sec)
            .field("calls", &self.calls)
            .field("poisson", &self.poisson)
            .field("generator", &self.generator)
            .field("auth_fail_delay", &self.auth_fail_delay)
            .field("auth_timeout", &self.auth_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("session_queue", &self.session_queue)
            .field("send_buffer", &self.send_buffer)
            .field("record_events", &self.record_events)
            .finish()
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("sim-pbx: cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sim-pbx: cannot read the listener's local address: {0}")]
    LocalAddr(#[source] std::io::Error),
    #[error("sim-pbx: --rate must be a finite number of calls per second ≥ 0, got {0}")]
    InvalidRate(f64),
    #[error("sim-pbx: the session queue must hold at least 1 event")]
    ZeroQueue,
}

/// Counters, for the CLI's summary and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimStats {
    /// Calls generated (automatic and triggered).
    pub calls_generated: u64,
    /// Cdr events generated (a call gives 1–2).
    pub cdrs_generated: u64,
    /// Cdr events written to client sockets, summed over sessions.
    pub cdrs_sent: u64,
    /// TCP connections accepted.
    pub connections: u64,
    /// Sessions logged in right now.
    pub logged_in: u64,
    /// Sessions dropped for being too slow (write timeout or queue overflow).
    pub sessions_dropped: u64,
}

/// What a session task receives from the rest of the simulator.
#[derive(Debug)]
enum Outgoing {
    Event {
        bytes: Bytes,
        cdr: bool,
    },
    /// Close the connection after `linger` (Asterisk closes ~10 ms after `Event: Shutdown`).
    Close {
        linger: Duration,
    },
}

#[derive(Debug)]
struct Slot {
    logged_in: bool,
    mask: u32,
    tx: mpsc::Sender<Outgoing>,
    kill: Arc<Notify>,
}

/// Every open connection, for broadcast and shutdown.
#[derive(Debug, Default)]
struct Hub {
    next_id: u64,
    sessions: HashMap<u64, Slot>,
}

impl Hub {
    /// Queues `bytes` for every logged-in session that receives `category`; never waits.
    fn broadcast(&mut self, category: u32, bytes: &Bytes) {
        let mut gone = Vec::new();
        for (id, slot) in &self.sessions {
            if !slot.logged_in || slot.mask & category == 0 {
                continue;
            }
            let out = Outgoing::Event {
                bytes: bytes.clone(),
                cdr: category == class::CDR,
            };
            match slot.tx.try_send(out) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // Cannot keep up: drop it like Asterisk drops a session it cannot write to
                    // (the session task counts the drop).
                    slot.kill.notify_one();
                    gone.push(*id);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push(*id),
            }
        }
        for id in gone {
            self.sessions.remove(&id);
        }
    }

    /// Asks every connection to close after what is already queued.
    fn close_all(&mut self, linger: Duration) {
        for slot in self.sessions.values() {
            if slot.tx.try_send(Outgoing::Close { linger }).is_err() {
                slot.kill.notify_one();
            }
        }
        self.sessions.clear();
    }
}

#[derive(Debug, Clone, Copy)]
struct Boot {
    started: Instant,
    last_reload: Instant,
}

struct Shared {
    opts: SimOptions,
    account: Account,
    hub: Mutex<Hub>,
    generator: Mutex<CallGenerator>,
    events: Mutex<Vec<Bytes>>,
    boot: Mutex<Boot>,
    challenge_rng: Mutex<fastrand::Rng>,
    calls_generated: AtomicU64,
    auto_calls: AtomicU64,
    cdrs_generated: AtomicU64,
    cdrs_sent: AtomicU64,
    connections: AtomicU64,
    sessions_dropped: AtomicU64,
    calls_watch: watch::Sender<u64>,
    /// Stops accepting and generating (shutdown without restart, or stop).
    halt: watch::Sender<bool>,
    /// Ends every task at once (stop).
    stop: watch::Sender<bool>,
    halted: AtomicBool,
}

/// A poisoned lock only means another task panicked mid-update; the data is still usable for
/// a simulator, and panicking here would take the whole server down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_utc() -> (i64, u32) {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_micros()),
        Err(_) => (0, 0),
    }
}

impl Shared {
    fn clock(&self) -> Clock {
        let (now_sec, now_usec) = now_utc();
        let boot = *lock(&self.boot);
        Clock {
            now_sec,
            now_usec,
            uptime: boot.started.elapsed().as_secs(),
            last_reload: boot.last_reload.elapsed().as_secs(),
        }
    }

    /// Generates one call, queues its Cdr events to every session and records them.
    fn emit(&self, scenario: Option<Scenario>, automatic: bool) -> Vec<Bytes> {
        let mut generator = lock(&self.generator);
        let (now, _) = now_utc();
        let events: Vec<Bytes> = match scenario {
            Some(s) => generator.call(s, now).events,
            None => generator.next_call(now),
        }
        .into_iter()
        .map(Bytes::from)
        .collect();
        {
            let mut hub = lock(&self.hub);
            for ev in &events {
                hub.broadcast(class::CDR, ev);
            }
        }
        if self.opts.record_events {
            lock(&self.events).extend(events.iter().cloned());
        }
        self.cdrs_generated
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        if automatic {
            self.auto_calls.fetch_add(1, Ordering::Relaxed);
        }
        let calls = self.calls_generated.fetch_add(1, Ordering::Relaxed) + 1;
        drop(generator);
        self.calls_watch.send_replace(calls);
        events
    }

    /// A `manager_event` of class system: with the optional Timestamp/SystemName headers.
    fn system_event(&self, name: &str, body: &[(&str, &str)]) -> Bytes {
        let g = &self.opts.generator;
        let mut out = format!("Event: {name}\r\nPrivilege: system,all\r\n");
        if g.timestamp_events {
            let (s, us) = now_utc();
            out.push_str(&format!("Timestamp: {s}.{us:06}\r\n"));
        }
        if let Some(sys) = &g.system_name {
            out.push_str(&format!("SystemName: {sys}\r\n"));
        }
        for (k, v) in body {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        Bytes::from(out)
    }
}

/// Control and observation of a running simulator. Dropping it stops the simulator.
pub struct SimHandle {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    tasks: Option<JoinSet<()>>,
}

/// Binds `addr` and starts the simulator on it.
pub async fn bind(addr: &str, opts: SimOptions) -> Result<SimHandle, SimError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    start(listener, opts).await
}

/// Starts serving on `listener` and generating calls per `opts`. Must run inside a tokio runtime.
pub async fn start(listener: TcpListener, opts: SimOptions) -> Result<SimHandle, SimError> {
    if !opts.rate_per_sec.is_finite() || opts.rate_per_sec < 0.0 {
        return Err(SimError::InvalidRate(opts.rate_per_sec));
    }
    if opts.session_queue == 0 {
        return Err(SimError::ZeroQueue);
    }
    let local_addr = listener.local_addr().map_err(SimError::LocalAddr)?;
    let boot = Boot {
        started: Instant::now(),
        last_reload: Instant::now(),
    };
    let shared = Arc::new(Shared {
        account: Account {
            username: opts.username.clone(),
            secret: opts.secret.clone(),
            read: class::CAPTURE_USER_READ,
            write: class::CAPTURE_USER_WRITE,
        },
        generator: Mutex::new(CallGenerator::new(opts.generator.clone())),
        challenge_rng: Mutex::new(fastrand::Rng::with_seed(
            opts.generator.seed ^ 0x6368_616c_6c65_6e67,
        )),
        opts,
        hub: Mutex::new(Hub::default()),
        events: Mutex::new(Vec::new()),
        boot: Mutex::new(boot),
        calls_generated: AtomicU64::new(0),
        auto_calls: AtomicU64::new(0),
        cdrs_generated: AtomicU64::new(0),
        cdrs_sent: AtomicU64::new(0),
        connections: AtomicU64::new(0),
        sessions_dropped: AtomicU64::new(0),
        calls_watch: watch::channel(0).0,
        halt: watch::channel(false).0,
        stop: watch::channel(false).0,
        halted: AtomicBool::new(false),
    });
    let mut tasks = JoinSet::new();
    tasks.spawn(accept_loop(shared.clone(), listener));
    tasks.spawn(generate(shared.clone()));
    Ok(SimHandle {
        shared,
        local_addr,
        tasks: Some(tasks),
    })
}

impl SimHandle {
    /// Where the simulator listens (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn calls_generated(&self) -> u64 {
        self.shared.calls_generated.load(Ordering::Relaxed)
    }

    pub fn cdrs_generated(&self) -> u64 {
        self.shared.cdrs_generated.load(Ordering::Relaxed)
    }

    /// Cdr events written to client sockets, summed over all sessions.
    pub fn cdrs_sent(&self) -> u64 {
        self.shared.cdrs_sent.load(Ordering::Relaxed)
    }

    /// Sessions dropped for being too slow.
    pub fn sessions_dropped(&self) -> u64 {
        self.shared.sessions_dropped.load(Ordering::Relaxed)
    }

    /// Sessions logged in right now.
    pub fn logged_in(&self) -> usize {
        lock(&self.shared.hub)
            .sessions
            .values()
            .filter(|s| s.logged_in)
            .count()
    }

    pub fn stats(&self) -> SimStats {
        SimStats {
            calls_generated: self.calls_generated(),
            cdrs_generated: self.cdrs_generated(),
            cdrs_sent: self.cdrs_sent(),
            connections: self.shared.connections.load(Ordering::Relaxed),
            logged_in: self.logged_in() as u64,
            sessions_dropped: self.sessions_dropped(),
        }
    }

    /// Every Cdr event generated so far, in dispatch order (empty unless `record_events`).
    pub fn events(&self) -> Vec<Bytes> {
        lock(&self.shared.events).clone()
    }

    /// The recorded Cdr events from index `start` on, for incremental readers of long runs.
    pub fn events_from(&self, start: usize) -> Vec<Bytes> {
        lock(&self.shared.events)
            .get(start..)
            .map(<[Bytes]>::to_vec)
            .unwrap_or_default()
    }

    /// False after [`SimHandle::shutdown_event`] without restart (or [`SimHandle::stop`]).
    pub fn is_running(&self) -> bool {
        !self.shared.halted.load(Ordering::Relaxed)
    }

    /// Generates a call of `scenario` now and dispatches it; returns its Cdr events.
    pub fn trigger_call(&self, scenario: Scenario) -> Vec<Bytes> {
        self.shared.emit(Some(scenario), false)
    }

    /// Generates a call from the configured mix now and dispatches it.
    pub fn trigger_random_call(&self) -> Vec<Bytes> {
        self.shared.emit(None, false)
    }

    /// Waits until at least `n` calls were generated (automatic or triggered).
    pub async fn wait_for_calls(&self, n: u64) {
        let mut rx = self.shared.calls_watch.subscribe();
        // Err only when the sender is gone, which cannot happen while `self` holds `shared`.
        let _ = rx.wait_for(|c| *c >= n).await;
    }

    /// `Event: Reload` for `cdr_manager.so` (class system), as `module reload` sends it.
    pub fn reload_event(&self) {
        let ev = self
            .shared
            .system_event("Reload", &[("Module", "cdr_manager.so"), ("Status", "0")]);
        lock(&self.shared.boot).last_reload = Instant::now();
        lock(&self.shared.hub).broadcast(class::SYSTEM, &ev);
    }

    /// `core restart|stop gracefully`: `Event: Shutdown` (`Shutdown: Cleanly`, `Restart:
    /// True|False`) to sessions with the system class, then every connection is closed about
    /// 10 ms later (sessions with only `cdr` see just the close, like `restart_events_cdr_only`).
    ///
    /// With `restart`, the PBX comes straight back: new connections are served, Uptime and the
    /// UniqueID/channel/Sequence counters start again and automatic calls continue. Without it,
    /// the listener closes and no more calls are generated.
    pub fn shutdown_event(&self, restart: bool) {
        let ev = self.shared.system_event(
            "Shutdown",
            &[
                ("Shutdown", "Cleanly"),
                ("Restart", if restart { "True" } else { "False" }),
            ],
        );
        // Hold the generator lock so no Cdr slips in between the event and the close.
        let mut generator = lock(&self.shared.generator);
        {
            let mut hub = lock(&self.shared.hub);
            hub.broadcast(class::SYSTEM, &ev);
            hub.close_all(Duration::from_millis(10));
        }
        if restart {
            generator.restart();
            let now = Instant::now();
            *lock(&self.shared.boot) = Boot {
                started: now,
                last_reload: now,
            };
        } else {
            self.shared.halted.store(true, Ordering::Relaxed);
            self.shared.halt.send_replace(true);
        }
    }

    /// Stops everything (no Shutdown event: like the PBX vanishing) and waits for the tasks.
    pub async fn stop(mut self) {
        self.shared.halted.store(true, Ordering::Relaxed);
        self.shared.halt.send_replace(true);
        self.shared.stop.send_replace(true);
        if let Some(mut tasks) = self.tasks.take() {
            while tasks.join_next().await.is_some() {}
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shared.halt.send_replace(true);
        self.shared.stop.send_replace(true);
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut halt = shared.halt.subscribe();
    let mut sessions = JoinSet::new();
    loop {
        if *halt.borrow() {
            break;
        }
        tokio::select! {
            _ = halt.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    sessions.spawn(serve(shared.clone(), stream));
                }
                // EMFILE and friends: back off instead of spinning; the PBX stays up.
                Err(e) => {
                    tracing::warn!(target: "cdrbox::sim", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    drop(listener);
    // Sessions keep running after a halt (they close on their own Close); wait for them so
    // `stop()` returns only when every socket is closed.
    while sessions.join_next().await.is_some() {}
}

async fn generate(shared: Arc<Shared>) {
    let rate = shared.opts.rate_per_sec;
    if rate <= 0.0 {
        return;
    }
    let mut halt = shared.halt.subscribe();
    let mut rng = fastrand::Rng::with_seed(shared.opts.generator.seed ^ 0x6172_7269_7661_6c73);
    let t0 = Instant::now();
    let mut due = 0.0f64;
    let mut since_yield = 0u32;
    loop {
        if *halt.borrow() {
            return;
        }
        if let Some(cap) = shared.opts.calls {
            if shared.auto_calls.load(Ordering::Relaxed) >= cap {
                return;
            }
        }
        let gap = if shared.opts.poisson {
            -(1.0 - rng.f64()).ln() / rate
        } else {
            1.0 / rate
        };
        due += gap;
        // Catch up in a tight loop when behind (high rates), yielding now and then.
        let at = t0 + Duration::from_secs_f64(due.min(1.0e9));
        if at > Instant::now() {
            since_yield = 0;
            tokio::select! {
                _ = tokio::time::sleep_until(at) => {}
                _ = halt.changed() => return,
            }
        } else {
            since_yield += 1;
            if since_yield >= 64 {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
        }
        shared.emit(None, true);
    }
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed, or the socket failed.
    PeerGone,
    /// Logoff, failed login, shutdown.
    Closed,
    /// Writes stalled past `write_timeout` or the queue overflowed.
    TooSlow,
    /// Unauthenticated past `auth_timeout`.
    AuthTimeout,
    /// [`SimHandle::stop`].
    Stopped,
}

/// One `send_string`: the whole message within `limit`, or the session is dropped. Also gives up
/// at once when the broadcaster dropped the session for a full queue while this write stalled.
async fn write_timed(
    wr: &mut OwnedWriteHalf,
    bytes: &[u8],
    limit: Duration,
    kill: &Notify,
) -> Result<(), End> {
    tokio::select! {
        written = tokio::time::timeout(limit, wr.write_all(bytes)) => match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::PeerGone),
            Err(_) => Err(End::TooSlow),
        },
        _ = kill.notified() => Err(End::TooSlow),
    }
}

async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    // Asterisk sets TCP_NODELAY on AMI sockets; failures only cost latency.
    let _ = stream.set_nodelay(true);
    if let Some(size) = shared.opts.send_buffer {
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(size);
    }
    let (tx, rx) = mpsc::channel(shared.opts.session_queue);
    let kill = Arc::new(Notify::new());
    let id = {
        let mut hub = lock(&shared.hub);
        let id = hub.next_id;
        hub.next_id += 1;
        hub.sessions.insert(
            id,
            Slot {
                logged_in: false,
                mask: 0,
                tx,
                kill: kill.clone(),
            },
        );
        id
    };
    let (rd, mut wr) = stream.into_split();
    let end = session(&shared, id, rd, &mut wr, rx, &kill).await;
    lock(&shared.hub).sessions.remove(&id);
    if end == End::TooSlow {
        shared.sessions_dropped.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "cdrbox::sim", session = id, "dropped slow session");
    }
    if end != End::PeerGone && end != End::TooSlow {
        let _ = tokio::time::timeout(shared.opts.write_timeout, wr.shutdown()).await;
    }
}

async fn session(
    shared: &Shared,
    id: u64,
    mut rd: tokio::net::tcp::OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    kill: &Notify,
) -> End {
    match session_inner(shared, id, &mut rd, wr, &mut rx, kill).await {
        Ok(never) => match never {},
        Err(end) => end,
    }
}

/// The session loop; every way out is an `Err(End)` so `?` works on writes.
async fn session_inner(
    shared: &Shared,
    id: u64,
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    rx: &mut mpsc::Receiver<Outgoing>,
    kill: &Notify,
) -> Result<std::convert::Infallible, End> {
    let limit = shared.opts.write_timeout;
    let mut stop = shared.stop.subscribe();
    if *stop.borrow() {
        return Err(End::Stopped);
    }
    write_timed(wr, BANNER, limit, kill).await?;
    let challenge = lock(&shared.challenge_rng).u32(0..i32::MAX as u32);
    let mut proto = ServerSession::new(shared.account.clone(), challenge);
    // Asterisk reads at most 1024 bytes per line and 128 lines per action.
    let mut decoder = Decoder::new(Limits {
        max_line: 1026,
        max_message: 128 * 1026,
    });
    let mut buf = BytesMut::with_capacity(4096);
    let auth_deadline = Instant::now() + shared.opts.auth_timeout;
    loop {
        tokio::select! {
            _ = kill.notified() => {
                return Err(End::TooSlow);
            }
            _ = stop.changed() => return Err(End::Stopped),
            _ = tokio::time::sleep_until(auth_deadline), if !proto.authenticated() => {
                return Err(End::AuthTimeout);
            }
            out = rx.recv() => match out {
                Some(Outgoing::Event { bytes, cdr }) => {
                    write_timed(wr, &bytes, limit, kill).await?;
                    if cdr {
                        shared.cdrs_sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Outgoing::Close { linger }) => {
                    tokio::time::sleep(linger).await;
                    return Err(End::Closed);
                }
                None => return Err(End::Closed),
            },
            read = rd.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => return Err(End::PeerGone),
                Ok(_) => {
                    while let Some(frame) = decoder.decode(&mut buf) {
                        match frame {
                            Frame::Message(msg) => {
                                let clock = shared.clock();
                                for effect in proto.handle(&msg, &clock) {
                                    match effect {
                                        Effect::Send(bytes) => write_timed(wr, &bytes, limit, kill).await?,
                                        Effect::LoggedIn { mask } | Effect::SetMask(mask) => {
                                            if let Some(slot) = lock(&shared.hub).sessions.get_mut(&id) {
                                                slot.logged_in = true;
                                                slot.mask = mask;
                                            }
                                        }
                                        Effect::AuthFailureDelay => {
                                            tokio::select! {
                                                _ = tokio::time::sleep(shared.opts.auth_fail_delay) => {}
                                                _ = stop.changed() => return Err(End::Stopped),
                                            }
                                        }
                                        Effect::Close => return Err(End::Closed),
                                    }
                                }
                            }
                            Frame::Discarded { .. } => {
                                write_timed(
                                    wr,
                                    b"Response: Error\r\nMessage: Failed to parse message: line too long\r\n\r\n",
                                    limit,
                                    kill,
                                )
                                .await?;
                            }
                            // A first line without a colon: Asterisk would ignore it too.
                            Frame::Banner(_) => {}
                        }
                    }
                }
            },
        }
    }
}
