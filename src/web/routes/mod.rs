//! Routes: one parsed [`Request`] in, one [`Response`] out. No sockets here (the server adapter
//! owns them), so every rule — who may see what, which parameters are bad, what a change needs —
//! is tested by calling [`App::handle`] directly.
//!
//! Long answers are not built here: a download is [`Body::Export`] and the live feed is
//! [`Body::Events`]; the server streams them after this function has checked everything.
//!
//! Map: this file routes and authenticates (session cookie, HTTP Basic, login rate limits);
//! `account` holds login, first setup, password changes and new sessions; `calls` the data
//! routes (calls, stats, exports); `admin` the ones that change or describe the box (import,
//! settings, setup help).

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};

mod account;
mod admin;
mod calls;

pub use calls::CALLS_PAGE_BYTES;

use super::auth::{self, PasswordFile, Role};
use super::export::Exporter;
pub use super::http::{Body, Request, Response};
use super::query::ParamError;
use super::{assets, certificate, Backend, BackendError};

/// Who is asking, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub role: Role,
    /// The session's CSRF token; `None` for HTTP Basic (scripts), which needs none.
    pub csrf: Option<String>,
    pub session: Option<String>,
}

#[derive(Debug)]
struct AuthState {
    sessions: auth::Sessions,
    limiter: auth::LoginLimiter,
    basic: auth::BasicCache,
    setup_failures: SetupFailures,
}

/// Wrong setup codes box-wide: at most [`SETUP_FAILURES`] per hour from all addresses together,
/// so many addresses (an IPv6 LAN has plenty) cannot share out the guessing.
#[derive(Debug, Default)]
struct SetupFailures(Vec<i64>);

const SETUP_FAILURES: usize = 30;
const SETUP_WINDOW_SECS: i64 = 3600;

impl SetupFailures {
    fn locked(&mut self, now: i64) -> Option<i64> {
        self.0.retain(|t| now - t < SETUP_WINDOW_SECS);
        (self.0.len() >= SETUP_FAILURES)
            .then(|| (self.0.iter().min().copied().unwrap_or(now) + SETUP_WINDOW_SECS - now).max(1))
    }

    fn fail(&mut self, now: i64) {
        self.0.push(now);
    }
}

/// Random bytes for tokens and salts (injected so tests are deterministic if they wish).
pub type Random = Arc<dyn Fn(&mut [u8]) -> io::Result<()> + Send + Sync>;

/// The web application: the backend, the exporter, and the auth bookkeeping.
pub struct App {
    backend: Arc<dyn Backend>,
    exporter: Arc<dyn Exporter>,
    passwd_path: PathBuf,
    random: Random,
    state: Mutex<AuthState>,
    /// The HTTPS certificate, when HTTPS is on (`/api/tls`).
    certificate: Option<Arc<super::tls::BoxCertificate>>,
}

impl App {
    pub fn new(
        backend: Arc<dyn Backend>,
        exporter: Arc<dyn Exporter>,
        passwd_path: PathBuf,
        random: Random,
    ) -> Self {
        auth::tighten_passwd_mode(&passwd_path);
        let mut key = [0u8; 32];
        // A cache key from a failing RNG would still be per-process; never fatal.
        let _ = random(&mut key);
        Self {
            backend,
            exporter,
            passwd_path,
            random,
            state: Mutex::new(AuthState {
                sessions: auth::Sessions::default(),
                limiter: auth::LoginLimiter::default(),
                basic: auth::BasicCache::new(key),
                setup_failures: SetupFailures::default(),
            }),
            certificate: None,
        }
    }

    /// HTTPS is on with this certificate.
    pub fn with_certificate(mut self, c: Arc<super::tls::BoxCertificate>) -> Self {
        self.certificate = Some(c);
        self
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn exporter(&self) -> &Arc<dyn Exporter> {
        &self.exporter
    }

    fn state(&self) -> MutexGuard<'_, AuthState> {
        // A panic while holding the lock leaves plain maps behind; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn passwords(&self) -> Result<PasswordFile, Response> {
        PasswordFile::load(&self.passwd_path).map_err(|e| {
            tracing::error!(target: "cdrbox::web", error = %e, "reading the password file");
            Response::error(500, None, &format!("cannot read the password file: {e}"))
        })
    }

    /// True while no admin password exists (the first-setup page is open).
    pub fn needs_setup(&self) -> bool {
        self.passwords()
            .map(|f| f.hash_of("admin").is_none())
            .unwrap_or(false)
    }

    /// Answers one request at box time `now` (Unix seconds).
    pub fn handle(&self, req: &Request, now: i64) -> Response {
        let r = self.route(req, now);
        security_headers(r)
    }

    fn route(&self, req: &Request, now: i64) -> Response {
        let m = req.method.as_str();
        let is_read = m == "GET" || m == "HEAD";
        // Public: the login/setup page and the static files it needs (they hold no data).
        if is_read {
            if let Some(asset) = assets::public(req) {
                return asset;
            }
        }
        match (m, req.path.as_str()) {
            ("GET" | "HEAD", "/login") => return assets::login_page(req),
            ("GET", "/api/setup") => return self.setup_state(),
            ("POST", "/api/setup") => return self.first_setup(req, now),
            ("POST", "/api/login") => return self.login(req, now),
            _ => {}
        }
        let principal = match self.authenticate(req, now) {
            Ok(p) => p,
            Err(resp) => {
                // A browser asking for a page goes to the login page instead.
                let wants_page = is_read && req.path == "/";
                if wants_page && resp.status == 401 {
                    return Response::new(303, "text/plain", Body::Empty)
                        .with_header("Location", "/login");
                }
                return resp;
            }
        };
        if !is_read {
            if let Err(resp) = check_change(req, &principal) {
                return resp;
            }
        }
        match (m, req.path.as_str()) {
            ("GET" | "HEAD", "/") => assets::index_page(req),
            ("GET", "/api/session") => Response::json(
                200,
                &json!({
                    "user": principal.user,
                    "role": principal.role.as_str(),
                    "csrf": principal.csrf,
                    "profiles": self.exporter.profiles(),
                }),
            ),
            ("POST", "/api/logout") => {
                if let Some(t) = &principal.session {
                    self.state().sessions.remove(t);
                }
                Response::json(200, &json!({"ok": true}))
                    .with_header("Set-Cookie", auth::clear_cookie(req.tls))
            }
            ("POST", "/api/password") => self.change_password(req, &principal),
            ("GET", "/api/status") => self.status(now),
            ("GET", "/api/calls") => self.calls(req),
            ("GET", "/api/calls/count") => self.calls_count(req),
            ("GET", "/api/stats") => self.stats(req),
            ("GET", "/api/events") => Response::new(200, "text/event-stream", Body::Events)
                .with_header("Cache-Control", "no-store"),
            ("GET", "/api/config") => self.config_get(),
            ("PUT", "/api/config") => {
                if principal.role != Role::Admin {
                    return Response::error(403, None, "the viewer account cannot change settings");
                }
                self.config_put(req)
            }
            ("POST", "/api/import") => {
                if principal.role != Role::Admin {
                    return Response::error(403, None, "the viewer account cannot import calls");
                }
                self.import(req)
            }
            ("POST", "/api/alarms/test") => {
                if principal.role != Role::Admin {
                    return Response::error(403, None, "the viewer account cannot send alarms");
                }
                match self
                    .backend
                    .send_test_alarm(&format!("from the web page, {}", req.peer))
                {
                    Ok(id) => Response::json(202, &json!({"queued": id})),
                    Err(e) => backend_error(&e),
                }
            }
            ("POST", "/api/restart") => {
                if principal.role != Role::Admin {
                    return Response::error(403, None, "the viewer account cannot restart the box");
                }
                match self.backend.restart() {
                    Ok(()) => {
                        tracing::warn!(target: "cdrbox::web", peer = %req.peer, "restart requested from the settings page");
                        Response::json(202, &json!({"restarting": true}))
                    }
                    Err(e) => backend_error(&e),
                }
            }
            ("GET", "/api/setup-help") => self.setup_help(),
            ("GET", "/api/tls") => certificate::get(self.certificate.as_deref()),
            ("PUT" | "DELETE", "/api/tls") => {
                if principal.role != Role::Admin {
                    return Response::error(
                        403,
                        None,
                        "the viewer account cannot change the certificate",
                    );
                }
                if m == "PUT" {
                    certificate::put(self.certificate.as_deref(), req)
                } else {
                    certificate::delete(self.certificate.as_deref(), req)
                }
            }
            ("GET" | "HEAD", "/display.png") => match self.backend.display_png() {
                Some(png) => Response::new(200, "image/png", Body::Bytes(png))
                    .with_header("Cache-Control", "no-store"),
                None => Response::error(404, None, "no display is rendered"),
            },
            ("GET" | "HEAD", p) if p.starts_with("/export.") => {
                self.export(req, &p["/export.".len()..])
            }
            (_, p) if known_path(p) => {
                Response::error(405, None, &format!("{m} is not allowed on {p}"))
            }
            (_, p) => Response::error(404, None, &format!("no such page: {p}")),
        }
    }

    /// Session cookie or HTTP Basic. Failed Basic attempts count against the address.
    fn authenticate(&self, req: &Request, now: i64) -> Result<Principal, Response> {
        if let Some(h) = req.header("authorization") {
            let Some((user, password)) = auth::parse_basic(h) else {
                return Err(unauthorized(
                    req,
                    "malformed Authorization header; use HTTP Basic",
                ));
            };
            return self.check_password(req, &user, &password, now);
        }
        if let Some(token) = req
            .header("cookie")
            .and_then(|c| auth::cookie_value(c, auth::SESSION_COOKIE))
        {
            if let Some(s) = self.state().sessions.get(token, now) {
                return Ok(Principal {
                    user: s.user,
                    role: s.role,
                    csrf: Some(s.csrf),
                    session: Some(token.to_string()),
                });
            }
        }
        Err(unauthorized(
            req,
            "log in first (session cookie or HTTP Basic)",
        ))
    }

    /// Verifies a password, rate-limited per address. The slow hash runs outside the lock.
    fn check_password(
        &self,
        req: &Request,
        user: &str,
        password: &str,
        now: i64,
    ) -> Result<Principal, Response> {
        let locked = |wait: i64| {
            Response::error(
                429,
                None,
                &format!("too many failed logins; try again in {wait} s"),
            )
            .with_header("Retry-After", wait.to_string())
        };
        {
            let mut st = self.state();
            if let Err(wait) = st.limiter.check(req.peer, now) {
                return Err(locked(wait));
            }
            if st.basic.get(user, password, now) {
                if let Some(role) = Role::of_user(user) {
                    return Ok(Principal {
                        user: user.into(),
                        role,
                        csrf: None,
                        session: None,
                    });
                }
            }
            // Counted before the slow hash, so concurrent guesses cannot pass the limit.
            if let Err(wait) = st.limiter.begin(req.peer, now) {
                return Err(locked(wait));
            }
        }
        let file = match self.passwords() {
            Ok(f) => f,
            Err(r) => {
                self.state().limiter.end(req.peer);
                return Err(r);
            }
        };
        let ok = match (Role::of_user(user), file.hash_of(user)) {
            (Some(_), Some(phc)) => auth::verify_password(phc, password),
            _ => {
                // Spend the same time for unknown users, so names cannot be probed.
                let _ = auth::verify_password(dummy_hash(), password);
                false
            }
        };
        let mut st = self.state();
        st.limiter.end(req.peer);
        match (ok, Role::of_user(user)) {
            (true, Some(role)) => {
                st.limiter.succeed(req.peer);
                st.basic.put(user, password, now);
                Ok(Principal {
                    user: user.into(),
                    role,
                    csrf: None,
                    session: None,
                })
            }
            _ => {
                st.limiter.fail(req.peer, now);
                tracing::warn!(target: "cdrbox::web", peer = %req.peer, user, "failed login");
                Err(unauthorized(req, "wrong user name or password"))
            }
        }
    }

    fn status(&self, now: i64) -> Response {
        let status = self.backend.status();
        let mut v = serde_json::to_value(&status).unwrap_or(Value::Null);
        let week = now - 7 * 86_400;
        let gaps: Vec<Value> = self
            .backend
            .gaps(week, now + 1)
            .into_iter()
            .map(|g| {
                let filled = g
                    .filled
                    .map(|(from, records)| json!({"from": from, "records": records}));
                json!({"pbx": g.pbx, "fromUtc": g.from_utc, "toUtc": g.to_utc, "reason": g.reason,
                    "open": filled.is_none(), "filled": filled})
            })
            .collect();
        v["recentGaps"] = Value::Array(gaps);
        Response::json(200, &v)
    }
}

/// 400 naming the parameter to fix.
fn bad_param(e: &ParamError) -> Response {
    Response::error(400, Some(&e.param), &e.to_string())
}

/// A real argon2id hash (of nothing anyone types), verified against for unknown users so
/// that they take as long as known ones.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| auth::hash_password("\u{0}no-such-user", &[0x5a; 16]).unwrap_or_default())
}

fn known_path(p: &str) -> bool {
    matches!(
        p,
        "/" | "/login"
            | "/api/setup"
            | "/api/login"
            | "/api/logout"
            | "/api/session"
            | "/api/password"
            | "/api/status"
            | "/api/calls"
            | "/api/calls/count"
            | "/api/stats"
            | "/api/events"
            | "/api/config"
            | "/api/restart"
            | "/api/alarms/test"
            | "/api/setup-help"
            | "/api/import"
            | "/api/tls"
            | "/display.png"
    )
}

/// 401 with a Basic challenge for scripts; none for the page's own fetches (which send
/// `X-Requested-With`), so browsers show our login page rather than their dialog.
fn unauthorized(req: &Request, message: &str) -> Response {
    let r = Response::error(401, None, message);
    if req.header("x-requested-with").is_some() {
        r
    } else {
        r.with_header(
            "WWW-Authenticate",
            "Basic realm=\"cdrbox\", charset=\"UTF-8\"",
        )
    }
}

/// A change must come from our own page: same origin when the browser says, and with the
/// session's CSRF token when authenticated by cookie. Viewers change nothing but their session.
fn check_change(req: &Request, who: &Principal) -> Result<(), Response> {
    check_origin(req)?;
    if let Some(csrf) = &who.csrf {
        let sent = req.header(auth::CSRF_HEADER).unwrap_or("");
        if !auth::constant_time_eq(sent.as_bytes(), csrf.as_bytes()) {
            return Err(Response::error(
                403,
                Some("X-CSRF-Token"),
                "missing or wrong CSRF token (reload the page)",
            ));
        }
    }
    Ok(())
}

/// Rejects a request whose `Origin` names another site (CSRF through cached Basic credentials).
fn check_origin(req: &Request) -> Result<(), Response> {
    let (Some(origin), Some(host)) = (req.header("origin"), req.header("host")) else {
        return Ok(());
    };
    let origin_host = origin
        .split_once("://")
        .map(|(_, h)| h)
        .unwrap_or(origin)
        .trim_end_matches('/');
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(Response::error(
            403,
            Some("Origin"),
            &format!("cross-site request from {origin} refused"),
        ))
    }
}

fn json_body(req: &Request) -> Result<Value, Response> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Response::error(
            400,
            Some("body"),
            "body: expected a JSON object",
        )),
        Err(e) => Err(Response::error(
            400,
            Some("body"),
            &format!("body: not JSON: {e}"),
        )),
    }
}

fn backend_error(e: &BackendError) -> Response {
    match e {
        BackendError::Invalid { field, .. } => Response::error(400, Some(field), &e.to_string()),
        BackendError::Unavailable(_) => {
            Response::error(503, None, &e.to_string()).with_header("Retry-After", "5")
        }
        _ => {
            tracing::error!(target: "cdrbox::web", error = %e, "backend failed");
            Response::error(500, None, &e.to_string())
        }
    }
}

/// Headers on every answer: no sniffing, no framing, no referrer, scripts only from us.
pub fn security_headers(r: Response) -> Response {
    r.with_header(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    )
    .with_header("X-Content-Type-Options", "nosniff")
    .with_header("Referrer-Policy", "no-referrer")
    .with_header("X-Frame-Options", "DENY")
}
