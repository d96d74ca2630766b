//! Shared helpers for the AMI integration tests: an in-memory sink, a record builder standing in
//! for `CallRecord::from_event`, a link config with millisecond time-outs, and polling waits.
#![allow(dead_code)]

pub mod fake_ami;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdrbox::ami::{AmiMessage, BackoffConfig, Limits, LinkConfig, SessionConfig, ToRecord};
use cdrbox::config::{AuthMethod, Secret};
use cdrbox::record::{CallRecord, CdrTime, Direction, Disposition};
use cdrbox::sink::{DownKind, LinkEvent, RecordSink};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A record with every field filled: unique id and raw bytes from the event, the rest fixed.
pub fn record_of(msg: &AmiMessage, received_utc: i64) -> CallRecord {
    let t = |raw: &str| CdrTime {
        raw: raw.to_string(),
        utc: None,
        offset_seconds: 0,
    };
    CallRecord {
        pbx: "pbx1".into(),
        unique_id: msg.get_str("UniqueID").unwrap_or_default().into_owned(),
        account_code: String::new(),
        source: String::new(),
        destination: String::new(),
        destination_context: String::new(),
        caller_id: msg.get_str("CallerID").unwrap_or_default().into_owned(),
        channel: String::new(),
        destination_channel: String::new(),
        last_application: String::new(),
        last_data: String::new(),
        start: t(""),
        answer: None,
        end: t(""),
        duration: 0,
        billable_seconds: 0,
        disposition: Disposition::Unknown,
        ama_flags: String::new(),
        user_field: String::new(),
        direction: Direction::Unknown,
        ring_seconds: 0,
        queue: None,
        agent: None,
        linked_id: None,
        sequence: None,
        custom_fields: Vec::new(),
        raw: msg.raw().to_vec(),
        received_utc,
        identity: [0; 16],
        origin: Default::default(),
    }
}

pub fn to_record() -> ToRecord {
    Arc::new(record_of)
}

/// Collects everything; never blocks (a mutex held only for a push).
#[derive(Default)]
pub struct TestSink {
    pub records: Mutex<Vec<CallRecord>>,
    pub events: Mutex<Vec<LinkEvent>>,
    /// When each event was reported, by the test's clock.
    pub event_times: Mutex<Vec<(Instant, LinkEvent)>>,
}

impl RecordSink for TestSink {
    fn record(&self, record: CallRecord) {
        self.records.lock().unwrap().push(record);
    }
    fn link_event(&self, pbx: &str, _at_utc: i64, event: LinkEvent) {
        assert_eq!(pbx, "pbx1");
        self.event_times
            .lock()
            .unwrap()
            .push((Instant::now(), event.clone()));
        self.events.lock().unwrap().push(event);
    }
}

impl TestSink {
    pub fn raws(&self) -> Vec<Vec<u8>> {
        self.records
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.raw.clone())
            .collect()
    }
    pub fn count(&self) -> usize {
        self.records.lock().unwrap().len()
    }
    pub fn events(&self) -> Vec<LinkEvent> {
        self.events.lock().unwrap().clone()
    }
    pub fn ups(&self) -> Vec<bool> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                LinkEvent::Up { pbx_restarted, .. } => Some(pbx_restarted),
                _ => None,
            })
            .collect()
    }
    pub fn downs(&self) -> Vec<(DownKind, String)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                LinkEvent::Down { kind, reason } => Some((kind, reason)),
                _ => None,
            })
            .collect()
    }
    pub fn discarded(&self) -> usize {
        self.events()
            .into_iter()
            .map(|e| match e {
                LinkEvent::Discarded { bytes } => bytes,
                _ => 0,
            })
            .sum()
    }
}

/// A link to `addr` with short, test-sized time-outs and a near-zero backoff.
pub fn link_config(addr: std::net::SocketAddr, auth: AuthMethod) -> LinkConfig {
    let session = SessionConfig {
        ping_interval: Duration::from_secs(30),
        ping_timeout: Duration::from_secs(10),
        banner_timeout: Duration::from_secs(2),
        login_timeout: Duration::from_secs(3),
        boot_grace: Duration::from_millis(50),
        ..SessionConfig::new(fake_ami::USER, Secret(fake_ami::SECRET.into()), auth)
    };
    LinkConfig {
        pbx: "pbx1".into(),
        addr: addr.to_string(),
        session,
        connect_timeout: Duration::from_secs(2),
        limits: Limits::default(),
        backoff: BackoffConfig {
            quick_interval: Duration::from_millis(5),
            quick_retries: 2,
            factor: 2,
            cap: Duration::from_millis(20),
            stable_after: Duration::from_secs(2),
            restart_poll: Duration::from_millis(10),
            restart_window: Duration::from_secs(2),
            in_use_interval: Duration::from_millis(10),
            in_use_cap: Duration::from_millis(40),
            auth_first: Duration::from_millis(400),
            auth_cap: Duration::from_millis(2000),
        },
        write_timeout: Duration::from_secs(2),
        logoff_timeout: Duration::from_millis(500),
    }
}

/// A running link; dropping it does not stop the task, call [`Running::stop`].
pub struct Running {
    pub sink: Arc<TestSink>,
    pub stop: watch::Sender<bool>,
    pub task: JoinHandle<()>,
}

impl Running {
    pub async fn stop(self) -> Arc<TestSink> {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("run_link returns promptly on shutdown")
            .unwrap();
        self.sink
    }
}

pub fn start(cfg: LinkConfig) -> Running {
    start_with(cfg, Arc::new(TestSink::default()))
}

pub fn start_with(cfg: LinkConfig, sink: Arc<TestSink>) -> Running {
    let (stop, task) = start_dyn(cfg, sink.clone());
    Running { sink, stop, task }
}

/// Starts `run_link` with any sink; returns the shutdown sender and the task.
pub fn start_dyn(
    cfg: LinkConfig,
    sink: Arc<dyn RecordSink>,
) -> (watch::Sender<bool>, JoinHandle<()>) {
    let (stop, rx) = watch::channel(false);
    let clock = cdrbox::clock::Clock::fixed_wall(1_795_331_226);
    let task = tokio::spawn(cdrbox::ami::run_link(cfg, sink, to_record(), clock, rx));
    (stop, task)
}

/// Polls `cond` every 5 ms until it holds or `limit` passes; panics naming `what` on time-out.
pub async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        if t.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Raw bytes of each whole message in `bytes` that is an `Event: Cdr`.
pub fn cdr_raws(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut dec = cdrbox::ami::Decoder::default();
    let mut buf = bytes::BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(f) = dec.decode(&mut buf) {
        if let cdrbox::ami::Frame::Message(m) = f {
            if m.is_event("cdr") {
                out.push(m.raw().to_vec());
            }
        }
    }
    out
}
