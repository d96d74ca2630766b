//! `/api/tls`: the HTTPS certificate as the admin sees and changes it (issue 11 item 6).
//!
//! `GET` (any logged-in user): `{enabled, fingerprint, fingerprintColons, selfSigned,
//! certificate}` (the chain as PEM, for `curl --cacert`).
//! `PUT` (admin): `{certificate, key}` as PEM text — checked (the key must be the leaf's), stored
//! and served from the next connection on, no restart. `DELETE` (admin): back to a new
//! self-signed certificate. Without HTTPS (`[web] https = false`) only `GET` answers
//! (`enabled: false`); the rest is 409 saying how to turn it on.
//!
//! Must not do TLS itself: [`super::tls::BoxCertificate`] owns the files and the live key.

use serde_json::{json, Value};

use super::http::{Request, Response};
use super::tls::{fingerprint_colons, BoxCertificate, CertificateInfo, TlsError};

fn info_json(info: &CertificateInfo) -> Value {
    json!({
        "enabled": true,
        "fingerprint": info.fingerprint,
        "fingerprintColons": fingerprint_colons(&info.fingerprint),
        "selfSigned": info.self_signed,
        "certificate": &*info.certificate,
    })
}

fn not_enabled() -> Response {
    Response::error(
        409,
        None,
        "HTTPS is off: set [web] https = true (Settings, Web page) and restart the box first",
    )
}

fn refused(e: &TlsError) -> Response {
    match e {
        TlsError::Invalid(_) => Response::error(400, Some("certificate"), &e.to_string()),
        _ => {
            tracing::error!(target: "cdrbox::web", error = %e, "storing the HTTPS certificate");
            Response::error(
                500,
                None,
                &format!("the certificate could not be stored: {e}"),
            )
        }
    }
}

/// `GET /api/tls`.
pub fn get(cert: Option<&BoxCertificate>) -> Response {
    match cert {
        Some(c) => Response::json(200, &info_json(&c.info())),
        None => Response::json(200, &json!({ "enabled": false })),
    }
}

/// `PUT /api/tls` with `{"certificate": PEM, "key": PEM}`.
pub fn put(cert: Option<&BoxCertificate>, req: &Request) -> Response {
    let Some(c) = cert else {
        return not_enabled();
    };
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            return Response::error(
                400,
                Some("body"),
                &format!("body: expected JSON {{\"certificate\": PEM, \"key\": PEM}} ({e})"),
            )
        }
    };
    let field = |name: &str| body.get(name).and_then(Value::as_str).map(str::as_bytes);
    let (Some(pem), Some(key)) = (field("certificate"), field("key")) else {
        return Response::error(
            400,
            Some("body"),
            "body: expected JSON {\"certificate\": PEM text, \"key\": PEM text}",
        );
    };
    match c.install(pem, key) {
        Ok(info) => {
            tracing::info!(target: "cdrbox::web", peer = %req.peer, fingerprint = %info.fingerprint, "HTTPS certificate uploaded");
            Response::json(200, &info_json(&info))
        }
        Err(e) => refused(&e),
    }
}

/// `DELETE /api/tls`: a new self-signed certificate.
pub fn delete(cert: Option<&BoxCertificate>, req: &Request) -> Response {
    let Some(c) = cert else {
        return not_enabled();
    };
    match c.make_new_self_signed() {
        Ok(info) => {
            tracing::info!(target: "cdrbox::web", peer = %req.peer, fingerprint = %info.fingerprint, "new self-signed HTTPS certificate");
            Response::json(200, &info_json(&info))
        }
        Err(e) => refused(&e),
    }
}
