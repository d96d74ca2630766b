//! E-mail delivery with `lettre` over rustls (ring provider): `[alarms] smtp_url` parsed once
//! into an [`SmtpChannel`], one SMTP session per message.
//!
//! The URL: `smtp://user:password@host:587` uses STARTTLS whenever the server offers it,
//! `smtp://…?tls=required` refuses a server that does not, `smtps://host:465` speaks TLS from
//! the first byte. The password is percent-decoded (`%40` for `@`) and never appears in a
//! message: [`redacted`] is what logs and the status page show.
//!
//! Must not: decide what to send or when (policy, outbox), or retry (the delivery loop does).

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{SmtpTransport, Transport};

use super::message::Message;
use super::Failure;

/// How long one SMTP session may take (connect, TLS, AUTH, DATA).
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// STARTTLS when the server offers it, plain otherwise (`smtp://`).
    Opportunistic,
    /// STARTTLS or refuse (`smtp://…?tls=required`).
    Required,
    /// TLS from the start (`smtps://`).
    Wrapper,
}

/// A parsed `smtp_url`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub user: Option<String>,
    password: Option<String>,
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl std::fmt::Display for SmtpUrl {
    /// The URL with the password as `***`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls == TlsMode::Wrapper {
            "smtps"
        } else {
            "smtp"
        };
        write!(f, "{scheme}://")?;
        if let Some(u) = &self.user {
            write!(f, "{u}")?;
            if self.password.is_some() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{}:{}", self.host, self.port)?;
        }
        if self.tls == TlsMode::Required {
            f.write_str("?tls=required")?;
        }
        Ok(())
    }
}

fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a '%' must be followed by two hex digits (write %25 for '%')")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the user or password is not UTF-8 text".to_owned())
}

impl SmtpUrl {
    /// Parses `smtp[s]://[user[:password]@]host[:port][?tls=required]`. The error never
    /// quotes the URL (it may hold a password).
    pub fn parse(url: &str) -> Result<SmtpUrl, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("write it as smtp://user:password@host:587 or smtps://user:password@host:465")?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let tls = match (scheme.to_ascii_lowercase().as_str(), query) {
            ("smtp", None) => TlsMode::Opportunistic,
            ("smtp", Some("tls=required")) => TlsMode::Required,
            ("smtp", Some("tls=opportunistic")) => TlsMode::Opportunistic,
            ("smtps", None) => TlsMode::Wrapper,
            ("smtp" | "smtps", Some(_)) => {
                return Err("the only option after '?' is tls=required".into())
            }
            _ => return Err("the address must start with smtp:// or smtps://".into()),
        };
        let (host, port) = match hostport.strip_prefix('[') {
            Some(v6) => {
                let (h, after) = v6
                    .split_once(']')
                    .ok_or("an IPv6 address needs its closing ']'")?;
                (h, after.strip_prefix(':'))
            }
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            },
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or("the port after the host must be a number from 1 to 65535")?,
            None if tls == TlsMode::Wrapper => 465,
            None => 587,
        };
        if host.is_empty() || host.contains(['/', ' ', '@']) {
            return Err("the address needs a mail server name after the '@'".into());
        }
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((u, p)) => (Some(decode(u)?), Some(decode(p)?)),
                None => (Some(decode(u)?), None),
            },
        };
        Ok(SmtpUrl {
            host: host.to_owned(),
            port,
            tls,
            user: user.filter(|u| !u.is_empty()),
            password,
        })
    }
}

/// `url` with its password replaced by `***`, or a placeholder when it does not parse.
pub fn redacted(url: &str) -> String {
    SmtpUrl::parse(url).map_or_else(|_| "(an invalid smtp_url)".to_owned(), |u| u.to_string())
}

/// The e-mail channel: where to connect, who sends, who receives.
pub struct SmtpChannel {
    url: SmtpUrl,
    from: Mailbox,
    to: Vec<Mailbox>,
    transport: SmtpTransport,
}

impl std::fmt::Debug for SmtpChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SmtpChannel({} → {} recipients)",
            self.url,
            self.to.len()
        )
    }
}

impl SmtpChannel {
    /// Checks everything that can be checked without the network: the URL, the addresses,
    /// the CA file (`None`: the public web roots, as for Gmail or Office 365).
    pub fn new(
        url: &str,
        from: &str,
        to: &[String],
        ca_file: Option<&Path>,
    ) -> Result<SmtpChannel, String> {
        let url = SmtpUrl::parse(url).map_err(|e| format!("[alarms] smtp_url: {e}"))?;
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("[alarms] from {from:?} is not an e-mail address: {e}"))?;
        if to.is_empty() {
            return Err("[alarms] to lists no recipient".into());
        }
        let to = to
            .iter()
            .map(|t| {
                t.parse::<Mailbox>()
                    .map_err(|e| format!("[alarms] to {t:?} is not an e-mail address: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut params = TlsParameters::builder(url.host.clone());
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("[alarms] ca_file {}: {e}", path.display()))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                format!(
                    "[alarms] ca_file {} holds no PEM certificate: {e}",
                    path.display()
                )
            })?;
            params = params.add_root_certificate(cert);
        }
        let params = params
            .build_rustls()
            .map_err(|e| format!("TLS setup for the mail server: {e}"))?;
        let tls = match url.tls {
            TlsMode::Opportunistic => Tls::Opportunistic(params),
            TlsMode::Required => Tls::Required(params),
            TlsMode::Wrapper => Tls::Wrapper(params),
        };
        let mut b = SmtpTransport::builder_dangerous(url.host.clone())
            .port(url.port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if let Some(user) = &url.user {
            b = b.credentials(Credentials::new(
                user.clone(),
                url.password.clone().unwrap_or_default(),
            ));
        }
        Ok(SmtpChannel {
            transport: b.build(),
            url,
            from,
            to,
        })
    }

    /// Where mail goes, password redacted (for the log and the status page).
    pub fn describe(&self) -> String {
        self.url.to_string()
    }

    /// The mail for `m`: plain text and HTML alternatives, the CSV attached when there is one,
    /// `Message-ID: <id@cdrbox>` for receivers to dedupe a repeated delivery.
    pub fn build(&self, m: &Message) -> Result<lettre::Message, String> {
        let mut b = lettre::Message::builder()
            .from(self.from.clone())
            .subject(m.subject.clone())
            .message_id(Some(format!("<{}@cdrbox>", m.id)))
            .date(UNIX_EPOCH + Duration::from_secs(m.created_utc.max(0) as u64));
        for t in &self.to {
            b = b.to(t.clone());
        }
        let alt = MultiPart::alternative_plain_html(m.text.clone(), m.html.clone());
        let body = match &m.attachment {
            None => alt,
            Some(a) => {
                let ct = ContentType::parse(&a.content_type).unwrap_or(ContentType::TEXT_PLAIN);
                let part: SinglePart =
                    Attachment::new(a.filename.clone()).body(a.data.clone().into_bytes(), ct);
                MultiPart::mixed().multipart(alt).singlepart(part)
            }
        };
        b.multipart(body)
            .map_err(|e| format!("cannot build the mail: {e}"))
    }

    /// One SMTP session delivering `m` to every recipient.
    pub fn send(&self, m: &Message) -> Result<(), Failure> {
        let mail = self.build(m).map_err(Failure::Message)?;
        match self.transport.send(&mail) {
            Ok(_) => Ok(()),
            // A 5xx for this message (a recipient refused, too big): retrying the channel
            // won't help, retrying the message later might (a full mailbox).
            Err(e) if e.is_permanent() && e.status().is_some() => Err(Failure::Message(format!(
                "{} refused the mail: {e}",
                self.url.host
            ))),
            Err(e) => Err(Failure::Channel(format!("{}: {e}", self.url))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_print_without_the_password() {
        let u = SmtpUrl::parse("smtp://alarm%40example.com:p%40ss:w@mail.example.com:587").unwrap();
        assert_eq!(u.host, "mail.example.com");
        assert_eq!(u.port, 587);
        assert_eq!(u.tls, TlsMode::Opportunistic);
        assert_eq!(u.user.as_deref(), Some("alarm@example.com"));
        assert_eq!(u.password.as_deref(), Some("p@ss:w"));
        assert_eq!(
            u.to_string(),
            "smtp://alarm@example.com:***@mail.example.com:587"
        );
        assert!(!format!("{u:?}").contains("p@ss"));
        let r = SmtpUrl::parse("smtp://h?tls=required").unwrap();
        assert_eq!((r.tls, r.port, r.user), (TlsMode::Required, 587, None));
        let s = SmtpUrl::parse("smtps://u:x@smtp.gmail.com").unwrap();
        assert_eq!((s.tls, s.port), (TlsMode::Wrapper, 465));
        assert_eq!(SmtpUrl::parse("smtp://[::1]:2525").unwrap().host, "::1");
    }

    #[test]
    fn bad_urls_say_why_without_quoting_the_secret() {
        for bad in [
            "mail.example.com",
            "http://u:hunter2@h",
            "smtp://u:hunter2@h:99999",
            "smtp://u:hunter2@h?tls=maybe",
            "smtp://u:hunter2%zz@h",
            "smtp://u:hunter2@",
        ] {
            let e = SmtpUrl::parse(bad).unwrap_err();
            assert!(!e.contains("hunter2"), "{bad}: {e}");
            assert!(!redacted(bad).contains("hunter2"));
        }
    }

    #[test]
    fn the_mail_has_both_parts_and_the_message_id() {
        let ch = SmtpChannel::new(
            "smtp://127.0.0.1:2525",
            "cdrbox <box@example.com>",
            &["ops@example.com".into(), "boss@example.com".into()],
            None,
        )
        .unwrap();
        let info = super::super::message::BoxInfo {
            name: "b".into(),
            tz: jiff::tz::TimeZone::UTC,
        };
        let m = super::super::message::test_message("20261201T000000Z-1".into(), &info, 0, "t");
        let raw = String::from_utf8(ch.build(&m).unwrap().formatted()).unwrap();
        assert!(
            raw.contains("Message-ID: <20261201T000000Z-1@cdrbox>"),
            "{raw}"
        );
        assert!(raw.contains("multipart/alternative"));
        assert!(
            raw.contains("To: ops@example.com, boss@example.com"),
            "{raw}"
        );
        assert!(SmtpChannel::new("smtp://h", "not an address", &["a@b.c".into()], None).is_err());
        assert!(SmtpChannel::new("smtp://h", "a@b.c", &[], None).is_err());
    }
}
