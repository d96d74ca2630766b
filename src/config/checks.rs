//! The text checks the key table refers to ([`super::spec::Check`]): each takes what the user
//! wrote and returns it normalised, or says in words what is wrong (without naming the key —
//! the caller does that once). Pure code.

use super::did_you_mean;

/// Any one line of text, kept as written.
pub fn any(s: &str) -> Result<String, String> {
    Ok(s.to_owned())
}

/// `[alarms] business_hours`: saved in its canonical form ("Mon-Fri 09:00-18:00").
pub fn business_hours(s: &str) -> Result<String, String> {
    crate::alarms::hours::BusinessHours::parse(s)
        .map(|h| h.canonical())
        .map_err(|e| e.to_string())
}

/// `[alarms] daily_report`: `HH:MM` (00:00–23:59), or empty for none.
pub fn time_of_day_or_off(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Ok(String::new());
    }
    match crate::alarms::report::parse_time_of_day(t) {
        Some((h, m)) => Ok(format!("{h:02}:{m:02}")),
        None => Err(format!(
            "{s:?} is not a time of day as HH:MM, e.g. \"07:00\" (or \"\" for no report)"
        )),
    }
}

/// An e-mail address (`it@example.com`, `IT <it@example.com>`): one `@`, no spaces in the
/// address itself. The mailer checks the full syntax when it starts.
pub fn email(s: &str) -> Result<String, String> {
    let t = s.trim();
    let addr = match (t.rfind('<'), t.ends_with('>')) {
        (Some(i), true) => &t[i + 1..t.len() - 1],
        _ => t,
    };
    let ok = addr.matches('@').count() == 1
        && !addr.starts_with('@')
        && !addr.ends_with('@')
        && !addr.contains(char::is_whitespace)
        && !addr.contains(',');
    if ok {
        Ok(t.to_owned())
    } else {
        Err(format!(
            "{s:?} is not an e-mail address (like \"it@example.com\")"
        ))
    }
}

/// A name shown on the page and used in folder names (`[box] name`, `[[pbx]] name`).
pub fn name(s: &str) -> Result<String, String> {
    let ok = !s.trim().is_empty()
        && s.chars().count() <= 64
        && !s.chars().any(|c| c.is_control() || c == '/' || c == '\\')
        && s != "."
        && s != "..";
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not allowed (1–64 characters, no \"/\", \"\\\" or control characters)"
        ))
    }
}

/// Longest person's name in `[names]`, in characters: what fits a table cell and the OLED.
pub const PERSON_NAME_MAX: usize = 64;

/// A `[names]` key: an extension or phone number as the PBX writes it in `src`/`dst`. Spaces,
/// dashes and brackets people write for readability are dropped (`+7 (499) 123-45-67` →
/// `+74991234567`), so one number cannot be listed twice in two spellings.
pub fn phone_number(s: &str) -> Result<String, String> {
    let n: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    if n.is_empty() {
        return Err("the number is empty: write the extension or number, e.g. \"101\"".into());
    }
    if n.chars().count() > 32 {
        return Err(format!(
            "{s:?} is too long for a number (at most 32 characters)"
        ));
    }
    match n
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '*' | '#' | '_')))
    {
        Some(c) => Err(format!(
            "{s:?} is not an extension or number ({c:?} is not allowed; digits, letters, + * # and _ are)"
        )),
        None => Ok(n),
    }
}

/// A `[names]` value: a person's name, 1–64 characters on one line, trimmed.
pub fn person_name(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("the name is empty: write the person's name, or remove the entry".into());
    }
    let n = t.chars().count();
    if n > PERSON_NAME_MAX {
        return Err(format!(
            "the name is too long ({n} characters, at most {PERSON_NAME_MAX})"
        ));
    }
    if t.chars().any(char::is_control) {
        return Err("the name must not contain control characters".into());
    }
    Ok(t.to_owned())
}

/// A host name or IP address (no port, no path, no spaces).
pub fn host(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.chars().any(char::is_whitespace) || t.contains('/') {
        Err(format!("{s:?} is not a host name or IP address"))
    } else {
        Ok(t.to_owned())
    }
}

/// A DNS name (`calls.office.lan`): letters, digits and `-` in dot-separated labels of at most
/// 63, at most 253 in all; returned lower case without a trailing dot.
pub fn hostname(s: &str) -> Result<String, String> {
    let t = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !t.is_empty() && t.len() <= 253 && t.split('.').all(label_ok) {
        Ok(t)
    } else {
        Err(format!(
            "{s:?} is not a DNS name (letters, digits and \"-\" between dots, e.g. \"calls.office.lan\")"
        ))
    }
}

/// An IANA time zone name known to the bundled database.
pub fn timezone(s: &str) -> Result<String, String> {
    let t = s.trim();
    if jiff::tz::TimeZone::get(t).is_ok() {
        return Ok(t.to_owned());
    }
    let names: Vec<String> = jiff::tz::db()
        .available()
        .map(|n| n.as_str().to_owned())
        .collect();
    let hint = match did_you_mean(s, names.iter().map(String::as_str)) {
        Some(n) => format!("did you mean {n:?}?"),
        None => "e.g. \"Europe/Moscow\", \"America/New_York\", \"UTC\"".to_owned(),
    };
    Err(format!("{s:?} is not an IANA time zone ({hint})"))
}

/// A WHATWG charset label usable for single bytes (UTF-16 and the replacement encoding are
/// not: CDR fields arrive as 8-bit text).
pub fn charset(s: &str) -> Result<String, String> {
    let t = s.trim();
    match encoding_rs::Encoding::for_label(t.as_bytes()) {
        Some(e)
            if e != encoding_rs::REPLACEMENT
                && e != encoding_rs::UTF_16LE
                && e != encoding_rs::UTF_16BE =>
        {
            Ok(t.to_owned())
        }
        _ => Err(format!(
            "{s:?} is not a usable charset label (e.g. \"windows-1251\", \"windows-1252\", \"koi8-r\", \"iso-8859-2\", \"utf-8\")"
        )),
    }
}

/// A regular expression (the `regex-lite` syntax the record code compiles).
pub fn regex(s: &str) -> Result<String, String> {
    match regex_lite::Regex::new(s) {
        Ok(_) => Ok(s.to_owned()),
        Err(e) => Err(format!(
            "{s:?} is not a valid regular expression: {}",
            e.to_string().replace('\n', " ")
        )),
    }
}

/// A `tracing` filter: comma-separated `level` or `target=level` directives.
pub fn log_filter(s: &str) -> Result<String, String> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let is_level = |l: &str| LEVELS.iter().any(|x| x.eq_ignore_ascii_case(l.trim()));
    let ok = !s.trim().is_empty()
        && s.split(',').all(|d| match d.split_once('=') {
            None => is_level(d),
            Some((target, level)) => {
                !target.trim().is_empty()
                    && target
                        .trim()
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '-')
                    && is_level(level)
            }
        });
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?} is not a log filter (allowed: error, warn, info, debug, trace, off, or target=level, comma-separated)"))
    }
}

/// FreePBX's CDR database as `mysql://USER:PASSWORD@HOST[:PORT]/DATABASE[?OPTIONS]`. The text
/// holds a password, so no message quotes it; the adapter (`import::cdr_db`) parses it fully.
pub fn cdr_db_url(s: &str) -> Result<String, String> {
    const FORM: &str = "write it as mysql://USER:PASSWORD@HOST:3306/asteriskcdrdb";
    let t = s.trim();
    let Some(rest) = t.strip_prefix("mysql://") else {
        return Err(format!("must start with mysql:// ({FORM})"));
    };
    let Some((user, host_part)) = rest.rsplit_once('@') else {
        return Err(format!("names no user ({FORM})"));
    };
    if user.split(':').next().unwrap_or("").is_empty() {
        return Err(format!("names no user ({FORM})"));
    }
    let (host_port, db) = host_part.split_once('/').unwrap_or((host_part, ""));
    let (host, port) = match host_port.strip_prefix('[') {
        // An IPv6 address: [::1]:3306.
        Some(v6) => match v6.split_once(']') {
            Some((h, rest)) => (h, rest.strip_prefix(':')),
            None => ("", None),
        },
        None => match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        },
    };
    if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Err(format!("has a port that is not 1–65535 ({FORM})"));
    }
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("names no host ({FORM})"));
    }
    let db = db.split('?').next().unwrap_or("");
    if db.is_empty() {
        return Err(format!("names no database ({FORM})"));
    }
    Ok(t.to_owned())
}

/// A table name for SQL: `cdr` or `database.table`, letters, digits, `_` and `$` only (it is
/// put into a query, so nothing else is accepted).
pub fn sql_table(s: &str) -> Result<String, String> {
    let t = s.trim();
    if is_sql_table(t) {
        Ok(t.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a table name (\"cdr\" or database.table; letters, digits and _)"
        ))
    }
}

/// `t` is `table` or `database.table`, each part 1 to 64 of letters, digits, `_` and `$`: the
/// one rule for the config check above and the importer that quotes the name into its query.
pub fn is_sql_table(t: &str) -> bool {
    let parts: Vec<&str> = t.split('.').collect();
    (1..=2).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 64
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_normalise_or_explain() {
        assert_eq!(timezone(" Europe/Moscow ").as_deref(), Ok("Europe/Moscow"));
        assert!(timezone("Europe/Moskow")
            .unwrap_err()
            .contains("did you mean \"Europe/Moscow\"?"));
        assert_eq!(charset("cp1251").as_deref(), Ok("cp1251"));
        assert!(charset("utf-16").is_err());
        assert!(regex("(")
            .unwrap_err()
            .starts_with("\"(\" is not a valid regular expression"));
        assert!(log_filter("warn,cdrbox::ami=trace").is_ok());
        assert!(log_filter("verbose").is_err());
        assert!(name("a/b").is_err());
        assert!(name(&"x".repeat(65)).is_err());
        assert_eq!(host(" pbx.lan ").as_deref(), Ok("pbx.lan"));
        assert!(host("pbx .lan").is_err());
    }

    #[test]
    fn cdr_db_urls_are_checked_without_quoting_the_password() {
        let ok = "mysql://cdrbox:pa%40ss@192.168.1.10:3306/asteriskcdrdb";
        assert_eq!(cdr_db_url(ok).as_deref(), Ok(ok));
        assert!(cdr_db_url("mysql://u:p@pbx/asteriskcdrdb?require_ssl=true").is_ok());
        for (bad, why) in [
            ("postgres://u:hunter2@h/db", "must start with mysql://"),
            ("mysql://hunter2@/db", "names no host"),
            ("mysql://:hunter2@h/db", "names no user"),
            ("mysql://u:hunter2@h:99999/db", "port"),
            ("mysql://u:hunter2@h:3306", "names no database"),
        ] {
            let e = cdr_db_url(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        assert_eq!(sql_table(" cdr ").as_deref(), Ok("cdr"));
        assert!(sql_table("asteriskcdrdb.cdr").is_ok());
        assert!(sql_table("cdr; DROP TABLE x").is_err());
    }
}
