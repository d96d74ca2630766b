//! The page's files, compiled into the binary (no CDN, no build step): HTML, CSS, JS, icon.
//!
//! `/assets/*` is cached for a year and named by content (`?v=<hash>` in the HTML), so a new
//! binary's files are fetched at once; every file also has an ETag for `If-None-Match`. Only
//! the names below exist — there is no filesystem lookup, so no path traversal.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::http::{Body, Request, Response};

const INDEX_HTML: &str = include_str!("assets/index.html");
const LOGIN_HTML: &str = include_str!("assets/login.html");
const APP_CSS: &[u8] = include_bytes!("assets/app.css");
const APP_JS: &[u8] = include_bytes!("assets/app.js");
const LOGIN_JS: &[u8] = include_bytes!("assets/login.js");
const SETTINGS_JS: &[u8] = include_bytes!("assets/settings.js");
const SETTINGS_CSS: &[u8] = include_bytes!("assets/settings.css");
const FAVICON: &[u8] = include_bytes!("assets/favicon.svg");

const STATIC: &[(&str, &str, &[u8])] = &[
    ("/assets/app.css", "text/css; charset=utf-8", APP_CSS),
    ("/assets/app.js", "text/javascript; charset=utf-8", APP_JS),
    (
        "/assets/settings.js",
        "text/javascript; charset=utf-8",
        SETTINGS_JS,
    ),
    (
        "/assets/settings.css",
        "text/css; charset=utf-8",
        SETTINGS_CSS,
    ),
    (
        "/assets/login.js",
        "text/javascript; charset=utf-8",
        LOGIN_JS,
    ),
    ("/favicon.svg", "image/svg+xml", FAVICON),
];

fn etag(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    format!("\"{}\"", crate::hex::encode(&d[..8]))
}

/// One version string for all static files, put into the HTML's asset URLs.
fn version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        let mut h = Sha256::new();
        for (_, _, b) in STATIC {
            h.update(b);
        }
        crate::hex::encode(&h.finalize()[..6])
    })
}

fn cached(req: &Request, content_type: &str, bytes: Vec<u8>, cache: &str) -> Response {
    let tag = etag(&bytes);
    if req
        .header("if-none-match")
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag))
    {
        return Response::new(304, content_type, Body::Empty)
            .with_header("ETag", tag)
            .with_header("Cache-Control", cache);
    }
    Response::new(200, content_type, Body::Bytes(bytes))
        .with_header("ETag", tag)
        .with_header("Cache-Control", cache)
}

/// A public static file, if `req.path` names one.
pub fn public(req: &Request) -> Option<Response> {
    let (_, ct, bytes) = STATIC.iter().find(|(p, _, _)| *p == req.path)?;
    Some(cached(
        req,
        ct,
        bytes.to_vec(),
        "public, max-age=31536000, immutable",
    ))
}

fn page(req: &Request, html: &str) -> Response {
    cached(
        req,
        "text/html; charset=utf-8",
        html.replace("__V__", version()).into_bytes(),
        "no-cache",
    )
}

/// The app (needs a session; the router checks).
pub fn index_page(req: &Request) -> Response {
    page(req, INDEX_HTML)
}

/// The login / first-setup page (public).
pub fn login_page(req: &Request) -> Response {
    page(req, LOGIN_HTML)
}
