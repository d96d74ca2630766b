//! Issue 11 against the real `cdrbox run` binary on 127.0.0.1: every attack of the "Why"
//! list repeated from outside, and what the box must answer now. Test names carry the finding
//! number. Addresses 127.0.0.N stand for different LAN hosts.

use crate::hostile_pbx;
use crate::real_box;

use std::io::{Read, Write};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use real_box::{basic, read_reply, wait, RealBox, PASS};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Finding 1: `Content-Length: 2000` then `Content-Length: 0` on `POST /api/setup` hung a worker
/// forever; four hung them all; ~70 filled the cap; SIGTERM then did not stop the process.
#[test]
fn finding1_conflicting_lengths_are_refused_and_wedge_attempts_fail() {
    let mut b = RealBox::start(false, "");
    // The exact attack, many times, from several addresses: each gets a 400 at once.
    for i in 0..12 {
        let from = ip(&format!("127.0.0.{}", 2 + i % 4));
        let r = b
            .request_bytes_from(
                from,
                b"POST /api/setup HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2000\r\nContent-Length: 0\r\n\r\n",
            )
            .expect("an answer, not a hang or a closed connection");
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(
            r.text().contains("duplicate Content-Length"),
            "{}",
            r.text()
        );
    }
    // Its neighbours: both framings at once, chunked.
    for raw in [
        "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
    ] {
        assert_eq!(b.request(raw).unwrap().status, 400, "{raw}");
    }
    // Bodies that never finish, from 8 addresses (a worker never waits on them: the gate reads
    // bodies itself, within a deadline).
    let mut stuck = Vec::new();
    for i in 0..40 {
        let mut c = b
            .connect_from(ip(&format!("127.0.1.{}", 1 + i % 8)))
            .unwrap();
        c.write_all(
            b"POST /api/setup HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2000\r\n\r\n{\"pass",
        )
        .unwrap();
        stuck.push(c);
    }
    let t = Instant::now();
    for _ in 0..5 {
        let r = b
            .request("GET /api/setup HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("the page answers");
        assert_eq!(r.status, 200);
    }
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "answers took {:?} while 40 bodies hang",
        t.elapsed()
    );
    // SIGTERM stops the process within a few seconds, wedge attempts still open.
    let took = b.stop();
    assert!(took < Duration::from_secs(6), "SIGTERM took {took:?}");
}

/// Finding 6: 100 slow connections crowded out everyone (one global cap, no per-address
/// limit); four slow downloads held all four workers.
#[test]
fn finding6_slow_clients_from_many_addresses_do_not_crowd_out_others() {
    let mut b = RealBox::start(true, "");
    // 100 connections sending their head a byte at a time, from 10 addresses.
    let mut slow = Vec::new();
    for i in 0..100 {
        if let Ok(mut c) = b.connect_from(ip(&format!("127.0.2.{}", 1 + i % 10))) {
            let _ = c.write_all(b"G");
            slow.push(c);
        }
    }
    std::thread::sleep(Duration::from_millis(700));
    for c in slow.iter_mut() {
        let _ = c.write_all(b"E");
    }
    // One address alone is capped far below the whole server: a burst of 24 from one address
    // gets 503 beyond 16.
    let burst: Vec<_> = (0..24)
        .map(|_| b.connect_from(ip("127.0.3.1")).unwrap())
        .collect();
    let mut refused = 0;
    for mut c in burst {
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 12];
        if matches!(c.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1 503")) {
            refused += 1;
        }
        slow.push(c);
    }
    assert_eq!(refused, 24 - 16, "per-address cap of 16");
    // A real client still gets the status page and the login at once.
    for _ in 0..3 {
        let t = Instant::now();
        let r = b.get("/api/status").expect("status answers");
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let body = format!("{{\"user\":\"admin\",\"password\":\"{PASS}\"}}");
        let r = b.post_json("127.0.0.1", "/api/login", &body).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Downloads that are never read, from four addresses: pages still answer.
    let mut downloads = Vec::new();
    for i in 0..4 {
        let mut c = b.connect_from(ip(&format!("127.0.4.{}", 1 + i))).unwrap();
        write!(
            c,
            "GET /export.csv HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\r\n",
            basic(PASS)
        )
        .unwrap();
        downloads.push(c);
    }
    let r = b.get("/").expect("the page answers");
    assert_eq!(r.status, 200);
    let r = b.get("/api/status").expect("status answers");
    assert_eq!(r.status, 200);
    drop(slow);
    let took = b.stop();
    assert!(took < Duration::from_secs(6), "SIGTERM took {took:?}");
}

/// Finding 8: a non-ASCII path or header closed the connection with no reply.
#[test]
fn finding8_non_ascii_path_or_header_gets_400() {
    let b = RealBox::start(false, "");
    for raw in [
        "GET /звонки HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".as_bytes(),
        "GET /api/setup HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Name: Пётр\r\n\r\n".as_bytes(),
        b"GET /api/setup HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Name: \xff\xfe\r\n\r\n",
    ] {
        let r = b
            .request_bytes_from(ip("127.0.0.1"), raw)
            .unwrap_or_else(|| panic!("no reply to {:?}", String::from_utf8_lossy(raw)));
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.header("Content-Type"), Some("application/json"));
    }
}

/// Finding 8: HTTP/1.0 got an `HTTP/1.1` status line.
#[test]
fn finding8_http10_gets_an_http10_status_line() {
    let b = RealBox::start(true, "");
    let auth = basic(PASS);
    for (raw, status) in [
        ("GET /api/setup HTTP/1.0\r\n\r\n".to_string(), 200),
        (
            format!("GET /api/status HTTP/1.0\r\nAuthorization: {auth}\r\n\r\n"),
            200,
        ),
        (
            format!("GET /export.ndjson HTTP/1.0\r\nAuthorization: {auth}\r\n\r\n"),
            200,
        ),
        ("GET /api/status HTTP/1.0\r\n\r\n".to_string(), 401),
        (
            "GET /api/x HTTP/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_string(),
            400,
        ),
        (
            "GET /nothing HTTP/1.0\r\nAuthorization: x\r\nHost: evil.example\r\n\r\n".to_string(),
            421,
        ),
    ] {
        let r = b
            .request(&raw)
            .unwrap_or_else(|| panic!("no reply to {raw:?}"));
        assert_eq!(r.status, status, "{raw:?}: {}", r.text());
        assert!(r.line.starts_with("HTTP/1.0 "), "{raw:?} → {}", r.line);
    }
}

/// Finding 8: the live-feed cap admitted 33 of 32.
#[test]
fn finding8_the_live_feed_cap_admits_exactly_its_limit() {
    const CAP: usize = 32;
    let b = RealBox::start(true, "");
    let auth = basic(PASS);
    // All at once, from 40 addresses (so the per-address cap is not what refuses).
    let handles: Vec<_> = (0..40)
        .map(|i| {
            let mut c = b.connect_from(ip(&format!("127.0.5.{}", 1 + i))).unwrap();
            let auth = auth.clone();
            std::thread::spawn(move || {
                write!(
                    c,
                    "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\r\n"
                )
                .unwrap();
                c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && c.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let status = String::from_utf8_lossy(&head)
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse::<u16>().ok())
                    .unwrap_or(0);
                (status, c)
            })
        })
        .collect();
    let results: Vec<(u16, std::net::TcpStream)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let busy = results.iter().filter(|(s, _)| *s == 503).count();
    assert_eq!((ok, busy), (CAP, 40 - CAP), "admitted {ok}, refused {busy}");
    // A place freed is a place taken again.
    drop(results);
    wait("a live-feed place", Duration::from_secs(30), || {
        let mut c = b.connect_from(ip("127.0.5.99")).unwrap();
        write!(
            c,
            "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\r\n"
        )
        .unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 12];
        c.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 200")
    });
}

/// Finding 8: eight concurrent guesses against a limit of five all got through.
#[test]
fn finding8_the_login_limit_holds_under_concurrent_guesses() {
    let b = RealBox::start(true, "");
    let wrong = basic("wrong-password-1");
    let statuses: Vec<u16> = (0..8)
        .map(|_| {
            let c = b.connect_from(ip("127.0.6.1")).unwrap();
            let wrong = wrong.clone();
            std::thread::spawn(move || {
                let mut c = c;
                write!(
                    c,
                    "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {wrong}\r\n\r\n"
                )
                .unwrap();
                c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                read_reply(c).map(|r| r.status).unwrap_or(0)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(checked <= 5, "{checked} guesses were checked: {statuses:?}");
    assert_eq!(checked + limited, 8, "{statuses:?}");
    // Locked out now, even with the right password; another address is not.
    let r = b
        .request_bytes_from(
            ip("127.0.6.1"),
            format!(
                "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\r\n",
                basic(PASS)
            )
            .as_bytes(),
        )
        .unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(b.get("/api/status").unwrap().status, 200);
}

fn setup_code(b: &RealBox) -> String {
    // `cdrbox setup-code` prints it; the file is what it reads.
    let path = b.dir.path().join("cdrbox.setup-code");
    wait("the setup code", Duration::from_secs(10), || path.exists());
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

fn post_setup(
    b: &RealBox,
    from: IpAddr,
    host: &str,
    code: &str,
    password: &str,
) -> real_box::Reply {
    let body = format!("{{\"code\":\"{code}\",\"password\":\"{password}\"}}");
    b.post_json_from(from, host, "/api/setup", &body)
        .expect("an answer to the setup")
}

/// Finding 2: the first visit set the admin password with no proof of ownership.
#[test]
fn finding2_setup_needs_the_code_the_owner_sees() {
    let b = RealBox::start(false, "");
    let r = b
        .request("GET /api/setup HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    assert_eq!(r.json()["codeRequired"], true);
    let code = setup_code(&b);
    for wrong in ["", "AAAA-AAAA", "0000-0000"] {
        let r = post_setup(&b, ip("127.0.7.1"), "127.0.0.1", wrong, "attacker-pass-1");
        assert!(matches!(r.status, 400 | 403), "{wrong:?}: {}", r.text());
        assert!(r.header("Set-Cookie").is_none());
    }
    // Guessing is rate-limited per address…
    let statuses: Vec<u16> = (0..6)
        .map(|_| {
            post_setup(
                &b,
                ip("127.0.7.2"),
                "127.0.0.1",
                "BBBB-BBBB",
                "attacker-pass-1",
            )
            .status
        })
        .collect();
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // …and the owner, with the code, sets it.
    let r = post_setup(&b, ip("127.0.0.1"), "127.0.0.1", &code.to_lowercase(), PASS);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("Set-Cookie").is_some());
    assert_eq!(b.get("/api/status").unwrap().status, 200);
    assert!(
        !b.dir.path().join("cdrbox.setup-code").exists(),
        "code used up"
    );
}

/// Finding 2: two concurrent setups both succeeded (a shared temp file); the attacker's
/// password won 3 times in 10 and once kept an admin session.
#[test]
fn finding2_concurrent_setups_have_one_winner_and_the_loser_is_told() {
    for round in 0..3 {
        let b = RealBox::start(false, "");
        b.request("GET /api/setup HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let code = setup_code(&b);
        let replies: Vec<(String, real_box::Reply)> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|i| {
                    let (b, code) = (&b, &code);
                    s.spawn(move || {
                        let pass = format!("candidate-pass-{i}");
                        let from = ip(&format!("127.0.8.{}", i + 1));
                        let r = post_setup(b, from, "127.0.0.1", code, &pass);
                        (pass, r)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<&(String, real_box::Reply)> =
            replies.iter().filter(|(_, r)| r.status == 200).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {:?}",
            replies
                .iter()
                .map(|(_, r)| (r.status, r.text()))
                .collect::<Vec<_>>()
        );
        for (_, r) in replies.iter().filter(|(_, r)| r.status != 200) {
            assert!(matches!(r.status, 403 | 409), "{}", r.text());
            assert!(r.header("Set-Cookie").is_none(), "a loser got a session");
            if r.status == 409 {
                assert!(
                    r.text().contains("someone set the admin password"),
                    "{}",
                    r.text()
                );
            }
        }
        // The stored password is the winner's, and only the winner's.
        for (pass, _) in &replies {
            let r = b
                .request(&format!(
                    "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\n\r\n",
                    basic(pass)
                ))
                .unwrap();
            let expect = if *pass == winners[0].0 { 200 } else { 401 };
            assert_eq!(r.status, expect, "round {round}, {pass}");
        }
    }
}

/// Finding 2: a DNS-rebinding page reaches the box with its own name in `Host`.
#[test]
fn finding2_dns_rebinding_hosts_are_refused() {
    let b = RealBox::start(false, "");
    b.request("GET /api/setup HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let code = setup_code(&b);
    for host in [
        "evil.example",
        "evil.example:80",
        "127.0.0.1.nip.io",
        "localhost.evil.example",
    ] {
        for target in ["/api/setup", "/", "/login"] {
            let r = b
                .request(&format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n"))
                .unwrap();
            assert_eq!(r.status, 421, "{host} {target}: {}", r.text());
        }
        // Even with the right code, a setup through a foreign name is refused.
        let r = post_setup(&b, ip("127.0.0.1"), host, &code, "rebound-pass-1");
        assert_eq!(r.status, 421);
    }
    for host in [
        "127.0.0.1",
        "localhost",
        "LOCALHOST:8080",
        "[::1]",
        "10.20.30.40:80",
    ] {
        let r = b
            .request(&format!("GET /api/setup HTTP/1.1\r\nHost: {host}\r\n\r\n"))
            .unwrap();
        assert_eq!(r.status, 200, "{host}");
    }
    let me = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let r = b
        .request(&format!(
            "GET /api/setup HTTP/1.1\r\nHost: {}\r\n\r\n",
            me.trim()
        ))
        .unwrap();
    assert_eq!(r.status, 200, "the box's own hostname");
}

/// Finding 5 (the password file part): `cdrbox passwd` and the first setup leave the password
/// file 0600 whatever the umask.
#[test]
fn finding5_the_password_file_is_0600_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cdrbox.toml");
    std::fs::write(&config, "").unwrap();
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000; echo 'umask-pass-123' | exec '{}' passwd --config '{}'",
            env!("CARGO_BIN_EXE_cdrbox"),
            config.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    let passwd = dir.path().join("cdrbox.passwd");
    let mode = std::fs::metadata(&passwd).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp") || n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// Finding 3: CDRs of ~0.94 MB (60,000 custom fields) from a hostile PBX, then
/// `/api/calls?limit=1000`: 252 MB → 2.1 GB for one request, 10.4 GB for three.
#[test]
fn finding3_huge_records_keep_memory_bounded_while_three_clients_page() {
    const N: u64 = 60;
    // Paced at 5 records a second (~4.7 MB/s of CDR text, far beyond any real PBX): the link
    // never pauses its reads for the journal (a paused reader blocks Asterisk's writes past
    // `writetimeout`), so records of ~7 MB each once parsed that arrive back to back over
    // loopback faster than the ring thread can make them durable are dropped at the memory
    // bound (counted and ledgered: tests/journal_memory.rs). This test is about the web side:
    // every one of them must be stored, then paged.
    let pbx = hostile_pbx::HostilePbx::start_paced(N as usize, 940_000, Duration::from_millis(200));
    let b = RealBox::start_with_pbx(true, pbx.addr.port(), "");
    wait("the huge records stored", Duration::from_secs(180), || {
        b.total() >= N
    });
    // The ingest of huge records has its own peak (the AMI and journal side); measure the
    // web's from here.
    b.reset_peak_rss();
    let before = b.peak_rss_kib();
    let auth = basic(PASS);
    std::thread::scope(|s| {
        for _ in 0..3 {
            let (b, auth) = (&b, &auth);
            s.spawn(move || {
                for round in 0..2 {
                    let mut offset = 0u64;
                    let mut seen = 0u64;
                    while offset < N {
                        let r = b
                            .request(&format!("GET /api/calls?limit=1000&offset={offset} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\r\n"))
                            .expect("a page");
                        assert_eq!(r.status, 200, "{}", r.text());
                        let v = r.json();
                        let returned = v["returned"].as_u64().unwrap();
                        assert!(returned > 0, "round {round}: no progress at {offset}");
                        assert!(r.body.len() < 3 << 20, "a page of {} bytes", r.body.len());
                        let first = &v["records"][0];
                        assert!(
                            first["truncated"]["customFieldsOmitted"].as_u64().unwrap() > 50_000,
                            "marked as cut: {}",
                            first["truncated"]
                        );
                        seen += returned;
                        offset += returned;
                    }
                    assert_eq!(seen, N);
                    let r = b
                        .request(&format!("GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\r\n"))
                        .unwrap();
                    assert_eq!(r.status, 200);
                }
            });
        }
    });
    let after = b.peak_rss_kib();
    let grew = after.saturating_sub(before);
    eprintln!("peak RSS {before} KiB → {after} KiB while 3 clients paged {N} records of 0.94 MB");
    assert!(
        grew < 200 * 1024,
        "peak RSS grew by {grew} KiB ({before} → {after})"
    );
    // The whole record is there, by explicit download, streamed.
    let r = b.get("/api/calls?limit=1").unwrap();
    let link = r.json()["records"][0]["download"]
        .as_str()
        .unwrap()
        .to_string();
    let whole = b.get(&link).unwrap();
    assert_eq!(whole.status, 200, "{link}: {}", whole.text());
    let v: serde_json::Value = serde_json::from_slice(&whole.body).unwrap();
    let fields = v[0]["customFields"].as_object().unwrap().len();
    assert!(fields > 55_000, "{fields} custom fields in the download");
}

fn nasty_cdr(n: usize) -> Vec<u8> {
    // Fields a spreadsheet would run, each in a different disguise, and terminal escapes.
    format!(
        "Event: Cdr\r\nPrivilege: cdr,all\r\nAccountCode: @SUM(A1)\r\nSource:  =1+1\r\nDestination: \u{ff1d}HYPERLINK(\"http://evil/\")\r\nDestinationContext: +cmd|' /C calc'!A0\r\nCallerID: \"-2+3\" <1001>\r\nChannel: PJSIP/1001-{n:08}\r\nDestinationChannel: PJSIP/2001-{n:08}\r\nLastApplication: Dial\r\nLastData: \x1b]0;pwned\x07\x1b[2J\r\nStartTime: 2026-11-22 10:07:0{n}\r\nAnswerTime: 2026-11-22 10:07:07\r\nEndTime: 2026-11-22 10:07:10\r\nDuration: 4\r\nBillableSeconds: 3\r\nDisposition: ANSWERED\r\nAMAFlags: DOCUMENTATION\r\nUniqueID: 1795330800.{n}\r\nUserField: \u{ff0b}1\u{ff0d}1\r\n\r\n"
    )
    .into_bytes()
}

/// A cell a spreadsheet would evaluate: a formula sign first, after any whitespace/controls.
fn runs_as_formula(cell: &str) -> bool {
    let t = cell.trim_start_matches(|c: char| c.is_whitespace() || c.is_control());
    cell.starts_with(['\t', '\r'])
        || t.starts_with([
            '=', '+', '-', '@', '\u{ff1d}', '\u{ff0b}', '\u{ff0d}', '\u{ff20}',
        ])
}

/// Finding 7: formula injection in the standard, pbxlogger and asterisk profiles (only excel
/// was guarded, and a leading space or a full-width ＝ passed its guard).
#[test]
fn finding7_every_csv_profile_guards_formulas_unless_turned_off() {
    let pbx = hostile_pbx::HostilePbx::with_events(1, std::sync::Arc::new(nasty_cdr));
    let b = RealBox::start_with_pbx(true, pbx.addr.port(), "");
    wait("the record", Duration::from_secs(60), || b.total() >= 1);
    for profile in ["standard", "excel", "pbxlogger", "asterisk"] {
        let r = b.get(&format!("/export.csv?profile={profile}")).unwrap();
        assert_eq!(r.status, 200);
        let sep = if profile == "excel" { b';' } else { b',' };
        let mut rd = csv::ReaderBuilder::new()
            .delimiter(sep)
            .has_headers(false)
            .from_reader(r.body.as_slice());
        let rows: Vec<csv::StringRecord> = rd.records().map(|x| x.unwrap()).collect();
        let data = rows.last().unwrap();
        let guarded: Vec<&str> = data.iter().filter(|c| c.starts_with('\'')).collect();
        assert!(guarded.len() >= 3, "{profile}: {data:?}");
        for cell in data.iter() {
            assert!(!runs_as_formula(cell), "{profile}: {cell:?} would run");
        }
        // Explicitly off: the PBX's bytes as they came.
        let raw = b
            .get(&format!("/export.csv?profile={profile}&formulaGuard=off"))
            .unwrap();
        assert_eq!(raw.status, 200);
        let text = raw.text();
        assert!(
            text.contains("\u{ff1d}HYPERLINK") && !text.contains("'\u{ff1d}"),
            "{profile}"
        );
    }
    let r = b.get("/export.csv?formulaGuard=maybe").unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("formulaGuard"));
}

/// Finding 7: NUL, ESC and other control bytes from the PBX reached the terminal through
/// `cdrbox export`.
#[test]
fn finding7_cli_export_escapes_control_bytes_on_a_terminal() {
    let pbx = hostile_pbx::HostilePbx::with_events(1, std::sync::Arc::new(nasty_cdr));
    let b = RealBox::start_with_pbx(true, pbx.addr.port(), "");
    wait("the record", Duration::from_secs(60), || b.total() >= 1);
    let bin = env!("CARGO_BIN_EXE_cdrbox");
    for format in ["csv", "json"] {
        // `script` gives the command a terminal and copies what reaches it.
        let mut script = std::process::Command::new("script");
        script
            .args(["-qec"])
            .arg(format!(
                "'{bin}' export --config '{}' --format {format}",
                b.config.display()
            ))
            .arg("/dev/null");
        let out = real_box::run_ok(&mut script, "script(1) from util-linux");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("1795330800.0"), "{format}: {text}");
        assert!(
            !out.stdout.iter().any(|&c| c == 0x1b || c == 0x07 || c == 0),
            "{format}: raw control bytes reached the terminal: {text:?}"
        );
        if format == "csv" {
            assert!(text.contains("\\x1b]0;pwned\\x07"), "{format}: {text}");
        }
        // Into a pipe, the bytes are unchanged (files and scripts get what the PBX sent).
        let piped = std::process::Command::new(bin)
            .args(["export", "--config"])
            .arg(&b.config)
            .args(["--format", "csv"])
            .output()
            .unwrap();
        assert!(piped.stdout.contains(&0x1b));
    }
}

/// Finding 2: the code is where only the owner looks — `cdrbox run`'s log, `cdrbox setup-code`,
/// `cdrbox demo`'s banner (and the OLED: `display_render`'s `setup_code` screen) — and gone
/// once the password is set.
#[test]
fn finding2_the_setup_code_is_shown_where_the_owner_looks() {
    let bin = env!("CARGO_BIN_EXE_cdrbox");
    let b = RealBox::start(false, "");
    let code = setup_code(&b);
    wait("the code in the log", Duration::from_secs(10), || {
        b.log().contains(&code)
    });
    let printed = std::process::Command::new(bin)
        .args(["setup-code", "--config"])
        .arg(&b.config)
        .output()
        .unwrap();
    assert!(printed.status.success());
    assert_eq!(String::from_utf8_lossy(&printed.stdout).trim(), code);
    let r = post_setup(&b, ip("127.0.0.1"), "127.0.0.1", &code, PASS);
    assert_eq!(r.status, 200, "{}", r.text());
    let after = std::process::Command::new(bin)
        .args(["setup-code", "--config"])
        .arg(&b.config)
        .output()
        .unwrap();
    assert!(!after.status.success());
    assert!(
        String::from_utf8_lossy(&after.stderr).contains("already set"),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    // The demo's banner.
    let data = tempfile::tempdir().unwrap();
    let demo = std::process::Command::new(bin)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--seconds",
            "2",
            "--data",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&demo.stdout);
    let file = std::fs::read_to_string(data.path().join("cdrbox.setup-code")).unwrap();
    assert!(
        out.contains(&format!("setup code:           {}", file.trim())),
        "{out}"
    );
}
