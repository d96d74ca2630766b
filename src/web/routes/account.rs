//! The account routes: first setup (`/api/setup`), login (`/api/login`) and password changes
//! (`/api/password`), and the session they hand out. The router and `authenticate` in `mod.rs`
//! decide who may call them; these only do the work.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::{check_origin, json_body, App, Principal, Request, Response};
use crate::web::auth::{self, Role, Session};
use crate::web::setup_code;

impl App {
    fn new_session(&self, user: &str, role: Role, now: i64) -> Result<(String, String), Response> {
        let rnd = |b: &mut [u8]| (self.random)(b);
        let token = auth::new_token(&rnd);
        let csrf = auth::new_token(&rnd);
        let (Ok(token), Ok(csrf)) = (token, csrf) else {
            return Err(Response::error(500, None, "no random numbers available"));
        };
        self.state().sessions.insert(
            token.clone(),
            Session {
                user: user.into(),
                role,
                csrf: csrf.clone(),
                created_utc: now,
                last_seen_utc: now,
            },
        );
        Ok((token, csrf))
    }

    fn session_response(&self, req: &Request, user: &str, role: Role, now: i64) -> Response {
        match self.new_session(user, role, now) {
            Ok((token, csrf)) => Response::json(
                200,
                &json!({"user": user, "role": role.as_str(), "csrf": csrf}),
            )
            .with_header("Set-Cookie", auth::session_cookie(&token, req.tls)),
            Err(r) => r,
        }
    }

    /// `GET /api/setup`: whether the first-visit form is open. While it is, the setup code
    /// exists (made now if `cdrbox run` has not), so the owner can read it from the box.
    pub(super) fn setup_state(&self) -> Response {
        let needs = self.needs_setup();
        if needs {
            if let Err(e) =
                setup_code::ensure(&self.setup_code_path(), &|b: &mut [u8]| (self.random)(b))
            {
                tracing::error!(target: "cdrbox::web", error = %e, "cannot make the setup code");
            }
        }
        Response::json(200, &json!({"needsSetup": needs, "codeRequired": needs}))
    }

    fn setup_code_path(&self) -> PathBuf {
        setup_code::path_for(&self.passwd_path)
    }

    /// `POST /api/setup {"code", "password"}`: only while no admin password exists, and only
    /// with the one-time setup code the box shows its owner. A wrong code counts as a failed
    /// login (per address) and against a box-wide budget; two setups at once: one wins, the
    /// other is told so (409) and gets no session.
    pub(super) fn first_setup(&self, req: &Request, now: i64) -> Response {
        if let Err(r) = check_origin(req) {
            return r;
        }
        {
            let mut st = self.state();
            let wait = st
                .limiter
                .check(req.peer, now)
                .err()
                .or_else(|| st.setup_failures.locked(now));
            if let Some(wait) = wait {
                return Response::error(
                    429,
                    None,
                    &format!("too many wrong setup codes or passwords; try again in {wait} s"),
                )
                .with_header("Retry-After", wait.to_string());
            }
        }
        if !self.needs_setup() {
            return Response::error(403, None, "the admin password is already set; log in");
        }
        let body = match json_body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let Some(password) = body.get("password").and_then(Value::as_str) else {
            return Response::error(400, Some("password"), "password: required");
        };
        if let Err(e) = auth::check_password_shape(password) {
            return Response::error(400, Some("password"), &e.to_string());
        }
        const WHERE: &str = "it is shown on the box's display, printed in the log of `cdrbox run` and by `cdrbox setup-code --config FILE`";
        let Some(typed) = body.get("code").and_then(Value::as_str) else {
            return Response::error(
                400,
                Some("code"),
                &format!("code: the setup code is required ({WHERE})"),
            );
        };
        let expected =
            match setup_code::ensure(&self.setup_code_path(), &|b: &mut [u8]| (self.random)(b)) {
                Ok(c) => c,
                Err(e) => {
                    return Response::error(500, None, &format!("cannot read the setup code: {e}"))
                }
            };
        if !setup_code::matches(&expected, typed) {
            let mut st = self.state();
            st.limiter.fail(req.peer, now);
            st.setup_failures.fail(now);
            tracing::warn!(target: "cdrbox::web", peer = %req.peer, "wrong setup code");
            return Response::error(
                403,
                Some("code"),
                &format!("code: wrong setup code ({WHERE})"),
            );
        }
        let mut salt = [0u8; 16];
        if (self.random)(&mut salt).is_err() {
            return Response::error(500, None, "no random numbers available");
        }
        let phc = match auth::hash_password(password, &salt) {
            Ok(p) => p,
            Err(e) => return Response::error(500, None, &e.to_string()),
        };
        match auth::create_admin(&self.passwd_path, phc) {
            Ok(()) => {}
            Err(auth::AuthError::AlreadySet) => {
                tracing::warn!(target: "cdrbox::web", peer = %req.peer, "lost a concurrent first setup");
                return Response::error(
                    409,
                    None,
                    "someone set the admin password a moment ago, so yours was not stored; log in with theirs, or reset it on the box with `cdrbox passwd`",
                );
            }
            Err(e) => return Response::error(500, None, &e.to_string()),
        }
        setup_code::remove(&self.setup_code_path());
        self.state().basic.clear();
        self.backend.setup_finished();
        tracing::info!(target: "cdrbox::web", peer = %req.peer, "admin password set by first setup");
        self.session_response(req, "admin", Role::Admin, now)
    }

    fn store_password(&self, user: &str, password: &str) -> Result<(), Response> {
        let mut salt = [0u8; 16];
        (self.random)(&mut salt)
            .map_err(|_| Response::error(500, None, "no random numbers available"))?;
        let phc = auth::hash_password(password, &salt)
            .map_err(|e| Response::error(500, None, &e.to_string()))?;
        let _lock = auth::lock_passwd(&self.passwd_path)
            .map_err(|e| Response::error(500, None, &e.to_string()))?;
        let mut file = self.passwords()?;
        file.set(user, phc);
        file.save(&self.passwd_path)
            .map_err(|e| Response::error(500, None, &e.to_string()))?;
        let mut st = self.state();
        st.basic.clear();
        Ok(())
    }

    /// `POST /api/login {"user", "password"}` → session cookie + CSRF token.
    pub(super) fn login(&self, req: &Request, now: i64) -> Response {
        if let Err(r) = check_origin(req) {
            return r;
        }
        let body = match json_body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let user = body.get("user").and_then(Value::as_str).unwrap_or("admin");
        let Some(password) = body.get("password").and_then(Value::as_str) else {
            return Response::error(400, Some("password"), "password: required");
        };
        match self.check_password(req, user, password, now) {
            Ok(p) => self.session_response(req, &p.user, p.role, now),
            Err(mut r) => {
                // No Basic challenge for the login form: browsers would pop up a dialog.
                r.headers
                    .retain(|(k, _)| !k.eq_ignore_ascii_case("www-authenticate"));
                r
            }
        }
    }

    /// `POST /api/password {"user"?, "current"?, "password"}`: admin sets its own (with the
    /// current one) or the viewer's password.
    pub(super) fn change_password(&self, req: &Request, who: &Principal) -> Response {
        if who.role != Role::Admin {
            return Response::error(403, None, "the viewer account cannot change passwords");
        }
        let body = match json_body(req) {
            Ok(b) => b,
            Err(r) => return r,
        };
        let user = body.get("user").and_then(Value::as_str).unwrap_or("admin");
        if Role::of_user(user).is_none() {
            return Response::error(400, Some("user"), "user: must be admin or viewer");
        }
        let Some(password) = body.get("password").and_then(Value::as_str) else {
            return Response::error(400, Some("password"), "password: required");
        };
        if let Err(e) = auth::check_password_shape(password) {
            return Response::error(400, Some("password"), &e.to_string());
        }
        if user == "admin" {
            let current = body.get("current").and_then(Value::as_str).unwrap_or("");
            let file = match self.passwords() {
                Ok(f) => f,
                Err(r) => return r,
            };
            if !file
                .hash_of("admin")
                .is_some_and(|h| auth::verify_password(h, current))
            {
                return Response::error(400, Some("current"), "current: wrong password");
            }
        }
        if let Err(r) = self.store_password(user, password) {
            return r;
        }
        self.state()
            .sessions
            .remove_user(user, who.session.as_deref());
        Response::json(200, &json!({"ok": true}))
    }
}
