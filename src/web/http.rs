//! The request and response types the pure routes speak ([`Request`] in, [`Response`] out),
//! shared by `routes`, `assets` and the server adapter. No sockets and no routing here; its own
//! module so that `assets` and `routes` do not import each other.

use std::net::IpAddr;

use serde_json::{json, Value};

use super::export::ExportFormat;
use crate::filter::{Filter, Sort};

/// A request as the routes see it. Header names are lower case.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The raw query string (after `?`), not decoded.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub peer: IpAddr,
    /// The request came over HTTPS (cookies are then `Secure`).
    pub tls: bool,
}

impl Request {
    /// A bodyless request, for tests and internal use.
    pub fn get(path_and_query: &str) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Self {
            method: "GET".into(),
            path: path.into(),
            query: query.into(),
            headers: vec![],
            body: vec![],
            peer: IpAddr::from([127, 0, 0, 1]),
            tls: false,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What to send back.
#[derive(Debug)]
pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    Static(&'static [u8]),
    /// Stream the whole filtered set in `format`.
    Export {
        format: ExportFormat,
        profile: String,
        filter: Box<Filter>,
        sort: Sort,
        /// CSV cells get the formula guard (off only by `?formulaGuard=off`).
        formula_guard: bool,
        /// The CSV separator asked for (`?separator=`); `None`: the profile's own.
        separator: Option<u8>,
    },
    /// Server-Sent Events: one `record` event per new record.
    Events,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: Body) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }

    pub fn json(status: u16, v: &Value) -> Self {
        let mut r = Self::new(
            status,
            "application/json",
            Body::Bytes(v.to_string().into_bytes()),
        );
        r.headers.push(("Cache-Control".into(), "no-store".into()));
        r
    }

    /// `{"error": message, "param": name}`.
    pub fn error(status: u16, param: Option<&str>, message: &str) -> Self {
        let mut v = json!({ "error": message });
        if let Some(p) = param {
            v["param"] = json!(p);
        }
        Self::json(status, &v)
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body bytes, when it is not a stream.
    pub fn bytes(&self) -> &[u8] {
        match &self.body {
            Body::Bytes(b) => b,
            Body::Static(b) => b,
            _ => &[],
        }
    }
}
