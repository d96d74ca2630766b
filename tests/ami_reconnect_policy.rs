//! The reconnect policy of issue 10 item 3, end to end through `run_link` against the scripted
//! fake PBX on 127.0.0.1: a stable session that drops comes back at once, then about a quick
//! interval apart, then on the ladder; a restarting PBX is polled fast until it is back; a
//! ghost session (`allowmultiplelogin = no`) is retried on its own lane until it clears.
//!
//! Timing: lower bounds are exact (a timer never fires early); upper bounds only separate
//! "immediate" (a loopback reconnect, ~1 ms) from a lane seconds long, with a generous margin.

use crate::support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdrbox::ami::BackoffConfig;
use cdrbox::config::AuthMethod;
use cdrbox::sink::DownKind;
use support::fake_ami::{captured_shutdown_event, cdr_event, FakeAmi, Pong};
use support::*;

const LONG: Duration = Duration::from_secs(30);

fn policy(quick: Duration) -> BackoffConfig {
    BackoffConfig {
        quick_interval: quick,
        quick_retries: 2,
        factor: 2,
        cap: quick * 4,
        stable_after: Duration::from_millis(300),
        restart_poll: Duration::from_millis(100),
        restart_window: Duration::from_secs(10),
        in_use_interval: Duration::from_millis(400),
        in_use_cap: Duration::from_secs(2),
        auth_first: Duration::from_secs(30),
        auth_cap: Duration::from_secs(60),
    }
}

fn gaps(times: &[Instant]) -> Vec<Duration> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test]
async fn a_stable_session_that_drops_reconnects_at_once_then_quickly_then_on_the_ladder() {
    // Connection 0: logged in for 600 ms (stable), then the PBX closes. 1–3: closed before the
    // banner (refused, as far as pacing goes). 4: logged in for good.
    let closed_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let c_at = closed_at.clone();
    let fake = FakeAmi::start(move |mut c| {
        let c_at = c_at.clone();
        async move {
            match c.index {
                0 => {
                    let Some(_serve) = c.open(Pong::Modern, None).await else {
                        return;
                    };
                    tokio::time::sleep(Duration::from_millis(600)).await;
                    *c_at.lock().unwrap() = Some(Instant::now());
                    c.writer.close().await;
                }
                1..=3 => c.writer.close().await,
                _ => c.deliver(&cdr_event("1.1", b"\"\" <>")).await,
            }
        }
    })
    .await;
    let quick = Duration::from_secs(2);
    let mut cfg = link_config(fake.addr, AuthMethod::Plain);
    cfg.backoff = policy(quick);
    let run = start(cfg);
    wait_for("the Cdr after five connections", LONG, || {
        run.sink.count() == 1
    })
    .await;
    let sink = run.stop().await;
    let connects = fake.stats.times_of("connect");
    assert_eq!(connects.len(), 5, "{connects:?}");
    let closed = closed_at.lock().unwrap().expect("connection 0 was closed");
    let immediate = connects[1] - closed;
    assert!(
        immediate < quick / 2,
        "the first reconnect after a stable session waits for nothing: {immediate:?}"
    );
    let g = gaps(&connects);
    let floor = quick.mul_f64(0.9);
    assert!(g[1] >= floor && g[2] >= floor, "two quick retries: {g:?}");
    // The ladder's first ceiling is 2·quick, drawn from [quick, 2·quick].
    assert!(g[3] >= quick, "then the ladder: {g:?}");
    assert_eq!(sink.ups().len(), 2);
    assert!(sink.downs().iter().all(|(k, _)| *k == DownKind::Transient));
}

#[tokio::test]
async fn a_restarting_pbx_is_polled_fast_and_nothing_after_its_return_waits_for_the_ladder() {
    // Connection 0: Event: Shutdown then close. Then the PBX is away for 800 ms (every
    // connection closed at once), then back.
    let back_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let b_at = back_at.clone();
    let shutdown = captured_shutdown_event();
    let fake = FakeAmi::start(move |mut c| {
        let b_at = b_at.clone();
        let shutdown = shutdown.clone();
        async move {
            if c.index == 0 {
                let Some(_serve) = c.open(Pong::Modern, Some(100)).await else {
                    return;
                };
                tokio::time::sleep(Duration::from_millis(400)).await;
                c.send(&shutdown).await.unwrap();
                *b_at.lock().unwrap() = Some(Instant::now() + Duration::from_millis(800));
                c.writer.close().await;
                return;
            }
            let back = b_at.lock().unwrap().expect("set by connection 0");
            if Instant::now() < back {
                c.writer.close().await;
                return;
            }
            let Some(done) = c.open(Pong::Modern, Some(1)).await else {
                return;
            };
            c.send(&cdr_event("2.1", b"\"\" <>")).await.unwrap();
            let _ = done.await;
        }
    })
    .await;
    let quick = Duration::from_secs(3);
    let mut cfg = link_config(fake.addr, AuthMethod::Plain);
    cfg.backoff = policy(quick);
    let run = start(cfg);
    wait_for("the Cdr after the restart", LONG, || run.sink.count() == 1).await;
    let sink = run.stop().await;
    let back = back_at.lock().unwrap().unwrap();
    let logins = fake.stats.times_of("login");
    let connects = fake.stats.times_of("connect");
    let while_away: Vec<_> = connects[1..].iter().filter(|t| **t < back).collect();
    assert!(
        while_away.len() >= 3,
        "polled while the PBX was away (every ~100 ms): {} attempts",
        while_away.len()
    );
    for g in gaps(&connects[1..]) {
        assert!(g >= Duration::from_millis(90), "restart poll spacing {g:?}");
    }
    let late = *logins.last().unwrap() - back;
    assert!(
        late < quick / 2,
        "logged in {late:?} after the PBX was back: the restart poll, not the quick lane"
    );
    assert_eq!(sink.downs()[0].0, DownKind::PbxShutdown);
    assert_eq!(
        sink.ups(),
        vec![false, true],
        "the second login sees the restart"
    );
}

#[tokio::test]
async fn a_ghost_session_is_retried_on_its_own_lane_until_its_tcp_dies() {
    // allowmultiplelogin = no: while a session of the user exists, a login is refused with
    // "Login Already In Use". Connection 0 goes silent (half-open); the link notices by its
    // ping deadline and closes, but the PBX keeps the ghost for 1.5 s more (it notices a dead
    // TCP only when a write to it fails).
    let ghost = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let (g, r) = (ghost.clone(), refused.clone());
    let fake = FakeAmi::start(move |mut c| {
        let (ghost, refused) = (g.clone(), r.clone());
        async move {
            if c.index == 0 {
                let Some(done) = c.open(Pong::Silent, None).await else {
                    return;
                };
                ghost.store(true, Ordering::SeqCst);
                let _ = done.await; // the client's close
                tokio::time::sleep(Duration::from_millis(1500)).await;
                ghost.store(false, Ordering::SeqCst);
                return;
            }
            if ghost.load(Ordering::SeqCst) {
                refused.fetch_add(1, Ordering::SeqCst);
                c.refuse_in_use(Duration::from_millis(50)).await;
            } else {
                c.deliver(&cdr_event("3.1", b"\"\" <>")).await;
            }
        }
    })
    .await;
    let mut cfg = link_config(fake.addr, AuthMethod::Plain);
    cfg.backoff = policy(Duration::from_secs(1));
    cfg.session.ping_interval = Duration::from_millis(300);
    cfg.session.ping_timeout = Duration::from_millis(300);
    let run = start(cfg);
    wait_for("the Cdr once the ghost is gone", LONG, || {
        run.sink.count() == 1
    })
    .await;
    let sink = run.stop().await;
    let n = refused.load(Ordering::SeqCst);
    // 1.5 s of ghost at one attempt per ~400 ms + the 50 ms refusal: 2 to 4 refusals.
    assert!(
        (2..=5).contains(&n),
        "{n} refusals in 1.5 s of ghost at 400 ms spacing"
    );
    // The last Down is the link stopping at the end of the test.
    let kinds: Vec<DownKind> = sink.downs().iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds[0], DownKind::Transient, "ping deadline: {kinds:?}");
    assert_eq!(kinds.len(), n + 2, "{kinds:?}");
    assert!(
        kinds[1..=n].iter().all(|k| *k == DownKind::LoginInUse),
        "{kinds:?}"
    );
    let logins = fake.stats.times_of("login");
    for g in gaps(&logins[1..]) {
        assert!(
            g >= Duration::from_millis(360),
            "in-use retries spaced by the lane: {g:?}"
        );
    }
}
