//! Alarm webhooks against a tiny HTTP receiver on 127.0.0.1 (in this test): `cdrbox
//! test-alarm` POSTs the message's JSON with `Idempotency-Key` = its id and the bearer token;
//! a receiver answering 500 is a failure that names the address without its secret path.

use crate::box_process;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

/// One request as the receiver saw it.
struct Seen {
    head: String,
    body: String,
}

/// Accepts connections, answers each with `status`, sends what it read on the channel.
fn receiver(status: u16) -> (u16, mpsc::Receiver<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = tx.send(Seen {
                head,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
    });
    (port, rx)
}

fn test_alarm(dir: &std::path::Path, url: &str) -> (bool, String, String) {
    let config = dir.join("cdrbox.toml");
    std::fs::write(
        &config,
        format!(
            "[box]\nname = \"hook-box\"\n\n[storage]\npath = \"{}\"\n\n[alarms]\nwebhook_url = \"{url}\"\nwebhook_token = \"tok-123\"\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    box_process::command("test-alarm", &config)
}

#[test]
fn test_alarm_posts_json_with_its_id_and_token() {
    let dir = tempfile::tempdir().unwrap();
    let (port, rx) = receiver(204);
    let (ok, out, err) = test_alarm(
        dir.path(),
        &format!("http://127.0.0.1:{port}/hook/secret-path"),
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!(
            "webhook: test alarm sent via http://127.0.0.1:{port}/…"
        )),
        "{out}"
    );
    assert!(!out.contains("secret-path"));
    let seen = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(
        seen.head.starts_with("POST /hook/secret-path HTTP/1.1"),
        "{}",
        seen.head
    );
    let head = seen.head.to_ascii_lowercase();
    assert!(
        head.contains("authorization: bearer tok-123"),
        "{}",
        seen.head
    );
    assert!(
        head.contains("content-type: application/json"),
        "{}",
        seen.head
    );
    let v: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(v["type"], "test");
    assert_eq!(v["box"], "hook-box");
    let id = v["id"].as_str().unwrap();
    assert!(
        head.contains(&format!("idempotency-key: {}", id.to_ascii_lowercase())),
        "{}",
        seen.head
    );
    assert_eq!(v["events"][0]["code"], "TEST");
}

#[test]
fn a_failing_receiver_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (port, _rx) = receiver(500);
    let (ok, _, err) = test_alarm(
        dir.path(),
        &format!("http://127.0.0.1:{port}/hook/secret-path"),
    );
    assert!(!ok);
    assert!(err.contains("webhook: FAILED"), "{err}");
    assert!(err.contains("HTTP 500"), "{err}");
    assert!(
        !err.contains("secret-path") && !err.contains("tok-123"),
        "{err}"
    );
}
