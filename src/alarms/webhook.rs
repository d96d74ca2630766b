//! Webhook delivery: the message's JSON POSTed to `[alarms] webhook_url` with `ureq` (blocking,
//! rustls with the ring provider — the delivery loop is one plain thread per channel, so an
//! async client would only add a runtime; ureq is small and keeps no connection pool we need).
//!
//! Each POST carries `Idempotency-Key: <message id>` (also `"id"` in the body) so a receiver can
//! drop a repeat, and `Authorization: Bearer <token>` when `[alarms] webhook_token` is set. A
//! 2xx answer is delivery; 4xx (but 408/429) means the receiver refused this message; anything
//! else (no answer, 5xx, 408, 429) means the channel is failing.
//!
//! Must not: put the URL's user/password or the token in a message ([`redacted`]).

use std::path::Path;
use std::time::Duration;

use super::message::Message;
use super::Failure;

/// How long one POST may take.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(20);

/// `url` without user, password or query (which may hold a token), for logs and the page.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(an invalid webhook_url)".into();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (hostport, path) = match rest.split_once('/') {
        Some((h, p)) => (h, p),
        None => (rest, ""),
    };
    let host = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
    let path = if path.is_empty() { "" } else { "/…" };
    format!("{scheme}://{host}{path}")
}

/// The webhook channel.
pub struct WebhookChannel {
    url: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookChannel({})", redacted(&self.url))
    }
}

impl WebhookChannel {
    /// `ca_file`: a PEM file of the certificate authorities to trust instead of the public
    /// web roots (a receiver with its own CA).
    pub fn new(url: &str, token: &str, ca_file: Option<&Path>) -> Result<WebhookChannel, String> {
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err("[alarms] webhook_url must start with http:// or https://".into());
        }
        let mut tls = ureq::tls::TlsConfig::builder().provider(ureq::tls::TlsProvider::Rustls);
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("[alarms] ca_file {}: {e}", path.display()))?;
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(format!(
                    "[alarms] ca_file {} holds no PEM certificate",
                    path.display()
                ));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(WEBHOOK_TIMEOUT))
            .http_status_as_error(false)
            .tls_config(tls.build())
            .build()
            .new_agent();
        Ok(WebhookChannel {
            url: url.to_owned(),
            token: (!token.is_empty()).then(|| token.to_owned()),
            agent,
        })
    }

    pub fn describe(&self) -> String {
        redacted(&self.url)
    }

    /// One POST of `m.json`.
    pub fn send(&self, m: &Message) -> Result<(), Failure> {
        let body = serde_json::to_vec(&m.json).map_err(|e| Failure::Message(e.to_string()))?;
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", &m.id)
            .header("User-Agent", concat!("cdrbox/", env!("CARGO_PKG_VERSION")));
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let where_ = redacted(&self.url);
        match req.send(&body[..]) {
            Ok(resp) => {
                let code = resp.status().as_u16();
                match code {
                    200..=299 => Ok(()),
                    408 | 429 => Err(Failure::Channel(format!("{where_} answered {code}"))),
                    400..=499 => Err(Failure::Message(format!(
                        "{where_} refused the message with HTTP {code}"
                    ))),
                    _ => Err(Failure::Channel(format!("{where_} answered HTTP {code}"))),
                }
            }
            Err(e) => Err(Failure::Channel(format!("{where_}: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_only_scheme_and_host() {
        assert_eq!(
            redacted("https://u:pw@hooks.example.com/services/T0/B1/xyz?token=abc"),
            "https://hooks.example.com/…"
        );
        assert_eq!(redacted("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert!(WebhookChannel::new("ftp://x", "", None).is_err());
    }
}
