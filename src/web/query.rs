//! Query strings → [`Filter`], [`Sort`], [`Page`] and the other API parameters. Pure code.
//!
//! Every error names the parameter (`limit: "abc" is not a whole number`), so a script author
//! sees what to fix; unknown parameters are errors too, because a silently ignored typo
//! (`dispositon=`) would return the wrong set. Lists may repeat the key or use commas.

use jiff::tz::TimeZone;

use crate::filter::{Field, Filter, FilterInput, Naming, Page, Sort};

/// A parameter the request got wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct ParamError {
    pub param: String,
    pub message: String,
}

impl ParamError {
    pub fn new(param: &str, message: impl Into<String>) -> Self {
        Self {
            param: param.to_string(),
            message: message.into(),
        }
    }
}

/// Default and largest page size for `/api/calls`.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 1000;

/// Parameters every filtered endpoint accepts.
/// (the same list as [`Field::ALL`]'s names; a test checks they agree).
pub const FILTER_PARAMS: &[&str] = &[
    "from",
    "to",
    "disposition",
    "direction",
    "pbx",
    "source",
    "destination",
    "accountCode",
    "queue",
    "agent",
    "minDuration",
    "maxDuration",
];

/// Decodes `a=1&b=x%20y+z` into pairs; `+` is a space. Bad escapes or bad UTF-8 name the key.
pub fn parse_pairs(query: &str) -> Result<Vec<(String, String)>, ParamError> {
    let mut out = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let key = percent_decode(k).map_err(|m| ParamError::new(k, m))?;
        if key.is_empty() {
            // `?=x` or `&=x`: say which value had no name instead of an empty `param`.
            return Err(ParamError::new(
                "query",
                format!("a parameter has no name (\"={v}\"); use name=value"),
            ));
        }
        let value = percent_decode(v).map_err(|m| ParamError::new(&key, m))?;
        out.push((key, value));
    }
    Ok(out)
}

/// `s` percent-encoded for a query value (everything but RFC 3986's unreserved characters).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent escape in {s:?}"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "not valid UTF-8 after percent-decoding".to_string())
}

/// The decoded parameters of one request, checked against the names an endpoint accepts.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses `query` and rejects any name not in `allowed`.
    pub fn parse(query: &str, allowed: &[&[&str]]) -> Result<Self, ParamError> {
        let pairs = parse_pairs(query)?;
        for (k, _) in &pairs {
            if !allowed.iter().any(|set| set.contains(&k.as_str())) {
                let known: Vec<&str> = allowed.iter().flat_map(|s| s.iter().copied()).collect();
                return Err(ParamError::new(
                    k,
                    format!("unknown parameter; known: {}", known.join(", ")),
                ));
            }
        }
        Ok(Self { pairs })
    }

    /// The last value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A value that must not be empty when given.
    fn nonempty(&self, name: &str) -> Result<Option<&str>, ParamError> {
        match self.get(name) {
            Some(v) if v.trim().is_empty() => Err(ParamError::new(name, "empty value")),
            other => Ok(other.map(str::trim)),
        }
    }

    fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ParamError> {
        let Some(v) = self.nonempty(name)? else {
            return Ok(None);
        };
        let n: i64 = v
            .parse()
            .map_err(|_| ParamError::new(name, format!("{v:?} is not a whole number")))?;
        if n < min || n > max {
            return Err(ParamError::new(
                name,
                format!("{n} is out of range (allowed {min}–{max})"),
            ));
        }
        Ok(Some(n))
    }

    /// The §3 filter, read by the parser the CLI uses too ([`FilterInput`]), so a value means
    /// the same and a mistake gets the same sentence in both. Times without an offset are read
    /// in `tz`.
    pub fn filter(&self, tz: &TimeZone) -> Result<Filter, ParamError> {
        self.filter_input()
            .parse(tz)
            .map_err(|e| ParamError::new(e.field.param(), e.message(Naming::Api)))
    }

    /// The filter parameters as typed: lists get every occurrence, single values the last one.
    fn filter_input(&self) -> FilterInput {
        let all = |f: Field| -> Vec<String> {
            self.pairs
                .iter()
                .filter(|(k, _)| k == f.param())
                .map(|(_, v)| v.clone())
                .collect()
        };
        let one = |f: Field| self.get(f.param()).map(String::from);
        FilterInput {
            from: one(Field::From),
            to: one(Field::To),
            dispositions: all(Field::Disposition),
            directions: all(Field::Direction),
            pbx: all(Field::Pbx),
            source: one(Field::Source),
            destination: one(Field::Destination),
            account_code: one(Field::AccountCode),
            queue: one(Field::Queue),
            agent: one(Field::Agent),
            min_duration: one(Field::MinDuration),
            max_duration: one(Field::MaxDuration),
        }
    }

    /// `sort=start_desc|start_asc|duration_desc|duration_asc` (also `-start`, `start`,
    /// `-duration`, `duration`); default newest first.
    pub fn sort(&self) -> Result<Sort, ParamError> {
        let Some(v) = self.nonempty("sort")? else {
            return Ok(Sort::default());
        };
        Ok(match v {
            "start_desc" | "-start" | "-startTime" => Sort::StartDesc,
            "start_asc" | "start" | "startTime" => Sort::StartAsc,
            "duration_desc" | "-duration" => Sort::DurationDesc,
            "duration_asc" | "duration" => Sort::DurationAsc,
            other => {
                return Err(ParamError::new(
                    "sort",
                    format!(
                        "{other:?} is not one of start_desc, start_asc, duration_desc, duration_asc"
                    ),
                ))
            }
        })
    }

    /// `limit` (1..=1000, default 50) and `offset` (default 0).
    pub fn page(&self) -> Result<Page, ParamError> {
        let limit = self
            .int("limit", 1, i64::from(MAX_LIMIT))?
            .map_or(DEFAULT_LIMIT, |n| n as u32);
        let offset = self.int("offset", 0, i64::MAX)?.unwrap_or(0) as u64;
        Ok(Page { limit, offset })
    }

    /// `counts=all|records` (default all): whether `/api/calls` counts the calls as well as the
    /// records.
    pub fn counts_calls(&self) -> Result<bool, ParamError> {
        match self.nonempty("counts")? {
            None | Some("all") => Ok(true),
            Some("records") => Ok(false),
            Some(other) => Err(ParamError::new(
                "counts",
                format!("{other:?} is not one of all, records"),
            )),
        }
    }

    /// A whole number of seconds with a default (`sla` for stats).
    pub fn seconds(&self, name: &str, default: i64, max: i64) -> Result<i64, ParamError> {
        Ok(self.int(name, 0, max)?.unwrap_or(default))
    }

    /// `profile`, checked against the exporter's names; default the first.
    pub fn profile(&self, profiles: &[String]) -> Result<String, ParamError> {
        match self.nonempty("profile")? {
            None => Ok(profiles
                .first()
                .cloned()
                .unwrap_or_else(|| "standard".into())),
            Some(p) if profiles.iter().any(|x| x == p) => Ok(p.to_string()),
            Some(p) => Err(ParamError::new(
                "profile",
                format!("{p:?} is not one of {}", profiles.join(", ")),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Direction, Disposition};

    #[test]
    fn filter_params_are_the_filter_fields() {
        let fields: Vec<&str> = Field::ALL.iter().map(|f| f.param()).collect();
        assert_eq!(FILTER_PARAMS, fields.as_slice());
    }

    const CALLS: &[&[&str]] = &[FILTER_PARAMS, &["limit", "offset", "sort"]];

    fn parse(q: &str) -> Result<(Filter, Sort, Page), ParamError> {
        let p = Params::parse(q, CALLS)?;
        let tz = TimeZone::get("Europe/Moscow").unwrap();
        Ok((p.filter(&tz)?, p.sort()?, p.page()?))
    }

    #[test]
    fn full_filter_parses() {
        let (f, s, p) = parse(
            "from=2026-11-22&to=2026-11-22&disposition=ANSWERED,NO+ANSWER&disposition=busy\
             &direction=inbound&pbx=a&pbx=b&source=%D0%98%D0%B2&destination=100\
             &accountCode=x&queue=sales&agent=1001&minDuration=5&maxDuration=60\
             &limit=10&offset=20&sort=duration_desc",
        )
        .unwrap();
        assert_eq!(f.from_utc, Some(1_795_294_800));
        assert_eq!(f.to_utc, Some(1_795_381_200));
        assert_eq!(
            f.dispositions,
            vec![
                Disposition::Answered,
                Disposition::NoAnswer,
                Disposition::Busy
            ]
        );
        assert_eq!(f.directions, vec![Direction::Inbound]);
        assert_eq!(f.pbx, vec!["a", "b"]);
        assert_eq!(f.source_contains.as_deref(), Some("Ив"));
        assert_eq!(f.min_duration, Some(5));
        assert_eq!(f.max_duration, Some(60));
        assert_eq!(s, Sort::DurationDesc);
        assert_eq!(
            p,
            Page {
                limit: 10,
                offset: 20
            }
        );
    }

    #[test]
    fn defaults() {
        let (f, s, p) = parse("").unwrap();
        assert_eq!(f, Filter::default());
        assert_eq!(s, Sort::StartDesc);
        assert_eq!(
            p,
            Page {
                limit: DEFAULT_LIMIT,
                offset: 0
            }
        );
        // Empty free-text fields from a form mean "no filter".
        let (f, ..) = parse("source=&destination=&queue=").unwrap();
        assert_eq!(f, Filter::default());
    }

    #[test]
    fn counts_says_whether_calls_are_counted() {
        let allowed: &[&[&str]] = &[&["counts"]];
        let counts = |q: &str| Params::parse(q, allowed).and_then(|p| p.counts_calls());
        assert_eq!(counts(""), Ok(true));
        assert_eq!(counts("counts=all"), Ok(true));
        assert_eq!(counts("counts=records"), Ok(false));
        for bad in ["counts=", "counts=calls"] {
            assert_eq!(
                counts(bad).map_err(|e| e.param),
                Err("counts".to_owned()),
                "{bad}"
            );
        }
    }

    #[test]
    fn errors_name_the_parameter() {
        let cases = [
            ("limit=abc", "limit"),
            ("limit=0", "limit"),
            ("limit=100000", "limit"),
            ("offset=-1", "offset"),
            ("from=yesterday", "from"),
            ("to=2026-13-45", "to"),
            ("from=2026-11-23&to=2026-11-22", "to"),
            ("sort=bogus", "sort"),
            ("disposition=", "disposition"),
            ("disposition=MAYBE", "disposition"),
            ("direction=sideways", "direction"),
            ("minDuration=x", "minDuration"),
            ("minDuration=10&maxDuration=5", "maxDuration"),
            ("dispositon=ANSWERED", "dispositon"),
            ("source=%ZZ", "source"),
            ("source=%FF", "source"),
        ];
        for (q, want) in cases {
            let err = parse(q).unwrap_err();
            assert_eq!(err.param, want, "{q}: {err}");
        }
    }

    #[test]
    fn profile_is_checked() {
        let profiles = vec!["standard".to_string(), "excel".to_string()];
        let p = Params::parse("profile=excel", &[&["profile"]]).unwrap();
        assert_eq!(p.profile(&profiles).unwrap(), "excel");
        let p = Params::parse("profile=lotus", &[&["profile"]]).unwrap();
        assert_eq!(p.profile(&profiles).unwrap_err().param, "profile");
        let p = Params::parse("", &[&["profile"]]).unwrap();
        assert_eq!(p.profile(&profiles).unwrap(), "standard");
    }
}
