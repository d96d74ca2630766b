//! Fault tests for the AMI client against a scripted fake PBX on 127.0.0.1 (one test per fault).
//!
//! Each test asserts that every Cdr sent whole reaches the sink exactly once, byte-exact, and
//! that nothing partial does. Real time with millisecond time-outs keeps the file fast.

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cdrbox::ami::{AmiMessage, Limits};
use cdrbox::config::{AuthMethod, Secret};
use cdrbox::record::CallRecord;
use cdrbox::sink::{DownKind, LinkEvent, RecordSink};
use support::fake_ami::{captured_shutdown_event, cdr_event, fixture, FakeAmi, LoginResult, Pong};
use support::*;

const LONG: Duration = Duration::from_secs(10);

fn cdrs(ids: &[&str]) -> Vec<Vec<u8>> {
    ids.iter()
        .map(|id| cdr_event(id, b"\"Alice Smith\" <1001>"))
        .collect()
}

/// Waits until the sink holds `n` records, then a little more to catch duplicates.
async fn expect_records(sink: &TestSink, n: usize) {
    wait_for(&format!("{n} records"), LONG, || sink.count() >= n).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(sink.count(), n, "exactly {n} records, no duplicates");
}

#[tokio::test]
async fn banner_and_response_split_across_reads() {
    let sent = cdrs(&["1.1", "1.2", "1.3"]);
    let to_send = sent.clone();
    let fake = FakeAmi::start(move |mut c| {
        let to_send = to_send.clone();
        async move {
            let w = c.writer.clone();
            let p = Duration::from_millis(2);
            w.send_chunked(support::fake_ami::BANNER, 3, p).await.unwrap();
            let login = c.action().await.unwrap();
            assert_eq!(login.get_str("Action").unwrap(), "Login");
            let id = login.get_str("ActionID").unwrap().into_owned();
            let resp = format!(
                "Response: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n\
                 Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 100\r\nLastReload: 100\r\nStatus: Fully Booted\r\n\r\n"
            );
            w.send_chunked(resp.as_bytes(), 5, p).await.unwrap();
            for cdr in &to_send {
                w.send_chunked(cdr, 7, Duration::from_millis(1)).await.unwrap();
            }
            let _ = c.serve(Pong::Modern).await;
        }
    })
    .await;
    let run = start(link_config(fake.addr, AuthMethod::Plain));
    expect_records(&run.sink, 3).await;
    assert_eq!(run.sink.raws(), sent);
    assert_eq!(run.sink.ups(), vec![false]);
    let sink = run.stop().await;
    match &sink.events()[1] {
        LinkEvent::Up { banner, .. } => {
            assert_eq!(banner.as_deref(), Some("Asterisk Call Manager/11.0.0"))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn cdr_one_byte_per_read() {
    let sent = cdrs(&["1795331226.1", "1795331226.2"]);
    let to_send = sent.clone();
    let fake = FakeAmi::start(move |mut c| {
        let to_send = to_send.clone();
        async move {
            let Some(done) = c.open(Pong::Modern, Some(100)).await else {
                return;
            };
            c.writer
                .send_chunked(&to_send[0], 1, Duration::from_micros(300))
                .await
                .unwrap();
            c.send(&to_send[1]).await.unwrap();
            let _ = done.await;
        }
    })
    .await;
    let run = start(link_config(fake.addr, AuthMethod::Md5));
    expect_records(&run.sink, 2).await;
    assert_eq!(run.sink.raws(), sent);
    run.stop().await;
}

#[tokio::test]
async fn thousand_cdrs_in_one_write() {
    let ids: Vec<String> = (0..1000).map(|i| format!("1795331226.{i}")).collect();
    let sent: Vec<Vec<u8>> = ids.iter().map(|id| cdr_event(id, b"\"\" <>")).collect();
    let fake = FakeAmi::delivering(sent.concat()).await;
    let run = start(link_config(fake.addr, AuthMethod::Md5));
    expect_records(&run.sink, 1000).await;
    assert_eq!(run.sink.raws(), sent, "all 1000, in order, byte-exact");
    run.stop().await;
}

#[tokio::test]
async fn utf8_character_split_across_reads() {
    let name = "\"Иван Петров\" <1003>".as_bytes();
    let cdr = cdr_event("1795331300.5", name);
    // Cut inside the two-byte `И` (d0 98).
    let cut = cdr.windows(2).position(|w| w == [0xd0, 0x98]).unwrap() + 1;
    let to_send = cdr.clone();
    let fake = FakeAmi::start(move |mut c| {
        let to_send = to_send.clone();
        async move {
            let Some(done) = c.open(Pong::Modern, None).await else {
                return;
            };
            c.send(&to_send[..cut]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
            c.send(&to_send[cut..]).await.unwrap();
            let _ = done.await;
        }
    })
    .await;
    let run = start(link_config(fake.addr, AuthMethod::Plain));
    expect_records(&run.sink, 1).await;
    assert_eq!(run.sink.raws(), vec![cdr]);
    let rec = run.sink.records.lock().unwrap()[0].clone();
    assert_eq!(rec.caller_id, "\"Иван Петров\" <1003>");
    run.stop().await;
}

#[tokio::test]
async fn latin1_and_cp1251_bytes_are_kept_raw() {
    let sent = vec![
        cdr_event("1.1", b"\"\xc9milie M\xfcller\" <1001>"), // Latin-1
        cdr_event("1.2", b"\"\xcf\xe5\xf2\xf0\xee\xe2\" <1002>"), // CP1251 "Петров"
    ];
    let fake = FakeAmi::delivering(sent.concat()).await;
    let run = start(link_config(fake.addr, AuthMethod::Plain));
    expect_records(&run.sink, 2).await;
    assert_eq!(run.sink.raws(), sent, "raw bytes unchanged");
    let msg = AmiMessage::parse(&run.sink.raws()[1]).unwrap();
    assert_eq!(
        msg.get("CallerID").unwrap(),
        b"\"\xcf\xe5\xf2\xf0\xee\xe2\" <1002>"
    );
    run.stop().await;
}

#[tokio::test]
async fn field_cut_mid_character_at_79_bytes() {
    // ast_callerid_merge into an 80-byte buffer: 79 bytes, the last one half of `в` (d0 b2).
    let mut clid = b"\"".to_vec();
    while clid.len() < 78 {
        clid.extend_from_slice("в".as_bytes());
    }
    clid.truncate(78);
    clid.push(0xd0);
    assert_eq!(clid.len(), 79);
    assert!(std::str::from_utf8(&clid).is_err());
    let sent = vec![cdr_event("1.79", &clid), cdr_event("1.80", b"\"ok\" <1>")];
    let fake = FakeAmi::delivering(sent.concat()).await;
    let run = start(link_config(fake.addr, AuthMethod::Plain));
    expect_records(&run.sink, 2).await;
    assert_eq!(run.sink.raws(), sent);
    let msg = AmiMessage::parse(&run.sink.raws()[0]).unwrap();
    assert_eq!(msg.get("CallerID").unwrap(), &clid[..]);
    assert!(
        run.sink.downs().is_empty(),
        "a bad byte never ends the session"
    );
    run.stop().await;
}

#[tokio::test]
async fn five_megabyte_message_without_terminator_then_valid_cdr() {
    let good = cdrs(&["7.1", "7.2"]);
    let to_send = good.clone();
    let fake = FakeAmi::start(move |mut c| {
        let to_send = to_send.clone();
        async move {
            let Some(done) = c.open(Pong::Modern, None).await else {
                return;
            };
            c.send(&to_send[0]).await.unwrap();
            // A runaway event: 5 MB of header lines and no blank line, in network-sized writes.
            c.send(b"Event: Runaway\r\nPrivilege: call,all\r\n")
                .await
                .unwrap();
            let line =
                b"Variable: 0123456789012345678901234567890123456789012345678901234567890\r\n";
            let block: Vec<u8> = line.repeat(64 * 1024 / line.len());
            let mut sent = 0;
            while sent < 5_000_000 {
                c.send(&block).await.unwrap();
                sent += block.len();
            }
            // Then a 5 MB line with no line end at all.
            c.send(b"\r\n\r\nEvent: Garbage\r\nX: ").await.unwrap();
            let junk = vec![b'z'; 64 * 1024];
            for _ in 0..80 {
                c.send(&junk).await.unwrap();
            }
            c.send(b"\r\n").await.unwrap();
            c.send(&to_send[1]).await.unwrap();
            let _ = done.await;
        }
    })
    .await;
    let mut cfg = link_config(fake.addr, AuthMethod::Plain);
    cfg.limits = Limits {
        max_line: 4096,
        max_message: 256 * 1024,
    };
    let run = start(cfg);
    expect_records(&run.sink, 2).await;
    assert_eq!(
        run.sink.raws(),
        good,
        "the Cdr after the junk is captured whole"
    );
    assert!(
        run.sink.discarded() >= 10_000_000,
        "discarded bytes are reported: {}",
        run.sink.discarded()
    );
    assert!(run.sink.downs().is_empty(), "resync without reconnecting");
    run.stop().await;
}

#[tokio::test]
async fn events_between_an_action_and_its_response() {
    let fake = FakeAmi::start(|mut c| async move {
        if c.login(None, Duration::ZERO, Some(50)).await != LoginResult::Accepted {
            return;
        }
        let mut n = 0;
        while let Some(a) = c.action().await {
            if a.get_str("Action").unwrap().eq_ignore_ascii_case("ping") {
                let id = a.get_str("ActionID").unwrap().into_owned();
                // Events queued before the pong, and a pong for somebody else's ping.
                let mut out = Vec::new();
                out.extend(cdr_event(&format!("2.{n}"), b"\"\" <>"));
                out.extend(b"Event: Newchannel\r\nPrivilege: call,all\r\nUniqueid: 3.3\r\n\r\n");
                out.extend(b"Response: Success\r\nActionID: someone-else\r\nPing: Pong\r\n\r\n");
                out.extend(cdr_event(&format!("2.{n}b"), b"\"\" <>"));
                out.extend(format!("Response: Success\r\nActionID: {id}\r\nPing: Pong\r\nTimestamp: 1.0\r\n\r\n").as_bytes());
                c.send(&out).await.unwrap();
                n += 1;
            }
        }
    })
    .await;
    let mut cfg = link_config(fake.addr, AuthMethod::Md5);
    cfg.session.ping_interval = Duration::from_millis(40);
    cfg.session.ping_timeout = Duration::from_millis(500);
    let run = start(cfg);
    // Pings go on every 40 ms, each bringing two more records.
    wait_for("6 records", LONG, || run.sink.count() >= 6).await;
    let sink = run.stop().await;
    let ids: Vec<_> = sink
        .records
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.unique_id.clone())
        .collect();
    assert_eq!(&ids[..6], ["2.0", "2.0b", "2.1", "2.1b", "2.2", "2.2b"]);
    assert_eq!(
        fake.stats.connections(),
        1,
        "no reconnect: every pong was matched"
    );
}

#[tokio::test]
async fn both_pong_forms_keep_the_link_up() {
    for pong in [Pong::Modern, Pong::Legacy] {
        let fake = FakeAmi::start(move |mut c| async move {
            if let Some(done) = c.open(pong, None).await {
                let _ = done.await;
            }
        })
        .await;
        let mut cfg = link_config(fake.addr, AuthMethod::Plain);
        cfg.session.ping_interval = Duration::from_millis(30);
        cfg.session.ping_timeout = Duration::from_millis(200);
        let run = start(cfg);
        let stats = fake.stats.clone();
        wait_for("6 pings", LONG, || stats.pings.load(Ordering::SeqCst) >= 6).await;
        let sink = run.stop().await;
        assert_eq!(fake.stats.connections(), 1, "{pong:?}: never reconnected");
        let downs = sink.downs();
        assert_eq!(downs.len(), 1, "{pong:?}: only the final stop: {downs:?}");
        assert!(downs[0].1.contains("stopping"));
        assert_eq!(
            fake.stats.logoffs.load(Ordering::SeqCst),
            1,
            "Logoff sent on shutdown"
        );
    }
}

/// A PBX that answers each login after `delay`, then closes, and a link (`auth`) to it whose
/// secret is wrong. Asterisk answers a bad login after sleep(1); shortened here.
async fn wrong_secret(auth: AuthMethod, delay: Duration) -> (FakeAmi, cdrbox::ami::LinkConfig) {
    let fake = FakeAmi::start(move |mut c| async move {
        let _ = c.login(None, delay, None).await;
    })
    .await;
    let mut cfg = link_config(fake.addr, auth);
    cfg.session.secret = Secret("wrong".into());
    (fake, cfg)
}

#[tokio::test]
async fn wrong_secret_is_reported_as_auth_failure_and_retried_slowly() {
    let (fake, cfg) = wrong_secret(AuthMethod::Plain, Duration::from_millis(100)).await;
    let auth_first = cfg.backoff.auth_first;
    let run = start(cfg);
    let stats = fake.stats.clone();
    wait_for("3 login attempts", LONG, || stats.logins() >= 3).await;
    let sink = run.stop().await;
    let times = fake.stats.login_times.lock().unwrap().clone();
    // Reject after 100 ms, then at least the auth backoff (the ordinary one is ≤ 20 ms here).
    assert!(
        times[1] - times[0] >= auth_first + Duration::from_millis(100),
        "{:?}",
        times[1] - times[0]
    );
    assert!(
        times[2] - times[1] >= 2 * auth_first,
        "grows: {:?}",
        times[2] - times[1]
    );
    let downs = sink.downs();
    assert_eq!(downs[0].0, DownKind::AuthFailed);
    assert!(
        downs[0].1.contains("rejected username 'logger'") && downs[0].1.contains("secret"),
        "{}",
        downs[0].1
    );
    assert!(sink.ups().is_empty());
}

#[tokio::test]
async fn wrong_md5_key_is_an_auth_failure_too() {
    let (_fake, cfg) = wrong_secret(AuthMethod::Md5, Duration::from_millis(10)).await;
    let run = start(cfg);
    wait_for("a down event", LONG, || !run.sink.downs().is_empty()).await;
    let sink = run.stop().await;
    assert_eq!(sink.downs()[0].0, DownKind::AuthFailed);
}

#[tokio::test]
async fn connection_dropped_in_the_middle_of_an_event() {
    let first = cdr_event("4.1", b"\"A\" <1>");
    let cut = cdr_event("4.2", b"\"B\" <2>");
    let later = cdr_event("4.3", b"\"C\" <3>");
    let (f, c2, l) = (first.clone(), cut.clone(), later.clone());
    let fake = FakeAmi::start(move |mut c| {
        let (f, c2, l) = (f.clone(), c2.clone(), l.clone());
        async move {
            let Some(done) = c.open(Pong::Modern, None).await else {
                return;
            };
            if c.index == 0 {
                c.send(&f).await.unwrap();
                c.send(&c2[..c2.len() / 2]).await.unwrap();
                c.writer.close().await;
            } else {
                c.send(&l).await.unwrap();
            }
            let _ = done.await;
        }
    })
    .await;
    let run = start(link_config(fake.addr, AuthMethod::Plain));
    expect_records(&run.sink, 2).await;
    assert_eq!(
        run.sink.raws(),
        vec![first, later],
        "the cut event is never stored"
    );
    assert_eq!(fake.stats.connections(), 2);
    let sink = run.stop().await;
    assert_eq!(sink.downs()[0].0, DownKind::Transient);
    assert!(
        sink.discarded() > 0,
        "the partial event is counted as discarded"
    );
}

#[tokio::test]
async fn silent_half_open_link_is_detected_within_two_ping_intervals() {
    let fake = FakeAmi::start(|mut c| async move {
        let pong = if c.index == 0 {
            Pong::Silent
        } else {
            Pong::Modern
        };
        let Some(done) = c.open(pong, None).await else {
            return;
        };
        if c.index == 1 {
            c.send(&cdr_event("5.1", b"\"\" <>")).await.unwrap();
        }
        let _ = done.await;
    })
    .await;
    let interval = Duration::from_millis(500);
    let mut cfg = link_config(fake.addr, AuthMethod::Plain);
    cfg.session.ping_interval = interval;
    cfg.session.ping_timeout = Duration::from_millis(250);
    let run = start(cfg);
    expect_records(&run.sink, 1).await;
    let sink = run.stop().await;
    let times = sink.event_times.lock().unwrap().clone();
    let login_ok = fake.stats.login_times.lock().unwrap()[0];
    let down = times
        .iter()
        .find_map(|(t, e)| matches!(e, LinkEvent::Down { .. }).then_some(*t))
        .unwrap();
    let detected = down - login_ok;
    assert!(
        detected >= interval,
        "not before a ping was due: {detected:?}"
    );
    assert!(
        detected <= 2 * interval,
        "within two ping intervals: {detected:?}"
    );
    assert!(sink.downs()[0].1.contains("pings"), "{}", sink.downs()[0].1);
    assert_eq!(fake.stats.connections(), 2, "reconnected");
}

#[tokio::test]
async fn pbx_restart_cdrs_after_shutdown_are_kept_and_restart_is_detected() {
    let shutdown = captured_shutdown_event();
    let before = cdrs(&["8.1", "8.2"]);
    let after = cdrs(&["8.3"]);
    let (b, a) = (before.clone(), after.clone());
    let fake = FakeAmi::start(move |mut c| {
        let (shutdown, b, a) = (shutdown.clone(), b.clone(), a.clone());
        async move {
            if c.index == 0 {
                let Some(done) = c.open(Pong::Modern, Some(86_400)).await else {
                    return;
                };
                // Shutdown first, then the CDRs of the calls it hung up, then the close.
                let mut out = shutdown.clone();
                out.extend(b.concat());
                c.send(&out).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
                c.writer.close().await;
                let _ = done.await;
            } else {
                let Some(done) = c.open(Pong::Modern, Some(1)).await else {
                    return;
                };
                c.send(&a[0]).await.unwrap();
                let _ = done.await;
            }
        }
    })
    .await;
    let run = start(link_config(fake.addr, AuthMethod::Md5));
    expect_records(&run.sink, 3).await;
    let sink = run.stop().await;
    assert_eq!(sink.raws(), [before, after].concat());
    assert_eq!(
        sink.ups(),
        vec![false, true],
        "the second FullyBooted shows a new boot"
    );
    let downs = sink.downs();
    assert_eq!(downs[0].0, DownKind::PbxShutdown, "{}", downs[0].1);
}

#[tokio::test]
async fn login_already_in_use_is_retried() {
    let fake = FakeAmi::start(|mut c| async move {
        if c.index == 0 {
            c.refuse_in_use(Duration::from_millis(50)).await;
        } else {
            c.deliver(&cdr_event("9.1", b"\"\" <>")).await;
        }
    })
    .await;
    let run = start(link_config(fake.addr, AuthMethod::Plain));
    expect_records(&run.sink, 1).await;
    let sink = run.stop().await;
    let downs = sink.downs();
    assert_eq!(downs[0].0, DownKind::LoginInUse);
    assert!(downs[0].1.contains("allowmultiplelogin"), "{}", downs[0].1);
    assert_eq!(sink.ups(), vec![false]);
}

#[tokio::test]
async fn replays_a_real_capture_after_login() {
    // Everything mixed_session.bin received after its login response: 543 events with 20 Cdrs,
    // stale keep-alive pongs (`keepalive-N`), a Reload event.
    let bytes = std::fs::read(fixture("mixed_session.bin")).unwrap();
    let login_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let tail = bytes[login_end..].to_vec();
    let expected = cdr_raws(&tail);
    assert_eq!(expected.len(), 20);
    let fake = FakeAmi::start(move |mut c| {
        let tail = tail.clone();
        async move {
            let Some(done) = c.open(Pong::Modern, None).await else {
                return;
            };
            c.writer
                .send_chunked(&tail, 1448, Duration::ZERO)
                .await
                .unwrap();
            let _ = done.await;
        }
    })
    .await;
    let run = start(link_config(fake.addr, AuthMethod::Plain));
    expect_records(&run.sink, 20).await;
    assert_eq!(run.sink.raws(), expected);
    let sink = run.stop().await;
    assert_eq!(sink.downs().len(), 1, "only the stop");
}

/// A sink whose consumer (the journal) is stalled: `record` only queues, never waits.
struct StalledSink {
    tx: std::sync::Mutex<std::sync::mpsc::Sender<CallRecord>>,
    downs: AtomicUsize,
}

impl RecordSink for StalledSink {
    fn record(&self, record: CallRecord) {
        let _ = self.tx.lock().unwrap().send(record);
    }
    fn link_event(&self, _pbx: &str, _at: i64, event: LinkEvent) {
        if matches!(event, LinkEvent::Down { .. }) {
            self.downs.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_consumer_never_blocks_the_pbx_writes() {
    const TOTAL: usize = 5000;
    // 1,000 Cdr/s for 5 s, in batches of 10 every 10 ms.
    let fake = FakeAmi::cdr_stream("11", TOTAL, Duration::from_millis(10)).await;
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = Arc::new(StalledSink {
        tx: std::sync::Mutex::new(tx),
        downs: AtomicUsize::new(0),
    });
    let consumer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(5)); // the journal is stuck
        let mut ids = Vec::new();
        while ids.len() < TOTAL {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(r) => ids.push(r.unique_id),
                Err(_) => break,
            }
        }
        ids
    });
    let (stop, task) = start_dyn(link_config(fake.addr, AuthMethod::Plain), sink.clone());
    let ids = tokio::task::spawn_blocking(move || consumer.join().unwrap())
        .await
        .unwrap();
    let _ = stop.send(true);
    task.await.unwrap();
    assert_eq!(ids.len(), TOTAL);
    let expected: Vec<String> = (0..TOTAL).map(|i| format!("11.{i}")).collect();
    assert_eq!(ids, expected, "all delivered once, in order");
    assert_eq!(fake.stats.connections(), 1, "no disconnect");
    assert_eq!(sink.downs.load(Ordering::SeqCst), 1, "only the final stop");
    let max = fake.stats.max_write();
    assert!(
        max < Duration::from_millis(100),
        "a PBX write blocked for {max:?}"
    );
}
