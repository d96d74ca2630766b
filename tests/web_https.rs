//! HTTPS on the LAN (issue 11 item 6) against the real `cdrbox run` binary on 127.0.0.1: the
//! self-signed certificate made on first start and its fingerprint on the status (the view the
//! OLED renders), what a script does with it (`curl --cacert`, a rustls client trusting only
//! that file), HTTP redirected once HTTPS is on, `Secure` cookies, an uploaded certificate
//! served from the next connection, and the gate's protections (one parser, Host check,
//! per-address cap, deadlines) holding over TLS.

use crate::real_box;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use real_box::{basic, free_port, read_reply, RealBox, Reply, PASS};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::Digest;

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A box with `[web] https = true`; returns it and its HTTPS port.
fn https_box(password: bool) -> (RealBox, u16) {
    let port = free_port();
    let b = RealBox::start(
        password,
        &format!("https = true\nhttps_listen = \"127.0.0.1:{port}\""),
    );
    (b, port)
}

fn cert_path(b: &RealBox) -> PathBuf {
    b.dir.path().join("cdrbox.tls.crt")
}

fn key_path(b: &RealBox) -> PathBuf {
    b.dir.path().join("cdrbox.tls.key")
}

/// SHA-256 of the first certificate in a PEM file, upper-case hex.
fn fingerprint_of(pem: &[u8]) -> String {
    let der = CertificateDer::from_pem_slice(pem).expect("a certificate in the PEM");
    sha2::Sha256::digest(der.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// A TLS connection from `from` trusting only the certificate(s) in `trusted` (what `curl
/// --cacert FILE` does), checking the name `name`. `Err` when the handshake fails.
fn tls_connect_from(from: IpAddr, port: u16, trusted: &[u8], name: &str) -> Result<Tls, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(trusted) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let server = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(Arc::new(cfg), server).map_err(|e| e.to_string())?;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .map_err(|e| e.to_string())?;
    sock.bind(&SocketAddr::new(from, 0).into())
        .map_err(|e| e.to_string())?;
    sock.connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)).into(),
        Duration::from_secs(5),
    )
    .map_err(|e| e.to_string())?;
    let tcp: TcpStream = sock.into();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| e.to_string())?;
    }
    Ok(tls)
}

fn tls_connect(port: u16, trusted: &[u8], name: &str) -> Result<Tls, String> {
    tls_connect_from("127.0.0.1".parse().unwrap(), port, trusted, name)
}

/// One request over TLS; the answer.
fn tls_request(port: u16, trusted: &[u8], name: &str, raw: &str) -> Result<Reply, String> {
    let mut tls = tls_connect(port, trusted, name)?;
    tls.write_all(raw.as_bytes()).map_err(|e| e.to_string())?;
    tls.flush().map_err(|e| e.to_string())?;
    read_reply(tls).ok_or_else(|| "no answer".to_string())
}

fn get_status(port: u16, trusted: &[u8]) -> Reply {
    tls_request(
        port,
        trusted,
        "localhost",
        &format!(
            "GET /api/status HTTP/1.1\r\nHost: localhost:{port}\r\nAuthorization: {}\r\n\r\n",
            basic(PASS)
        ),
    )
    .expect("status over HTTPS")
}

/// A certificate and key made here, as an admin would bring them.
fn own_certificate(names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let c = rcgen::generate_simple_self_signed(names).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

fn put_certificate(port: u16, trusted: &[u8], cert: &str, key: &str) -> Reply {
    let body = serde_json::json!({ "certificate": cert, "key": key }).to_string();
    tls_request(
        port,
        trusted,
        "localhost",
        &format!(
            "PUT /api/tls HTTP/1.1\r\nHost: localhost:{port}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            basic(PASS),
            body.len()
        ),
    )
    .expect("PUT /api/tls over HTTPS")
}

#[test]
fn https_serves_the_page_with_the_certificate_made_on_first_start_and_shows_its_fingerprint() {
    let (mut b, port) = https_box(true);
    let pem = std::fs::read(cert_path(&b)).expect("the certificate made on first start");
    let fp = fingerprint_of(&pem);
    let key_mode = std::fs::metadata(key_path(&b))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600, "the private key is the owner's only");

    // The status (the same view the OLED renders) carries the fingerprint of the served
    // certificate, by the name and by the IP literal.
    let r = get_status(port, &pem);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["tls_fingerprint"].as_str(), Some(fp.as_str()));
    let r = tls_request(
        port,
        &pem,
        "127.0.0.1",
        &format!(
            "GET /api/tls HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {}\r\n\r\n",
            basic(PASS)
        ),
    )
    .expect("by IP literal");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["fingerprint"].as_str(), Some(fp.as_str()));
    assert_eq!(r.json()["selfSigned"], true);
    // What a script saves for `curl --cacert` is that certificate.
    let served = r.json()["certificate"].as_str().unwrap_or("").to_string();
    assert_eq!(fingerprint_of(served.as_bytes()), fp);
    assert!(get_status(port, served.as_bytes()).status == 200);
    assert_eq!(
        r.json()["fingerprintColons"]
            .as_str()
            .map(|s| s.replace(':', "")),
        Some(fp.clone())
    );
    // The page itself: a browser without a session goes to the login page, over TLS.
    let r = tls_request(
        port,
        &pem,
        "localhost",
        &format!("GET / HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"),
    )
    .unwrap();
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login"));

    // Trusting another certificate instead fails: the check means something.
    let (other, _) = own_certificate(&["localhost"]);
    assert!(tls_connect(port, other.as_bytes(), "localhost").is_err());

    // What the README tells scripts to do, when curl is installed.
    if let Ok(out) = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(cert_path(&b))
        .args(["-u", &format!("admin:{PASS}")])
        .arg(format!("https://localhost:{port}/api/status"))
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(&fp),
            "curl --cacert: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The README's way to fetch the certificate before sending any password.
    if let Ok(out) = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v openssl >/dev/null || exit 77; openssl s_client -connect 127.0.0.1:{port} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"))
        .output()
    {
        if out.status.code() != Some(77) {
            let text = String::from_utf8_lossy(&out.stdout).to_ascii_uppercase();
            let colons: String = fp
                .as_bytes()
                .chunks(2)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join(":");
            assert!(text.contains(&colons), "openssl s_client: {text}");
        }
    }
    assert!(
        b.log().contains(&fp),
        "the log names the fingerprint: {}",
        b.log()
    );
    b.stop();
}

#[test]
fn plain_http_redirects_to_https_once_enabled() {
    let (mut b, port) = https_box(true);
    let http = b.port;
    let r = b
        .request(&format!(
            "GET /api/calls?limit=5 HTTP/1.1\r\nHost: 127.0.0.1:{http}\r\nAuthorization: {}\r\n\r\n",
            basic(PASS)
        ))
        .unwrap();
    assert_eq!(r.status, 308, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some(format!("https://127.0.0.1:{port}/api/calls?limit=5").as_str())
    );
    assert!(!r.text().contains("\"calls\""), "no data over plain HTTP");
    // The name the client used is kept; a POST is redirected too (308 keeps the method), and
    // no session cookie is handed out over plain HTTP.
    let body = format!("{{\"password\":\"{PASS}\"}}");
    let r = b
        .post_json(&format!("localhost:{http}"), "/api/login", &body)
        .unwrap();
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://localhost:{port}/api/login").as_str())
    );
    assert!(r.header("set-cookie").is_none());
    // A POST whose body is still arriving gets the whole redirect: the box reads the rest
    // before closing (closing on unread bytes resets the connection under the answer).
    let body = vec![b'x'; 60_000];
    let mut s = b.connect_from("127.0.0.1".parse().unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(
        format!(
            "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1:{http}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for part in body.chunks(4096) {
            std::thread::sleep(Duration::from_millis(20));
            if w.write_all(part).is_err() {
                return false;
            }
        }
        true
    });
    let r = read_reply(s).expect("the redirect, whole");
    assert_eq!(r.status, 308, "{}", r.text());
    assert!(r.text().contains("https"), "{}", r.text());
    assert!(
        writer.join().unwrap(),
        "the box reset the connection under the body"
    );
    // A foreign Host is refused before any redirect (no open redirect, no rebinding).
    let r = b
        .request("GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n")
        .unwrap();
    assert_eq!(r.status, 421);
    b.stop();
}

#[test]
fn login_over_https_sets_a_secure_cookie_that_works() {
    let (mut b, port) = https_box(true);
    let pem = std::fs::read(cert_path(&b)).unwrap();
    let body = format!("{{\"password\":\"{PASS}\"}}");
    let r = tls_request(
        port,
        &pem,
        "localhost",
        &format!(
            "POST /api/login HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: https://localhost:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r
        .header("set-cookie")
        .expect("a session cookie")
        .to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let session = cookie.split(';').next().unwrap();
    let r = tls_request(
        port,
        &pem,
        "localhost",
        &format!(
            "GET /api/session HTTP/1.1\r\nHost: localhost:{port}\r\nCookie: {session}\r\n\r\n"
        ),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["role"], "admin");
    b.stop();
}

#[test]
fn an_uploaded_certificate_is_served_from_the_next_connection_and_a_bad_one_changes_nothing() {
    let (mut b, port) = https_box(true);
    let made = std::fs::read(cert_path(&b)).unwrap();
    let (cert, key) = own_certificate(&["localhost", "127.0.0.1", "calls.office.lan"]);
    let fp = fingerprint_of(cert.as_bytes());

    // A key that is not the certificate's: refused, nothing changes.
    let (_, wrong_key) = own_certificate(&["localhost"]);
    let r = put_certificate(port, &made, &cert, &wrong_key);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("does not fit"), "{}", r.text());
    let r = put_certificate(port, &made, "not a certificate", &key);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(std::fs::read(cert_path(&b)).unwrap(), made);

    let r = put_certificate(port, &made, &cert, &key);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["fingerprint"].as_str(), Some(fp.as_str()));
    assert_eq!(r.json()["selfSigned"], false);
    // The next connection gets the new certificate (no restart); the old one no longer
    // verifies; the status — what the OLED shows — has the new fingerprint.
    // (The status is published once a second.)
    real_box::wait(
        "the new fingerprint on the status",
        Duration::from_secs(10),
        || {
            get_status(port, cert.as_bytes()).json()["tls_fingerprint"].as_str()
                == Some(fp.as_str())
        },
    );
    assert!(tls_connect(port, &made, "localhost").is_err());
    assert_eq!(fingerprint_of(&std::fs::read(cert_path(&b)).unwrap()), fp);
    let key_mode = std::fs::metadata(key_path(&b))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(key_mode, 0o600);

    // Back to a new self-signed certificate.
    let r = tls_request(
        port,
        cert.as_bytes(),
        "localhost",
        &format!(
            "DELETE /api/tls HTTP/1.1\r\nHost: localhost:{port}\r\nAuthorization: {}\r\n\r\n",
            basic(PASS)
        ),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["selfSigned"], true);
    let fresh = std::fs::read(cert_path(&b)).unwrap();
    let fresh_fp = fingerprint_of(&fresh);
    assert_eq!(r.json()["fingerprint"].as_str(), Some(fresh_fp.as_str()));
    assert_ne!(fresh_fp, fp);
    assert_ne!(fresh_fp, fingerprint_of(&made));
    assert_eq!(get_status(port, &fresh).status, 200);
    b.stop();
}

#[test]
fn the_gate_protections_hold_over_tls() {
    let (mut b, port) = https_box(true);
    let pem = std::fs::read(cert_path(&b)).unwrap();
    // Finding 1: conflicting framing is refused at once (was: a wedged worker).
    let r = tls_request(
        port,
        &pem,
        "localhost",
        &format!("POST /api/setup HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Length: 2000\r\nContent-Length: 0\r\n\r\n"),
    )
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    // Finding 2: DNS rebinding names are refused.
    let r = tls_request(
        port,
        &pem,
        "localhost",
        "GET /api/status HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 421);
    // Finding 8: the answer speaks the request's version.
    let r = tls_request(port, &pem, "localhost", "GET /api/setup HTTP/1.0\r\n\r\n").unwrap();
    assert!(r.line.starts_with("HTTP/1.0 "), "{}", r.line);
    // Plain HTTP spoken to the HTTPS port is told so (in plain HTTP).
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let r = read_reply(s).expect("a plain answer");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("https://"), "{}", r.text());

    // Finding 6: the per-address cap counts TLS connections; other addresses still get in.
    let from: IpAddr = "127.0.0.7".parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(tls_connect_from(from, port, &pem, "localhost").expect("within the cap"));
    }
    // The 17th is told why, over TLS (a plain-text 503 would read as a broken handshake).
    let over = tls_connect_from(from, port, &pem, "localhost")
        .expect("the refusal comes after a handshake");
    let r = read_reply(over).expect("a 503 over TLS");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.text().contains("too many connections from your address"),
        "{}",
        r.text()
    );
    let other: IpAddr = "127.0.0.8".parse().unwrap();
    let mut t = tls_connect_from(other, port, &pem, "localhost").expect("another address");
    t.write_all(format!("GET /api/setup HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n").as_bytes())
        .unwrap();
    assert_eq!(read_reply(t).map(|r| r.status), Some(200));
    drop(held);

    // A handshake that never comes is dropped by the head deadline (10 s), not held for ever.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    s.write_all(&[0x16, 0x03, 0x01]).unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(b.stop() < Duration::from_secs(10), "SIGTERM stops it");
}

#[test]
fn configured_hostnames_pass_the_host_check_and_are_in_the_self_signed_certificate() {
    let port = free_port();
    let mut b = RealBox::start(
        true,
        &format!(
            "https = true\nhttps_listen = \"127.0.0.1:{port}\"\nhostnames = [\"Calls.Office.LAN.\"]"
        ),
    );
    let pem = std::fs::read(cert_path(&b)).unwrap();
    let ask = |host: &str| {
        tls_request(
            port,
            &pem,
            "calls.office.lan",
            &format!(
                "GET /api/status HTTP/1.1\r\nHost: {host}\r\nAuthorization: {}\r\n\r\n",
                basic(PASS)
            ),
        )
        .map(|r| r.status)
    };
    // The certificate names it (the client checks "calls.office.lan"), the Host check takes
    // it in any case and with a port or a trailing dot; other names stay refused.
    assert_eq!(ask("calls.office.lan"), Ok(200));
    assert_eq!(ask(&format!("CALLS.office.lan.:{port}")), Ok(200));
    assert_eq!(ask("other.office.lan"), Ok(421));
    // Plain HTTP redirects keep the configured name.
    let r = b
        .request(&format!(
            "GET /api/status HTTP/1.1\r\nHost: calls.office.lan:{}\r\n\r\n",
            b.port
        ))
        .unwrap();
    assert_eq!(
        r.header("location"),
        Some(format!("https://calls.office.lan:{port}/api/status").as_str())
    );
    b.stop();

    // A name that is not a DNS name is refused by the config check, naming the key.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cdrbox.toml");
    std::fs::write(&cfg, "[web]\nhostnames = [\"calls office\"]\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cdrbox"))
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("hostnames") && text.contains("not a DNS name"),
        "{text}"
    );
}
