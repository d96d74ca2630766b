//! In-memory [`Backend`] for the web tests: records in a `Vec`, a config text, subscribers.
//! `apply_config` checks the text the way the real one will (TOML, a PBX port) and "applies" it
//! by updating the status links, so tests can see a setting take effect.
#![allow(dead_code)]

pub mod http_head;

use std::io;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};

use cdrbox::filter::{Filter, Page, Sort};
use cdrbox::record::{CallRecord, CdrTime, Direction, Disposition};
use cdrbox::status::{LinkState, LinkStatus, StatusView};
use cdrbox::web::{Backend, BackendError, Gap};

pub const CONFIG: &str = r#"# cdrbox test config
[box]
name = "test-box" # the name

[[pbx]]
name = "main"
# AMI address
host = "10.0.0.2"
port = 5038
username = "cdrbox"
secret = "ami-secret-XYZ"
timezone = "Europe/Moscow"

[web]
listen = "127.0.0.1:0"
"#;

#[derive(Default)]
pub struct MemBackend {
    pub records: Mutex<Vec<CallRecord>>,
    subscribers: Mutex<Vec<Sender<CallRecord>>>,
    pub config: Mutex<String>,
    pub applied: Mutex<u32>,
    pub png: Option<Vec<u8>>,
}

impl MemBackend {
    pub fn new(records: Vec<CallRecord>) -> Arc<Self> {
        Arc::new(Self {
            records: Mutex::new(records),
            config: Mutex::new(CONFIG.to_string()),
            ..Default::default()
        })
    }

    /// A new record arrives (journal commit): stored and sent to every live subscriber.
    pub fn push(&self, r: CallRecord) {
        self.records.lock().unwrap().push(r.clone());
        self.subscribers
            .lock()
            .unwrap()
            .retain(|s| s.send(r.clone()).is_ok());
    }

    pub fn subscribers(&self) -> usize {
        self.subscribers.lock().unwrap().len()
    }

    fn matching(&self, f: &Filter, sort: Sort) -> Vec<CallRecord> {
        let mut v: Vec<CallRecord> = self
            .records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| matches(f, r))
            .cloned()
            .collect();
        let start = |r: &CallRecord| r.start.utc.unwrap_or(0);
        match sort {
            Sort::StartDesc => v.sort_by_key(|r| std::cmp::Reverse(start(r))),
            Sort::StartAsc => v.sort_by_key(start),
            Sort::DurationDesc => v.sort_by_key(|r| std::cmp::Reverse(r.duration)),
            Sort::DurationAsc => v.sort_by_key(|r| r.duration),
        }
        v
    }
}

fn contains(hay: &str, needle: &Option<String>) -> bool {
    needle
        .as_ref()
        .is_none_or(|n| hay.to_lowercase().contains(&n.to_lowercase()))
}

pub fn matches(f: &Filter, r: &CallRecord) -> bool {
    let start = r.start.utc.unwrap_or(0);
    f.from_utc.is_none_or(|t| start >= t)
        && f.to_utc.is_none_or(|t| start < t)
        && (f.dispositions.is_empty() || f.dispositions.contains(&r.disposition))
        && (f.directions.is_empty() || f.directions.contains(&r.direction))
        && (f.pbx.is_empty() || f.pbx.contains(&r.pbx))
        && (contains(&r.source, &f.source_contains)
            || contains(&r.caller_id, &f.source_contains)
            || f.source_numbers.contains(&r.source))
        && (contains(&r.destination, &f.destination_contains)
            || f.destination_numbers.contains(&r.destination))
        && f.account_code.as_ref().is_none_or(|a| &r.account_code == a)
        && f.queue.as_ref().is_none_or(|q| r.queue.as_ref() == Some(q))
        && f.agent.as_ref().is_none_or(|a| r.agent.as_ref() == Some(a))
        && f.min_duration.is_none_or(|d| r.duration >= d)
        && f.max_duration.is_none_or(|d| r.duration <= d)
}

impl Backend for MemBackend {
    /// `[names]` of the current config text (nothing learned: no record sink here).
    fn names(&self) -> cdrbox::names::Names {
        let text = self.config.lock().unwrap().clone();
        let root = cdrbox::config::parse::normalize(&text).root;
        let configured = root
            .get("names")
            .and_then(toml::Value::as_table)
            .map(|t| {
                t.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        cdrbox::names::Names::new(configured, Default::default())
    }

    fn status(&self) -> StatusView {
        let cfg = self.config.lock().unwrap().clone();
        let doc: toml_edit::DocumentMut = cfg.parse().unwrap();
        let links = doc["pbx"]
            .as_array_of_tables()
            .map(|a| {
                a.iter()
                    .map(|t| LinkStatus {
                        pbx: t["name"].as_str().unwrap_or("").into(),
                        address: format!(
                            "{}:{}",
                            t["host"].as_str().unwrap_or(""),
                            t.get("port").and_then(|p| p.as_integer()).unwrap_or(5038)
                        ),
                        state: LinkState::Up,
                        since_utc: 1_795_330_000,
                        last_record_utc: Some(1_795_331_000),
                        banner: Some("Asterisk Call Manager/11.0.0".into()),
                        records: self.records.lock().unwrap().len() as u64,
                        reconnects: 0,
                        discarded_frames: 0,
                        pbx_clock_skew_ms: None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        StatusView {
            now_utc: 1_795_331_257,
            local_offset_seconds: 3 * 3600,
            box_name: doc
                .get("box")
                .and_then(|b| b.get("name"))
                .and_then(|n| n.as_str())
                .unwrap_or("cdrbox")
                .into(),
            ip_address: Some("10.0.0.50".into()),
            links,
            ..Default::default()
        }
    }

    fn count(&self, f: &Filter) -> Result<u64, BackendError> {
        Ok(self.matching(f, Sort::StartAsc).len() as u64)
    }

    fn query(&self, f: &Filter, sort: Sort, page: Page) -> Result<Vec<CallRecord>, BackendError> {
        Ok(self
            .matching(f, sort)
            .into_iter()
            .skip(page.offset as usize)
            .take(page.limit as usize)
            .collect())
    }

    fn for_each(
        &self,
        f: &Filter,
        sort: Sort,
        each: &mut dyn FnMut(&CallRecord) -> io::Result<()>,
    ) -> Result<(), BackendError> {
        // Walk by index without cloning the whole set, like a cursor would.
        let n = self.records.lock().unwrap().len();
        if sort == Sort::StartAsc && self.is_sorted_asc() {
            for i in 0..n {
                let r = self.records.lock().unwrap()[i].clone();
                if matches(f, &r) {
                    each(&r)?;
                }
            }
            return Ok(());
        }
        for r in self.matching(f, sort) {
            each(&r)?;
        }
        Ok(())
    }

    fn subscribe(&self) -> cdrbox::journal::Subscription {
        let (tx, rx) = channel();
        self.subscribers.lock().unwrap().push(tx);
        rx.into()
    }

    fn config_text(&self) -> String {
        self.config.lock().unwrap().clone()
    }

    fn apply_config(&self, new_text: &str) -> Result<(), BackendError> {
        let doc: toml_edit::DocumentMut = new_text.parse().map_err(|e| BackendError::Invalid {
            field: "config".into(),
            message: format!("{e}"),
        })?;
        if let Some(a) = doc.get("pbx").and_then(|p| p.as_array_of_tables()) {
            for (i, t) in a.iter().enumerate() {
                if t.get("host")
                    .and_then(|h| h.as_str())
                    .is_some_and(|h| h.contains(' '))
                {
                    return Err(BackendError::Invalid {
                        field: format!("pbx[{i}].host"),
                        message: "a host name has no spaces".into(),
                    });
                }
            }
        }
        *self.config.lock().unwrap() = new_text.to_string();
        *self.applied.lock().unwrap() += 1;
        Ok(())
    }

    fn display_png(&self) -> Option<Vec<u8>> {
        self.png.clone()
    }

    fn gaps(&self, _from: i64, _to: i64) -> Vec<Gap> {
        vec![Gap {
            pbx: "main".into(),
            from_utc: 1_795_320_000,
            to_utc: Some(1_795_320_060),
            reason: "connection refused".into(),
            filled: None,
        }]
    }

    fn timezone(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get("Europe/Moscow").unwrap()
    }
}

impl MemBackend {
    fn is_sorted_asc(&self) -> bool {
        self.records
            .lock()
            .unwrap()
            .windows(2)
            .all(|w| w[0].start.utc <= w[1].start.utc)
    }
}

/// A record `i` seconds after 2026-11-22 10:00:00 Moscow (07:00 UTC).
pub fn record(i: i64) -> CallRecord {
    let t0 = 1_795_330_800;
    let start = t0 + i;
    let t = |u: i64| CdrTime {
        raw: String::new(),
        utc: Some(u),
        offset_seconds: 3 * 3600,
    };
    let answered = (i / 60) % 3 != 0;
    CallRecord {
        pbx: "main".into(),
        unique_id: format!("1795330800.{i}"),
        account_code: String::new(),
        source: format!("+7495{:07}", i % 10_000_000),
        destination: "100".into(),
        destination_context: "from-trunk".into(),
        caller_id: "\"Иванов Пётр\" <+74951234567>".into(),
        channel: "PJSIP/trunk-00000001".into(),
        destination_channel: "PJSIP/1001-00000002".into(),
        last_application: "Dial".into(),
        last_data: "PJSIP/1001,30".into(),
        start: t(start),
        answer: answered.then(|| t(start + 5)),
        end: t(start + 65),
        duration: 65,
        billable_seconds: if answered { 60 } else { 0 },
        disposition: if answered {
            Disposition::Answered
        } else {
            Disposition::NoAnswer
        },
        ama_flags: "DOCUMENTATION".into(),
        user_field: String::new(),
        direction: Direction::Inbound,
        ring_seconds: if answered { 5 } else { 65 },
        queue: None,
        agent: Some("1001".into()),
        linked_id: Some(format!("1795330800.{i}")),
        sequence: Some(i),
        custom_fields: vec![("LinkedID".into(), format!("1795330800.{i}"))],
        raw: vec![],
        received_utc: start + 65,
        identity: [0; 16],
        origin: Default::default(),
    }
}
