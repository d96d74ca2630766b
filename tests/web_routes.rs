//! Route tests: `App::handle` called directly with an in-memory backend (no sockets).

use crate::web_support;

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use cdrbox::web::auth::{self, set_password};
use cdrbox::web::routes::{App, Body, Request, Response};
use cdrbox::web::{Backend, CdrExporter};
use serde_json::{json, Value};
use web_support::{record, MemBackend};

const NOW: i64 = 1_795_331_257;
const PASS: &str = "correct-horse-1";

struct Fixture {
    app: App,
    backend: Arc<MemBackend>,
    _dir: tempfile::TempDir,
    passwd: std::path::PathBuf,
}

fn fixture(with_password: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("cdrbox.passwd");
    if with_password {
        set_password(&passwd, "admin", PASS).unwrap();
    }
    let backend = MemBackend::new((0..10).map(|i| record(i * 60)).collect());
    let app = App::new(
        backend.clone(),
        Arc::new(CdrExporter),
        passwd.clone(),
        Arc::new(auth::os_random),
    );
    Fixture {
        app,
        backend,
        _dir: dir,
        passwd,
    }
}

fn req(method: &str, target: &str) -> Request {
    let mut r = Request::get(target);
    r.method = method.into();
    r
}

fn with_header(mut r: Request, k: &str, v: &str) -> Request {
    r.headers.push((k.to_lowercase(), v.to_string()));
    r
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn as_admin(r: Request) -> Request {
    with_header(r, "Authorization", &basic("admin", PASS))
}

fn body_json(r: &Response) -> Value {
    serde_json::from_slice(r.bytes()).unwrap_or(Value::Null)
}

fn json_req(method: &str, target: &str, body: &Value) -> Request {
    let mut r = req(method, target);
    r.body = body.to_string().into_bytes();
    with_header(r, "Content-Type", "application/json")
}

/// Logs in through the form; returns (cookie header value, csrf token).
fn login(f: &Fixture) -> (String, String) {
    let r = f.app.handle(
        &json_req(
            "POST",
            "/api/login",
            &json!({"user": "admin", "password": PASS}),
        ),
        NOW,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(r.bytes()));
    let set = r.header("Set-Cookie").unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let csrf = body_json(&r)["csrf"].as_str().unwrap().to_string();
    (cookie, csrf)
}

#[test]
fn every_page_and_api_needs_auth_except_login_and_setup() {
    let f = fixture(true);
    let protected = [
        ("GET", "/api/status"),
        ("GET", "/api/calls"),
        ("GET", "/api/stats"),
        ("GET", "/api/events"),
        ("GET", "/api/config"),
        ("PUT", "/api/config"),
        ("GET", "/api/setup-help"),
        ("GET", "/api/session"),
        ("POST", "/api/logout"),
        ("POST", "/api/password"),
        ("GET", "/display.png"),
        ("GET", "/export.csv"),
        ("GET", "/export.json?profile=excel"),
        ("GET", "/nonexistent"),
        ("GET", "/../../etc/passwd"),
    ];
    for (m, p) in protected {
        let r = f.app.handle(&req(m, p), NOW);
        assert_eq!(r.status, 401, "{m} {p}");
        assert!(r.header("WWW-Authenticate").unwrap().starts_with("Basic"));
        assert!(r.header("Content-Security-Policy").is_some(), "{m} {p}");
        assert!(!String::from_utf8_lossy(r.bytes()).contains("records"));
    }
    // The app page itself sends a browser to the login page.
    let r = f.app.handle(&req("GET", "/"), NOW);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("Location"), Some("/login"));
    // The page's own fetches get no Basic challenge (no browser dialog).
    let r = f.app.handle(
        &with_header(req("GET", "/api/status"), "X-Requested-With", "cdrbox"),
        NOW,
    );
    assert_eq!(r.status, 401);
    assert!(r.header("WWW-Authenticate").is_none());
    // Public: the login page, its assets, the setup probe.
    for p in [
        "/login",
        "/assets/app.js",
        "/assets/app.css",
        "/assets/login.js",
        "/api/setup",
    ] {
        assert_eq!(f.app.handle(&req("GET", p), NOW).status, 200, "{p}");
    }
    // A wrong session cookie is no session.
    let r = f.app.handle(
        &with_header(req("GET", "/api/status"), "Cookie", "cdrbox_session=forged"),
        NOW,
    );
    assert_eq!(r.status, 401);
}

#[test]
fn first_setup_is_open_only_while_no_password_exists() {
    let f = fixture(false);
    let r = f.app.handle(&req("GET", "/api/setup"), NOW);
    assert_eq!(body_json(&r)["needsSetup"], true);
    let r = f.app.handle(
        &json_req("POST", "/api/setup", &json!({"password": "short"})),
        NOW,
    );
    assert_eq!(r.status, 400);
    assert_eq!(body_json(&r)["param"], "password");
    // Issue 11, finding 2: the first visit needs the one-time setup code the box shows.
    let code_path = cdrbox::web::setup_code::path_for(&f.passwd);
    let code = cdrbox::web::setup_code::current(&code_path).expect("made by GET /api/setup");
    let r = f.app.handle(
        &json_req("POST", "/api/setup", &json!({"password": PASS})),
        NOW,
    );
    assert_eq!(
        (r.status, body_json(&r)["param"].clone()),
        (400, json!("code"))
    );
    let r = f.app.handle(
        &json_req(
            "POST",
            "/api/setup",
            &json!({"password": PASS, "code": "AAAA-AAAA"}),
        ),
        NOW,
    );
    assert_eq!(r.status, 403, "a wrong code");
    assert!(
        !f.passwd.exists()
            || !std::fs::read_to_string(&f.passwd)
                .unwrap()
                .contains("admin:")
    );
    let r = f.app.handle(
        &json_req(
            "POST",
            "/api/setup",
            &json!({"password": PASS, "code": code.to_lowercase().replace('-', " ")}),
        ),
        NOW,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(r.bytes()));
    assert!(!code_path.exists(), "the code is used up");
    let cookie = r
        .header("Set-Cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(f.passwd.exists());
    // The new session works at once.
    let r = f.app.handle(
        &with_header(req("GET", "/api/status"), "Cookie", &cookie),
        NOW,
    );
    assert_eq!(r.status, 200);
    // And setup is now closed: nobody can overwrite the password.
    let r = f.app.handle(&req("GET", "/api/setup"), NOW);
    assert_eq!(body_json(&r)["needsSetup"], false);
    let r = f.app.handle(
        &json_req(
            "POST",
            "/api/setup",
            &json!({"password": "attacker-pass", "code": code}),
        ),
        NOW,
    );
    assert_eq!(r.status, 403);
    let r = f.app.handle(&as_admin(req("GET", "/api/status")), NOW);
    assert_eq!(r.status, 200);
}

#[test]
fn cookie_sessions_need_the_csrf_token_for_changes() {
    let f = fixture(true);
    let (cookie, csrf) = login(&f);
    let get = with_header(req("GET", "/api/session"), "Cookie", &cookie);
    let r = f.app.handle(&get, NOW);
    assert_eq!(body_json(&r)["csrf"], csrf.as_str());
    let change = json_req("PUT", "/api/config", &json!({"box": {"name": "x"}}));
    let change = with_header(change, "Cookie", &cookie);
    let r = f.app.handle(&change, NOW);
    assert_eq!(r.status, 403, "no token");
    assert_eq!(body_json(&r)["param"], "X-CSRF-Token");
    let r = f
        .app
        .handle(&with_header(change.clone(), "X-CSRF-Token", "wrong"), NOW);
    assert_eq!(r.status, 403, "wrong token");
    let ok = with_header(change.clone(), "X-CSRF-Token", &csrf);
    assert_eq!(f.app.handle(&ok, NOW).status, 200);
    // A cross-site request is refused even with a token.
    let cross = with_header(
        with_header(ok.clone(), "Origin", "http://evil.example"),
        "Host",
        "box.local",
    );
    assert_eq!(f.app.handle(&cross, NOW).status, 403);
    let same = with_header(
        with_header(ok, "Origin", "http://box.local"),
        "Host",
        "box.local",
    );
    assert_eq!(f.app.handle(&same, NOW).status, 200);
    // Logout ends the session.
    let out = with_header(
        with_header(req("POST", "/api/logout"), "Cookie", &cookie),
        "X-CSRF-Token",
        &csrf,
    );
    assert_eq!(f.app.handle(&out, NOW).status, 200);
    assert_eq!(f.app.handle(&get, NOW).status, 401);
}

#[test]
fn basic_auth_for_scripts_and_failed_logins_are_rate_limited() {
    let f = fixture(true);
    // Basic needs no CSRF token.
    let put = as_admin(json_req(
        "PUT",
        "/api/config",
        &json!({"box": {"name": "scripted"}}),
    ));
    assert_eq!(f.app.handle(&put, NOW).status, 200);
    assert!(f.backend.config_text().contains("name = \"scripted\""));
    let attacker: IpAddr = "192.0.2.7".parse().unwrap();
    let mut bad = with_header(
        req("GET", "/api/status"),
        "Authorization",
        &basic("admin", "guess"),
    );
    bad.peer = attacker;
    for _ in 0..auth::LOGIN_FAILURES {
        assert_eq!(f.app.handle(&bad, NOW).status, 401);
    }
    let r = f.app.handle(&bad, NOW + 1);
    assert_eq!(r.status, 429);
    assert!(r.header("Retry-After").unwrap().parse::<i64>().unwrap() > 0);
    // Even the right password waits out the lock from that address…
    let mut good = as_admin(req("GET", "/api/status"));
    good.peer = attacker;
    assert_eq!(f.app.handle(&good, NOW + 2).status, 429);
    // …but other addresses are not locked out, and the lock ends.
    assert_eq!(
        f.app
            .handle(&as_admin(req("GET", "/api/status")), NOW + 2)
            .status,
        200
    );
    assert_eq!(
        f.app
            .handle(&good, NOW + auth::LOGIN_WINDOW_SECS + 1)
            .status,
        200
    );
    // The login form is limited the same way, and unknown users fail like wrong passwords.
    let mut form = json_req(
        "POST",
        "/api/login",
        &json!({"user": "root", "password": "x"}),
    );
    form.peer = "192.0.2.8".parse().unwrap();
    let r = f.app.handle(&form, NOW);
    assert_eq!(r.status, 401);
    assert!(r.header("WWW-Authenticate").is_none());
    let r = f.app.handle(
        &with_header(req("GET", "/api/status"), "Authorization", "Basic ***"),
        NOW,
    );
    assert_eq!(r.status, 401);
}

#[test]
fn bad_parameters_get_400_naming_the_parameter() {
    let f = fixture(true);
    let cases = [
        ("/api/calls?limit=abc", "limit"),
        ("/api/calls?limit=-5", "limit"),
        ("/api/calls?offset=x", "offset"),
        ("/api/calls?from=yesterday", "from"),
        ("/api/calls?to=2026-99-01", "to"),
        ("/api/calls?sort=bogus", "sort"),
        ("/api/calls?disposition=", "disposition"),
        ("/api/calls?disposition=SOMETIMES", "disposition"),
        ("/api/calls?direction=up", "direction"),
        ("/api/calls?minDuration=1.5", "minDuration"),
        ("/api/calls?colour=red", "colour"),
        ("/api/stats?sla=forever", "sla"),
        ("/api/stats?from=tomorrow", "from"),
        ("/api/stats?trend=fortnight", "trend"),
        ("/export.csv?profile=lotus123", "profile"),
        ("/export.csv?limit=5", "limit"),
        ("/export.ndjson?maxDuration=x", "maxDuration"),
    ];
    for (target, param) in cases {
        let r = f.app.handle(&as_admin(req("GET", target)), NOW);
        assert_eq!(r.status, 400, "{target}");
        let v = body_json(&r);
        assert_eq!(v["param"], param, "{target}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains(param),
            "{target}: {v}"
        );
        assert_eq!(r.header("Content-Type"), Some("application/json"));
    }
    let r = f.app.handle(&as_admin(req("GET", "/export.xlsx")), NOW);
    assert_eq!(r.status, 404);
}

#[test]
fn calls_use_the_product_json_names() {
    let f = fixture(true);
    let r = f.app.handle(
        &as_admin(req("GET", "/api/calls?limit=3&offset=1&sort=start_asc")),
        NOW,
    );
    assert_eq!(r.status, 200);
    let v = body_json(&r);
    assert_eq!(v["total"], 10);
    let recs = v["records"].as_array().unwrap();
    assert_eq!(recs.len(), 3);
    let keys: Vec<&str> = recs[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "uniqueId",
            "accountCode",
            "source",
            "destination",
            "destinationContext",
            "callerId",
            "channel",
            "destinationChannel",
            "lastApplication",
            "lastData",
            "startTime",
            "answerTime",
            "endTime",
            "duration",
            "billableSeconds",
            "disposition",
            "amaFlags",
            "userField",
            "pbx",
            "direction",
            "ringSeconds",
            "queue",
            "agent",
            "linkedId",
            "sequence",
            "customFields",
            "origin",
            "callerName",
            "callKey",
            "sourceName",
            "destinationName",
            "agentName"
        ]
    );
    // No [names] and nothing learned: the name fields are there, empty.
    assert_eq!(recs[0]["sourceName"], Value::Null);
    // The name without Asterisk's quoting (issue 13, item 2).
    assert_eq!(recs[0]["callerName"], "Иванов Пётр");
    assert_eq!(recs[0]["uniqueId"], "1795330800.60");
    assert_eq!(recs[0]["startTime"], "2026-11-22T10:01:00+03:00");
    assert_eq!(recs[0]["direction"], "inbound");
    assert_eq!(recs[0]["customFields"]["LinkedID"], "1795330800.60");
    // Record 3 (i = 180) is unanswered: answerTime is null.
    assert_eq!(recs[2]["disposition"], "NO ANSWER");
    assert_eq!(recs[2]["answerTime"], Value::Null);
    // Filters narrow the total, which counts the whole filtered set, not the page.
    let r = f.app.handle(
        &as_admin(req("GET", "/api/calls?disposition=NO%20ANSWER&limit=1")),
        NOW,
    );
    let v = body_json(&r);
    assert_eq!(v["total"], 4);
    assert_eq!(v["records"].as_array().unwrap().len(), 1);
    let r = f.app.handle(
        &as_admin(req(
            "GET",
            "/api/calls?from=2026-11-22T10:05&to=2026-11-22%2010:07",
        )),
        NOW,
    );
    assert_eq!(body_json(&r)["total"], 2);
}

/// Issue 13, item 1: `total` keeps counting records (scripts rely on it); `calls` counts the
/// calls they belong to, over the whole filtered set; `groups` is this page as calls, with the
/// indices of their records.
#[test]
fn calls_are_counted_beside_records_and_a_page_is_grouped() {
    let f = fixture(true);
    // Record 0's call also rang two queue members who did not answer (same LinkedID).
    let base = record(0);
    for (agent, start) in [("1002", 1), ("1003", 2)] {
        let mut leg = base.clone();
        leg.destination_channel = format!("PJSIP/{agent}-00000003");
        leg.agent = Some(agent.into());
        leg.disposition = cdrbox::record::Disposition::NoAnswer;
        leg.answer = None;
        leg.billable_seconds = 0;
        leg.start.utc = Some(base.start.utc.unwrap() + start);
        leg.sequence = Some(100 + start);
        f.backend.push(leg);
    }
    let r = f
        .app
        .handle(&as_admin(req("GET", "/api/calls?limit=500")), NOW);
    assert_eq!(r.status, 200);
    let v = body_json(&r);
    assert_eq!(v["total"], 12);
    assert_eq!(v["calls"], 10);
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 10);
    let big: Vec<&Value> = groups
        .iter()
        .filter(|g| g["legs"].as_array().unwrap().len() == 3)
        .collect();
    assert_eq!(big.len(), 1, "{groups:?}");
    let g = big[0];
    // Record 0 is unanswered (i / 60 % 3 == 0), and so are its two extra legs.
    assert_eq!(g["outcome"], "missed");
    assert_eq!(g["callerName"], "Иванов Пётр");
    for i in g["legs"].as_array().unwrap() {
        let rec = &v["records"][i.as_u64().unwrap() as usize];
        assert_eq!(rec["linkedId"], "1795330800.0");
        assert_eq!(rec["callKey"], g["key"]);
    }
    // A filter that matches only the extra legs: 2 records, 1 call.
    let r = f
        .app
        .handle(&as_admin(req("GET", "/api/calls?agent=1002")), NOW);
    let v = body_json(&r);
    assert_eq!(
        (v["total"].as_u64(), v["calls"].as_u64()),
        (Some(1), Some(1))
    );
    let answered = f.app.handle(
        &as_admin(req("GET", "/api/calls?disposition=ANSWERED&limit=1")),
        NOW,
    );
    let v = body_json(&answered);
    assert_eq!(
        (v["total"].as_u64(), v["calls"].as_u64()),
        (Some(6), Some(6))
    );
    assert_eq!(v["groups"].as_array().unwrap().len(), 1);
    assert_eq!(v["groups"][0]["outcome"], "answered");
    assert_eq!(v["groups"][0]["answeredBy"], "1001");
    // Search by name, in any case (issue 13, item 2: "a search for Петров finds the calls").
    let r = f.app.handle(
        &as_admin(req(
            "GET",
            "/api/calls?source=%D0%B8%D0%B2%D0%B0%D0%BD%D0%BE%D0%B2",
        )),
        NOW,
    );
    let v = body_json(&r);
    assert_eq!(
        (v["total"].as_u64(), v["calls"].as_u64()),
        (Some(12), Some(10))
    );
    let r = f.app.handle(
        &as_admin(req(
            "GET",
            "/api/calls?source=%D0%9F%D0%B5%D1%82%D1%80%D0%BE%D0%B2",
        )),
        NOW,
    );
    assert_eq!(body_json(&r)["total"], 0);
}

/// The calls page asks for its rows without the calls count (`counts=records`) and for the
/// counts apart (`/api/calls/count`): both answers together say what `/api/calls` says alone.
#[test]
fn the_counts_apart_equal_the_counts_in_the_page() {
    let f = fixture(true);
    let get = |target: &str| {
        let r = f.app.handle(&as_admin(req("GET", target)), NOW);
        assert_eq!(r.status, 200, "{target}");
        body_json(&r)
    };
    for filter in [
        "",
        "disposition=ANSWERED",
        "agent=1001",
        "source=%D0%B8%D0%B2%D0%B0%D0%BD%D0%BE%D0%B2",
        "from=2026-11-22T10:05&to=2026-11-22%2010:07",
        "disposition=BUSY",
    ] {
        let whole = get(&format!("/api/calls?limit=5&{filter}"));
        let rows = get(&format!("/api/calls?limit=5&counts=records&{filter}"));
        let counts = get(&format!("/api/calls/count?{filter}"));
        assert!(whole["calls"].is_u64(), "{filter}: {whole}");
        assert_eq!(rows["calls"], Value::Null, "{filter}");
        assert_eq!(rows["total"], whole["total"], "{filter}");
        assert_eq!(rows["records"], whole["records"], "{filter}");
        assert_eq!(rows["groups"], whole["groups"], "{filter}");
        assert_eq!(
            (&counts["total"], &counts["calls"]),
            (&whole["total"], &whole["calls"]),
            "{filter}"
        );
    }
    // Paging means nothing to a count; a misspelt `counts` is named.
    for (target, param) in [
        ("/api/calls/count?limit=5", "limit"),
        ("/api/calls?counts=calls", "counts"),
        ("/api/calls/count?disposition=SOMETIMES", "disposition"),
    ] {
        let r = f.app.handle(&as_admin(req("GET", target)), NOW);
        assert_eq!(r.status, 400, "{target}");
        assert_eq!(body_json(&r)["param"], param, "{target}");
    }
    let r = f.app.handle(&req("GET", "/api/calls/count"), NOW);
    assert_eq!(r.status, 401);
}

#[test]
fn the_ami_secret_is_never_sent() {
    let f = fixture(true);
    for target in ["/api/config", "/api/setup-help", "/api/status"] {
        let r = f.app.handle(&as_admin(req("GET", target)), NOW);
        assert_eq!(r.status, 200, "{target}");
        let text = String::from_utf8_lossy(r.bytes());
        assert!(!text.contains("ami-secret-XYZ"), "{target}: {text}");
    }
    let r = f.app.handle(&as_admin(req("GET", "/api/config")), NOW);
    let v = body_json(&r);
    assert_eq!(v["secretSet"], json!([true]));
    assert_eq!(v["config"]["pbx"][0]["host"], "10.0.0.2");
    assert!(v["config"]["pbx"][0].get("secret").is_none());
    assert!(v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["key"] == "trunk_patterns"));
    // Sending the config back unchanged keeps the secret in the file.
    let put = as_admin(json_req(
        "PUT",
        "/api/config",
        &json!({"config": v["config"]}),
    ));
    let r = f.app.handle(&put, NOW);
    assert_eq!(r.status, 200);
    assert!(!String::from_utf8_lossy(r.bytes()).contains("ami-secret-XYZ"));
    assert!(f
        .backend
        .config_text()
        .contains("secret = \"ami-secret-XYZ\""));
}

#[test]
fn settings_are_checked_saved_and_applied() {
    let f = fixture(true);
    // Issue 11 item 5: a new address needs the secret typed again (the stored one is only
    // sent to the PBX it was entered for).
    let change = json!({"pbx": [{"host": "10.0.0.9", "port": 5039}]});
    let r = f
        .app
        .handle(&as_admin(json_req("PUT", "/api/config", &change)), NOW);
    assert_eq!(r.status, 400);
    assert_eq!(body_json(&r)["param"], "pbx[0].secret");
    let change = json!({"pbx": [{"host": "10.0.0.9", "port": 5039, "secret": "ami-secret-XYZ"}]});
    let r = f
        .app
        .handle(&as_admin(json_req("PUT", "/api/config", &change)), NOW);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(r.bytes()));
    let text = f.backend.config_text();
    assert!(
        text.contains("# AMI address\nhost = \"10.0.0.9\""),
        "{text}"
    );
    assert!(text.contains("name = \"test-box\" # the name"), "{text}");
    let s = body_json(&f.app.handle(&as_admin(req("GET", "/api/status")), NOW));
    assert_eq!(s["links"][0]["address"], "10.0.0.9:5039");
    // Field checks name the field…
    let bad = json!({"pbx": [{"port": 99999}]});
    let r = f
        .app
        .handle(&as_admin(json_req("PUT", "/api/config", &bad)), NOW);
    assert_eq!(r.status, 400);
    assert_eq!(body_json(&r)["param"], "pbx[0].port");
    // …and so do the backend's whole-config checks.
    let bad = json!({"pbx": [{"host": "no such host"}]});
    let r = f
        .app
        .handle(&as_admin(json_req("PUT", "/api/config", &bad)), NOW);
    assert_eq!(r.status, 400);
    assert_eq!(body_json(&r)["param"], "pbx[0].host");
    assert_eq!(
        *f.backend.applied.lock().unwrap(),
        1,
        "bad changes are not applied"
    );
    // A TOML body works for scripts too.
    let mut toml = as_admin(req("PUT", "/api/config"));
    toml.body = b"[web]\nworkers = 3\n".to_vec();
    assert_eq!(f.app.handle(&toml, NOW).status, 200);
    assert!(f.backend.config_text().contains("workers = 3"));
    let mut junk = as_admin(req("PUT", "/api/config"));
    junk.body = b"{{{{".to_vec();
    assert_eq!(body_json(&f.app.handle(&junk, NOW))["param"], "body");
}

#[test]
fn the_viewer_account_reads_but_cannot_change() {
    let f = fixture(true);
    set_password(&f.passwd, "viewer", "viewer-pass-1").unwrap();
    let as_viewer = |r: Request| with_header(r, "Authorization", &basic("viewer", "viewer-pass-1"));
    assert_eq!(
        f.app
            .handle(&as_viewer(req("GET", "/api/calls")), NOW)
            .status,
        200
    );
    assert_eq!(
        f.app
            .handle(&as_viewer(req("GET", "/api/config")), NOW)
            .status,
        200
    );
    let put = as_viewer(json_req(
        "PUT",
        "/api/config",
        &json!({"box": {"name": "v"}}),
    ));
    assert_eq!(f.app.handle(&put, NOW).status, 403);
    let pw = as_viewer(json_req(
        "POST",
        "/api/password",
        &json!({"user": "admin", "password": "taken-over-1"}),
    ));
    assert_eq!(f.app.handle(&pw, NOW).status, 403);
}

#[test]
fn password_change_needs_the_current_one() {
    let f = fixture(true);
    let wrong = as_admin(json_req(
        "POST",
        "/api/password",
        &json!({"current": "nope", "password": "another-pass-2"}),
    ));
    let r = f.app.handle(&wrong, NOW);
    assert_eq!(body_json(&r)["param"], "current");
    let right = as_admin(json_req(
        "POST",
        "/api/password",
        &json!({"current": PASS, "password": "another-pass-2"}),
    ));
    assert_eq!(f.app.handle(&right, NOW).status, 200);
    assert_eq!(
        f.app
            .handle(&as_admin(req("GET", "/api/status")), NOW)
            .status,
        401,
        "old password cached?"
    );
    // Through the page: the browser that changes the password stays logged in, others are out.
    let f = fixture(true);
    let (mine, csrf) = login(&f);
    let (other, _) = login(&f);
    let change = json_req(
        "POST",
        "/api/password",
        &json!({"current": PASS, "password": "another-pass-3"}),
    );
    let change = with_header(with_header(change, "Cookie", &mine), "X-CSRF-Token", &csrf);
    assert_eq!(f.app.handle(&change, NOW).status, 200);
    let status = |c: &str| {
        f.app
            .handle(
                &with_header(req("GET", "/api/status"), "Cookie", c),
                NOW + 60,
            )
            .status
    };
    assert_eq!(status(&mine), 200);
    assert_eq!(status(&other), 401);
}

#[test]
fn exports_are_streams_with_checked_profiles() {
    let f = fixture(true);
    let r = f.app.handle(
        &as_admin(req("GET", "/export.csv?profile=excel&direction=inbound")),
        NOW,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/csv; charset=utf-8"));
    assert!(r
        .header("Content-Disposition")
        .unwrap()
        .contains("attachment"));
    match &r.body {
        Body::Export {
            profile, filter, ..
        } => {
            assert_eq!(profile, "excel");
            assert_eq!(filter.directions.len(), 1);
        }
        other => panic!("not a stream: {other:?}"),
    }
}

#[test]
fn stats_status_setup_help_and_display() {
    let f = fixture(true);
    let s = body_json(&f.app.handle(
        &as_admin(req("GET", "/api/stats?from=2026-11-22&to=2026-11-22")),
        NOW,
    ));
    assert_eq!(s["calls"], 10);
    assert_eq!(s["answered"], 6);
    assert_eq!(s["hourly"].as_array().unwrap().len(), 24);
    assert_eq!(s["hourly"][10]["calls"], 10);
    assert_eq!(s["slaSeconds"], 20);
    // Issue 13 item 3: one day's range is a trend by hour unless the request says otherwise,
    // and the trend counts every call of the range once.
    assert_eq!(s["trendBucket"], "hour");
    let trend_calls = |s: &serde_json::Value| -> u64 {
        s["trend"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["calls"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(trend_calls(&s), 10);
    let by_day = body_json(&f.app.handle(
        &as_admin(req(
            "GET",
            "/api/stats?from=2026-11-22&to=2026-11-22&trend=day",
        )),
        NOW,
    ));
    assert_eq!(by_day["trendBucket"], "day");
    assert_eq!(by_day["trend"][0]["start"], "2026-11-22");
    assert_eq!(trend_calls(&by_day), 10);
    for list in ["topCallers", "topDestinations"] {
        assert!(s[list].is_array(), "{list}: {s}");
    }
    let st = body_json(&f.app.handle(&as_admin(req("GET", "/api/status")), NOW));
    assert_eq!(st["box_name"], "test-box");
    assert_eq!(st["recentGaps"][0]["reason"], "connection refused");
    let h = body_json(&f.app.handle(&as_admin(req("GET", "/api/setup-help")), NOW));
    assert!(h["pbx"][0]["managerConf"]
        .as_str()
        .unwrap()
        .contains("permit = 10.0.0.50/255.255.255.255"));
    assert!(h["cdrManagerConf"]
        .as_str()
        .unwrap()
        .contains("sequence => Sequence"));
    let checks = h["checks"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c["title"].as_str().unwrap().contains("LinkedID") && c["ok"] == true),
        "{checks:?}"
    );
    assert_eq!(
        f.app
            .handle(&as_admin(req("GET", "/display.png")), NOW)
            .status,
        404
    );
}

#[test]
fn assets_have_etags_and_security_headers() {
    let f = fixture(true);
    let r = f.app.handle(&req("GET", "/assets/app.js"), NOW);
    assert_eq!(r.status, 200);
    assert!(r
        .header("Cache-Control")
        .unwrap()
        .contains("max-age=31536000"));
    let tag = r.header("ETag").unwrap().to_string();
    let r2 = f.app.handle(
        &with_header(req("GET", "/assets/app.js"), "If-None-Match", &tag),
        NOW,
    );
    assert_eq!(r2.status, 304);
    let page = f.app.handle(&as_admin(req("GET", "/")), NOW);
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(page.bytes());
    assert!(!html.contains("__V__") && html.contains("/assets/app.js?v="));
    assert!(!html.contains("<script>"), "no inline scripts (CSP)");
    for r in [&r, &page] {
        assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(r.header("X-Frame-Options"), Some("DENY"));
        assert_eq!(r.header("Referrer-Policy"), Some("no-referrer"));
        let csp = r.header("Content-Security-Policy").unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    }
    let r = f.app.handle(&as_admin(req("DELETE", "/api/calls")), NOW);
    assert_eq!(r.status, 405);
}

/// Issue 13 item 2: `[names]` puts a person beside the number in rows and calls, and a name
/// typed in the number fields finds the calls from and to that number, Cyrillic case folded.
#[test]
fn names_show_beside_numbers_and_find_calls() {
    let f = fixture(true);
    {
        let mut cfg = f.backend.config.lock().unwrap();
        cfg.push_str("\n[names]\n100 = \"Анна Петрова\"\n\"+7 495 0000060\" = \"Бухгалтерия\"\n");
    }
    let get = |target: &str| body_json(&f.app.handle(&as_admin(req("GET", target)), NOW));
    let v = get("/api/calls?sort=start_asc&limit=3");
    let recs = v["records"].as_array().unwrap();
    assert_eq!(recs[0]["destination"], "100");
    assert_eq!(recs[0]["destinationName"], "Анна Петрова");
    assert_eq!(recs[1]["source"], "+74950000060");
    assert_eq!(recs[1]["sourceName"], "Бухгалтерия");
    assert_eq!(recs[0]["sourceName"], Value::Null);
    let g = &v["groups"][1];
    assert_eq!(
        (g["sourceName"].as_str(), g["destinationName"].as_str()),
        (Some("Бухгалтерия"), Some("Анна Петрова"))
    );
    // Searching by name: "петрова" (lower case) finds every call to 100, none from it.
    let to = get("/api/calls?destination=%D0%BF%D0%B5%D1%82%D1%80%D0%BE%D0%B2%D0%B0");
    assert_eq!(to["total"], 10, "{to}");
    let from = get("/api/calls?source=%D0%BF%D0%B5%D1%82%D1%80%D0%BE%D0%B2%D0%B0");
    assert_eq!(from["total"], 0, "{from}");
    let from = get("/api/calls?source=%D0%B1%D1%83%D1%85");
    assert_eq!(from["total"], 1, "{from}");
    // The existing meaning stays: the CallerID text is still searched.
    let clid = get("/api/calls?source=%D0%98%D0%B2%D0%B0%D0%BD%D0%BE%D0%B2");
    assert_eq!(clid["total"], 10, "{clid}");
}
