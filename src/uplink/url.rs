//! `[uplink] url`: a libpq-style `postgres://user:password@host:5432/db?sslmode=…` turned into
//! a tokio-postgres `Config` plus the TLS choice, and the one redaction of its password used by
//! `Debug`, logs, `/api/config` and every error. Pure code, no I/O.
//!
//! `sslmode` takes libpq's names, limited to the safe ones: `verify-full` (the default when
//! absent: encrypted, chain checked against the CA, host name checked), `require` (encrypted,
//! the certificate not checked — libpq's meaning) and `disable` (plain text, only when written
//! out). `prefer`/`allow` would silently fall back to plain text and are refused.
//! `sslrootcert=FILE` in the URL is the same as `[uplink] ca_file`.

use std::path::PathBuf;

/// How the uplink protects its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP (explicit choice only).
    Disable,
    /// TLS without checking the certificate (libpq's `require`).
    Require,
    /// TLS, certificate chain and host name checked.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Why a URL is not usable. Messages never contain the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("uplink.url {url:?} must start with postgres:// or postgresql://")]
    Scheme { url: String },
    #[error("uplink.url {url:?} names no host (postgres://user:password@HOST:5432/db)")]
    NoHost { url: String },
    #[error("uplink.url {url:?} names no user (postgres://USER:password@host:5432/db)")]
    NoUser { url: String },
    #[error("uplink.url {url:?} names no database (postgres://user:password@host:5432/DB)")]
    NoDatabase { url: String },
    #[error(
        "uplink.url {url:?}: sslmode={value:?} is not allowed; use verify-full (default), \
         require (encrypted, certificate not checked) or disable (plain text)"
    )]
    SslMode { url: String, value: String },
    #[error("uplink.url {url:?}: {reason}")]
    Invalid { url: String, reason: String },
}

/// A parsed uplink URL. `Debug` and [`redacted`](Self::redacted) never show the password.
#[derive(Clone)]
pub struct UplinkUrl {
    redacted: String,
    pub config: tokio_postgres::Config,
    pub sslmode: SslMode,
    /// `sslrootcert=` from the URL.
    pub root_cert: Option<PathBuf>,
    /// The host TLS checks the certificate against (the first host of the URL).
    pub host: String,
    pub user: String,
    pub database: String,
}

impl std::fmt::Debug for UplinkUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("UplinkUrl").field(&self.redacted).finish()
    }
}

impl PartialEq for UplinkUrl {
    fn eq(&self, other: &Self) -> bool {
        // Same text (password included) means same settings.
        self.redacted == other.redacted
            && self.config.get_password() == other.config.get_password()
            && self.sslmode == other.sslmode
            && self.root_cert == other.root_cert
    }
}

/// `url` with the password replaced by `***` (userinfo `user:secret@` → `user:***@`); anything
/// that does not look like a URL is returned with everything after the scheme's `//` up to an
/// `@` hidden, so a mistyped URL never leaks a password either.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return match url.rfind('@') {
            Some(at) => format!("***{}", &url[at..]),
            None => url.to_string(),
        };
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..auth_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let user = match userinfo.find(':') {
        Some(colon) => format!("{}:***", &userinfo[..colon]),
        None => userinfo.to_string(),
    };
    format!("{}{}{}", &url[..rest_start], user, &url[rest_start + at..])
}

impl UplinkUrl {
    pub fn parse(url: &str) -> Result<UplinkUrl, UrlError> {
        let redacted = redact(url.trim());
        let url = url.trim();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(UrlError::Scheme { url: redacted });
        }
        // Take out the parameters tokio-postgres does not know (or knows differently).
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let mut sslmode = SslMode::VerifyFull;
        let mut root_cert = None;
        let mut kept: Vec<&str> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => {
                    sslmode = match v {
                        "disable" => SslMode::Disable,
                        "require" => SslMode::Require,
                        "verify-full" => SslMode::VerifyFull,
                        other => {
                            return Err(UrlError::SslMode {
                                url: redacted,
                                value: other.to_string(),
                            })
                        }
                    }
                }
                "sslrootcert" => root_cert = Some(PathBuf::from(percent_decode(v))),
                _ => kept.push(pair),
            }
        }
        let rebuilt = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config: tokio_postgres::Config =
            rebuilt.parse().map_err(|e: tokio_postgres::Error| {
                // tokio-postgres' parse errors name the option, never the password.
                UrlError::Invalid {
                    url: redacted.clone(),
                    reason: e.to_string(),
                }
            })?;
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => return Err(UrlError::NoHost { url: redacted }),
        };
        let user = match config.get_user() {
            Some(u) if !u.is_empty() => u.to_string(),
            _ => return Err(UrlError::NoUser { url: redacted }),
        };
        let database = match config.get_dbname() {
            Some(d) if !d.is_empty() => d.to_string(),
            _ => return Err(UrlError::NoDatabase { url: redacted }),
        };
        config.ssl_mode(match sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            _ => tokio_postgres::config::SslMode::Require,
        });
        config.application_name("cdrbox");
        Ok(UplinkUrl {
            redacted,
            config,
            sslmode,
            root_cert,
            host,
            user,
            database,
        })
    }

    /// The URL with `***` for the password: for logs, the page and errors.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_redacted_everywhere() {
        let raw = "postgres://cdr:s3cr%40t@db.example:5433/calls?sslmode=require";
        let u = UplinkUrl::parse(raw).unwrap();
        assert_eq!(
            u.redacted(),
            "postgres://cdr:***@db.example:5433/calls?sslmode=require"
        );
        assert!(!format!("{u:?}").contains("s3cr"));
        assert_eq!(u.config.get_password(), Some(&b"s3cr@t"[..]));
        assert_eq!(u.sslmode, SslMode::Require);
        assert_eq!(u.host, "db.example");
        assert_eq!(u.user, "cdr");
        assert_eq!(u.database, "calls");
        // Errors carry the redacted form only.
        let e = UplinkUrl::parse("postgres://cdr:hunter2@db/calls?sslmode=prefer").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("verify-full"), "{e}");
        let e = UplinkUrl::parse("mysql://cdr:hunter2@db/calls").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = UplinkUrl::parse("postgres://cdr:hunter2@db/calls?port=x").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert_eq!(redact("cdr:hunter2@db"), "***@db");
        assert_eq!(redact("postgres://db/calls"), "postgres://db/calls");
        assert_eq!(redact("postgres://u@db/calls"), "postgres://u@db/calls");
    }

    #[test]
    fn sslmode_defaults_to_verify_full_and_plain_text_must_be_written_out() {
        let u = UplinkUrl::parse("postgresql://cdr:pw@127.0.0.1/calls").unwrap();
        assert_eq!(u.sslmode, SslMode::VerifyFull);
        let u = UplinkUrl::parse("postgres://cdr:pw@127.0.0.1/calls?sslmode=disable").unwrap();
        assert_eq!(u.sslmode, SslMode::Disable);
        let u = UplinkUrl::parse(
            "postgres://cdr:pw@h/calls?sslrootcert=%2Fetc%2Fca.pem&connect_timeout=5",
        )
        .unwrap();
        assert_eq!(u.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(
            u.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(5))
        );
    }

    #[test]
    fn missing_parts_are_named() {
        assert!(matches!(
            UplinkUrl::parse("postgres://cdr:pw@h"),
            Err(UrlError::NoDatabase { .. })
        ));
        assert!(matches!(
            UplinkUrl::parse("postgres://h/calls"),
            Err(UrlError::NoUser { .. })
        ));
    }
}
