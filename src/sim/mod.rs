//! `cdrbox sim-pbx`: a simulated Asterisk 22 Manager Interface that speaks, byte for byte, what a
//! CDR logger sees from a real one (`tests/fixtures/ami/`), for demos, tests and load tests.
//!
//! Layout: [`calls`] is the pure, seeded generator of call scenarios (Cdr event bytes),
//! [`protocol`] the pure per-connection action handling, `hub` the fan-out of events to
//! sessions, `serve` the sockets (accept loop, one task per connection); this file is the PBX
//! itself: its options, its phases (up, down, booting), the call generator task, its counters,
//! and [`SimHandle`] to control and observe it all.
//!
//! Calls happen on the PBX's own clock (the injected [`Clock`]), whether or not anyone is logged
//! in. Delivery is modelled on `main/manager.c`: every logged-in session whose event mask has
//! `cdr` gets every Cdr event dispatched *after* it logged in (no replay), so a Cdr dispatched
//! while no session is logged in is lost for good, as `cdr_manager` loses it (counted as
//! `cdrs_unheard`); each session has its own bounded queue, so a slow reader never blocks the
//! generator or other sessions; a session whose queue overflows, or whose socket write stalls
//! longer than `write_timeout` (Asterisk's `writetimeout`, 100 ms), is dropped, as Asterisk
//! drops it. A restart ([`SimHandle::restart`]) takes the PBX down for a while — calls due then
//! are counted as produced while down and go nowhere — and it boots with its manager port open
//! before it takes calls, as Asterisk loads `manager` before the channel drivers. Must not
//! print: the CLI does.

pub mod calls;
mod hub;
pub mod protocol;
mod serve;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::clock::{Clock, Mono};
use hub::Hub;

pub use calls::{
    callerid_merge, default_timezone, local_time, CallGenerator, CdrData, GeneratedCall,
    GeneratorOptions, Scenario, UnknownScenario,
};
pub use protocol::{class, Account, Effect, PbxTime, ServerSession};

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
    /// Keep a copy of every Cdr event dispatched ([`SimHandle::events`]); costs ~0.7 KB each.
    pub record_events: bool,
    /// The PBX's clock: call times, `Timestamp:`, Uptime and every timer of the simulator.
    pub clock: Clock,
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
            clock: Clock::system(),
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
            .field("clock", &self.clock)
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

/// Counters, for the CLI's summary and for tests (the capture ratio is measured against
/// `cdrs_while_up`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimStats {
    /// Calls generated (automatic and triggered), including those due while the PBX was down.
    pub calls_generated: u64,
    /// Cdr events generated (a call gives 1–2): `cdrs_while_up + cdrs_while_down`.
    pub cdrs_generated: u64,
    /// Cdr events dispatched while the PBX was up: what a logger could have received.
    pub cdrs_while_up: u64,
    /// Cdr events of calls due while the PBX was down or still booting: nobody can have them.
    pub cdrs_while_down: u64,
    /// Cdr events dispatched while up that no session was logged in to hear: lost at the PBX.
    pub cdrs_unheard: u64,
    /// Cdr events written to client sockets, summed over sessions.
    pub cdrs_sent: u64,
    /// TCP connections accepted (and served).
    pub connections: u64,
    /// Connections reset because the PBX was down.
    pub refused: u64,
    /// Sessions logged in right now.
    pub logged_in: u64,
    /// Sessions dropped for being too slow (write timeout or queue overflow).
    pub sessions_dropped: u64,
    /// Restarts with downtime ([`SimHandle::restart`]).
    pub restarts: u64,
}

/// Where the simulated PBX is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Running: serving AMI and taking calls.
    Up,
    /// The process is gone (restarting): connections are refused, calls cannot happen.
    Down,
    /// Started again: the manager port serves logins (without FullyBooted), but the channel
    /// drivers are not loaded yet, so calls cannot happen.
    Booting,
}

#[derive(Debug, Clone, Copy)]
struct Boot {
    started: Mono,
    last_reload: Mono,
}

struct Shared {
    opts: SimOptions,
    clock: Clock,
    account: Account,
    hub: Mutex<Hub>,
    generator: Mutex<CallGenerator>,
    events: Mutex<Vec<Bytes>>,
    boot: Mutex<Boot>,
    phase: watch::Sender<Phase>,
    challenge_rng: Mutex<fastrand::Rng>,
    calls_generated: AtomicU64,
    auto_calls: AtomicU64,
    cdrs_generated: AtomicU64,
    cdrs_while_up: AtomicU64,
    cdrs_while_down: AtomicU64,
    cdrs_unheard: AtomicU64,
    cdrs_sent: AtomicU64,
    connections: AtomicU64,
    refused: AtomicU64,
    sessions_dropped: AtomicU64,
    restarts: AtomicU64,
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

impl Shared {
    /// Wall-clock now, as Unix seconds and microseconds.
    fn now_utc(&self) -> (i64, u32) {
        match self.clock.wall().duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, d.subsec_micros()),
            Err(_) => (0, 0),
        }
    }

    fn pbx_time(&self) -> PbxTime {
        let (now_sec, now_usec) = self.now_utc();
        let boot = *lock(&self.boot);
        let now = self.clock.now();
        PbxTime {
            now_sec,
            now_usec,
            uptime: (now - boot.started).as_secs(),
            last_reload: (now - boot.last_reload).as_secs(),
            fully_booted: *self.phase.borrow() == Phase::Up,
        }
    }

    /// Generates one call. While the PBX is up its Cdr events go to every logged-in session
    /// (and nowhere when none is) and are recorded; while it is down or booting the call could
    /// not have happened: it is only counted.
    fn emit(&self, scenario: Option<Scenario>, automatic: bool) -> Vec<Bytes> {
        let mut generator = lock(&self.generator);
        let (now, _) = self.now_utc();
        let events: Vec<Bytes> = match scenario {
            Some(s) => generator.call(s, now).events,
            None => generator.next_call(now),
        }
        .into_iter()
        .map(Bytes::from)
        .collect();
        let n = events.len() as u64;
        if *self.phase.borrow() == Phase::Up {
            let mut unheard = 0;
            {
                let mut hub = lock(&self.hub);
                for ev in &events {
                    if hub.broadcast(class::CDR, ev) == 0 {
                        unheard += 1;
                    }
                }
            }
            if self.opts.record_events {
                lock(&self.events).extend(events.iter().cloned());
            }
            self.cdrs_while_up.fetch_add(n, Ordering::Relaxed);
            self.cdrs_unheard.fetch_add(unheard, Ordering::Relaxed);
        } else {
            self.cdrs_while_down.fetch_add(n, Ordering::Relaxed);
        }
        self.cdrs_generated.fetch_add(n, Ordering::Relaxed);
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
            let (s, us) = self.now_utc();
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
    let clock = opts.clock.clone();
    let boot = Boot {
        started: clock.now(),
        last_reload: clock.now(),
    };
    let shared = Arc::new(Shared {
        clock,
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
        phase: watch::channel(Phase::Up).0,
        calls_generated: AtomicU64::new(0),
        auto_calls: AtomicU64::new(0),
        cdrs_generated: AtomicU64::new(0),
        cdrs_while_up: AtomicU64::new(0),
        cdrs_while_down: AtomicU64::new(0),
        cdrs_unheard: AtomicU64::new(0),
        cdrs_sent: AtomicU64::new(0),
        connections: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        sessions_dropped: AtomicU64::new(0),
        restarts: AtomicU64::new(0),
        calls_watch: watch::channel(0).0,
        halt: watch::channel(false).0,
        stop: watch::channel(false).0,
        halted: AtomicBool::new(false),
    });
    let mut tasks = JoinSet::new();
    tasks.spawn(serve::accept_loop(shared.clone(), listener));
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
        lock(&self.shared.hub).logged_in()
    }

    /// Where the PBX is in its life (up, down, booting).
    pub fn phase(&self) -> Phase {
        *self.shared.phase.borrow()
    }

    /// Waits until the PBX is in `phase`.
    pub async fn wait_for_phase(&self, phase: Phase) {
        let mut rx = self.shared.phase.subscribe();
        // Err only when the sender is gone, which cannot happen while `self` holds `shared`.
        let _ = rx.wait_for(|p| *p == phase).await;
    }

    pub fn stats(&self) -> SimStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let s = &self.shared;
        SimStats {
            calls_generated: self.calls_generated(),
            cdrs_generated: self.cdrs_generated(),
            cdrs_while_up: load(&s.cdrs_while_up),
            cdrs_while_down: load(&s.cdrs_while_down),
            cdrs_unheard: load(&s.cdrs_unheard),
            cdrs_sent: self.cdrs_sent(),
            connections: load(&s.connections),
            refused: load(&s.refused),
            logged_in: self.logged_in() as u64,
            sessions_dropped: self.sessions_dropped(),
            restarts: load(&s.restarts),
        }
    }

    /// Every Cdr event dispatched so far while up, in dispatch order (empty unless
    /// `record_events`).
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
        lock(&self.shared.boot).last_reload = self.shared.clock.now();
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
            let now = self.shared.clock.now();
            *lock(&self.shared.boot) = Boot {
                started: now,
                last_reload: now,
            };
        } else {
            self.shared.halted.store(true, Ordering::Relaxed);
            self.shared.halt.send_replace(true);
        }
    }

    /// `core restart now` as it really goes: `Event: Shutdown` (`Restart: True`) and every
    /// connection closed, then the PBX is **down** for `down` (connections refused, calls due
    /// then counted in `cdrs_while_down` and sent nowhere), then **booting** for `boot` (logins
    /// are served, without FullyBooted, but no calls happen yet), then **up**: `Event:
    /// FullyBooted` to the logged-in system sessions and calls again. Uptime counts from the
    /// end of `down`; the UniqueID/Sequence counters are fresh when it is up. Returns at once; watch
    /// [`SimHandle::phase`] or wait with [`SimHandle::wait_for_phase`]. Must run inside the
    /// tokio runtime. ([`SimHandle::shutdown_event`] with `restart` is the old instant restart.)
    pub fn restart(&self, down: Duration, boot: Duration) {
        let ev = self
            .shared
            .system_event("Shutdown", &[("Shutdown", "Cleanly"), ("Restart", "True")]);
        {
            // Hold the generator lock so no Cdr slips in between the event and the close.
            let _generator = lock(&self.shared.generator);
            let mut hub = lock(&self.shared.hub);
            hub.broadcast(class::SYSTEM, &ev);
            hub.close_all(Duration::from_millis(10));
            self.shared.phase.send_replace(Phase::Down);
        }
        self.shared.restarts.fetch_add(1, Ordering::Relaxed);
        let shared = self.shared.clone();
        let mut stop = shared.stop.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = shared.clock.sleep(down) => {}
                _ = stop.changed() => return,
            }
            {
                let mut generator = lock(&shared.generator);
                generator.restart();
                let now = shared.clock.now();
                *lock(&shared.boot) = Boot {
                    started: now,
                    last_reload: now,
                };
                shared.phase.send_replace(Phase::Booting);
            }
            tokio::select! {
                _ = shared.clock.sleep(boot) => {}
                _ = stop.changed() => return,
            }
            let mut generator = lock(&shared.generator);
            // Calls due while booting were only counted, but they used the counters; a fresh
            // Asterisk's first call after FullyBooted is `.1` / Sequence 0.
            generator.restart();
            shared.phase.send_replace(Phase::Up);
            let t = shared.pbx_time();
            let (up, reload) = (t.uptime.to_string(), t.last_reload.to_string());
            let booted = shared.system_event(
                "FullyBooted",
                &[
                    ("Uptime", &up),
                    ("LastReload", &reload),
                    ("Status", "Fully Booted"),
                ],
            );
            lock(&shared.hub).broadcast(class::SYSTEM, &booted);
            drop(generator);
        });
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

async fn generate(shared: Arc<Shared>) {
    let rate = shared.opts.rate_per_sec;
    if rate <= 0.0 {
        return;
    }
    let mut halt = shared.halt.subscribe();
    let mut rng = fastrand::Rng::with_seed(shared.opts.generator.seed ^ 0x6172_7269_7661_6c73);
    let clock = shared.clock.clone();
    let t0 = clock.now();
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
        if at > clock.now() {
            since_yield = 0;
            tokio::select! {
                _ = clock.sleep_until(at) => {}
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
