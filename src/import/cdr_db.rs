//! FreePBX's CDR database (`asteriskcdrdb.cdr`, written by `cdr_adaptive_odbc`) as a source of
//! the CDRs AMI missed. Two parts: pure row conversion ([`row_fields`], [`Window`]), and the
//! adapter [`CdrDb`] that owns a MySQL/MariaDB connection (mysql_async, TLS by rustls/ring).
//!
//! The adapter only ever runs `SELECT`s, so a read-only user is enough (README:
//! `GRANT SELECT ON asteriskcdrdb.cdr TO 'cdrbox'@'<box address>'`). Every failure — server
//! down, login refused, no table, no permission, a connection cut mid-answer, a time-out — is a
//! [`CdrDbError`] value with a sentence saying what to fix; nothing here panics or blocks a
//! thread (it is async and runs on its own task, never on the AMI link's).
//!
//! FreePBX's column set: `calldate, clid, src, dst, dcontext, channel, dstchannel, lastapp,
//! lastdata, duration, billsec, disposition, amaflags, accountcode, uniqueid, userfield, did,
//! recordingfile, cnum, cnam, outbound_cnum, outbound_cnam, dst_cnam, linkedid, peeraccount,
//! sequence`; older installs lack the last ones, and any column may be missing: it is then
//! empty. `calldate` is the call's **start** in the PBX's local time (a `datetime`, or a
//! `timestamp` shown in the server's zone). There is no AnswerTime/EndTime unless the table has
//! `answer`/`end` columns: the record leaves them empty rather than invent them.

use std::sync::Arc;
use std::time::Duration;

use crate::record::{ama_flags_name, disposition_name};

/// One value as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbValue {
    Null,
    Bytes(Vec<u8>),
    Int(i64),
    /// A DATETIME/TIMESTAMP, `YYYY-MM-DD HH:MM:SS`.
    DateTime(String),
}

/// One row of the `cdr` table with its column names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbRow {
    pub columns: Arc<[String]>,
    pub values: Vec<DbValue>,
}

/// How a column of FreePBX's table maps to an `Event: Cdr` field.
fn standard_name(column: &str) -> Option<&'static str> {
    Some(match column.to_ascii_lowercase().as_str() {
        "calldate" | "start" => "StartTime",
        "answer" => "AnswerTime",
        "end" => "EndTime",
        "clid" => "CallerID",
        "src" => "Source",
        "dst" => "Destination",
        "dcontext" => "DestinationContext",
        "channel" => "Channel",
        "dstchannel" => "DestinationChannel",
        "lastapp" => "LastApplication",
        "lastdata" => "LastData",
        "duration" => "Duration",
        "billsec" => "BillableSeconds",
        "disposition" => "Disposition",
        "amaflags" => "AMAFlags",
        "accountcode" => "AccountCode",
        "uniqueid" => "UniqueID",
        "userfield" => "UserField",
        _ => return None,
    })
}

/// Why a row is not a CDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbRowError {
    #[error("the table has no calldate (or start) column")]
    NoStart,
    #[error("{column}: {value:?} is not a time")]
    Time { column: String, value: String },
}

fn bytes_of(v: &DbValue) -> Vec<u8> {
    match v {
        DbValue::Null => Vec::new(),
        DbValue::Bytes(b) => b.clone(),
        DbValue::Int(n) => n.to_string().into_bytes(),
        DbValue::DateTime(s) => s.clone().into_bytes(),
    }
}

/// A time column: MySQL's zero date (`cdr_mysql` writes it for "no answer") and NULL are empty.
fn time_of(column: &str, v: &DbValue) -> Result<Vec<u8>, DbRowError> {
    let b = bytes_of(v);
    let s = String::from_utf8_lossy(&b);
    let s = s.trim();
    if s.is_empty() || s.starts_with("0000-00-00") {
        return Ok(Vec::new());
    }
    // DATETIME(6) and text columns may carry a fraction; Asterisk's are whole seconds.
    let whole = s.split('.').next().unwrap_or(s);
    match crate::record::parse_wall_clock(whole) {
        Some(_) => Ok(whole.as_bytes().to_vec()),
        None => Err(DbRowError::Time {
            column: column.to_owned(),
            value: s.to_owned(),
        }),
    }
}

/// The row as `Event: Cdr`-named fields (raw bytes), ready for
/// [`CallRecord::from_fields`](crate::record::CallRecord::from_fields): the standard columns
/// under their AMI names (AMA flags and dispositions stored as numbers become Asterisk's
/// words), every other column (`did`, `recordingfile`, `cnum`, …, `linkedid`, `sequence`) as a
/// custom field under its column name, in table order.
pub fn row_fields(row: &DbRow) -> Result<Vec<(String, Vec<u8>)>, DbRowError> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::with_capacity(row.values.len());
    let mut has_start = false;
    for (col, v) in row.columns.iter().zip(&row.values) {
        match standard_name(col) {
            Some(name @ ("StartTime" | "AnswerTime" | "EndTime")) => {
                if name == "StartTime" {
                    if has_start {
                        // `calldate` and `start` both present: the first one counts.
                        out.push((col.clone(), bytes_of(v)));
                        continue;
                    }
                    has_start = true;
                }
                out.push((name.to_owned(), time_of(col, v)?));
            }
            Some(name @ ("AMAFlags" | "Disposition")) => {
                let value = match v {
                    DbValue::Int(n) if name == "AMAFlags" => ama_flags_name(*n).as_bytes().to_vec(),
                    DbValue::Int(n) => disposition_name(*n).as_bytes().to_vec(),
                    other => bytes_of(other),
                };
                out.push((name.to_owned(), value));
            }
            Some(name) => out.push((name.to_owned(), bytes_of(v))),
            None => out.push((col.clone(), bytes_of(v))),
        }
    }
    if !has_start {
        return Err(DbRowError::NoStart);
    }
    Ok(out)
}

/// The exact bytes kept as a database record's `raw`: `column=value` lines, values
/// backslash-escaped (`\\`, `\n`, `\r`), NULL as `column` alone.
pub fn row_raw(row: &DbRow) -> Vec<u8> {
    let mut out = Vec::new();
    for (col, v) in row.columns.iter().zip(&row.values) {
        out.extend_from_slice(col.as_bytes());
        if *v != DbValue::Null {
            out.push(b'=');
            for b in bytes_of(v) {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b => out.push(b),
                }
            }
        }
        out.push(b'\n');
    }
    out
}

/// Which rows a pull asks for: those whose call may have *ended* in `[from_utc, to_utc]`.
/// `calldate` is the start, so the lower bound reaches back by `lookback` (the longest call),
/// and both bounds get an hour more so a DST change never cuts a row off (a row outside the
/// window that the journal already holds is simply counted as already present).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from_utc: i64,
    pub to_utc: i64,
    pub lookback: Duration,
}

impl Window {
    /// The `calldate` bounds as PBX wall-clock text, lower and upper (inclusive).
    pub fn calldate_bounds(&self, tz: &jiff::tz::TimeZone) -> (String, String) {
        let local = |utc: i64| {
            jiff::Timestamp::from_second(utc)
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
                .to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        };
        let lookback = i64::try_from(self.lookback.as_secs()).unwrap_or(i64::MAX / 4);
        (
            local(self.from_utc.saturating_sub(lookback).saturating_sub(3600)),
            local(self.to_utc.saturating_add(3600)),
        )
    }
}

/// What went wrong talking to the CDR database. The messages name what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CdrDbError {
    #[error("cdr_db {url}: {reason}")]
    Url { url: String, reason: String },
    #[error(
        "cdr_db_table {0:?} is not a table name (letters, digits, _ and $, optionally db.table)"
    )]
    Table(String),
    #[error("CDR database {addr}: cannot connect ({reason}); is MariaDB/MySQL running there and reachable from the box (bind-address, firewall)?")]
    Connect { addr: String, reason: String },
    #[error("CDR database {addr}: login refused for user {user:?} ({message}); check the user and password in cdr_db and the GRANT on the PBX")]
    Auth {
        addr: String,
        user: String,
        message: String,
    },
    #[error("CDR database {addr}: table {table} does not exist ({message}); check the database name in cdr_db and cdr_db_table")]
    NoTable {
        addr: String,
        table: String,
        message: String,
    },
    #[error("CDR database {addr}: user {user:?} may not read {table} ({message}); on the PBX run GRANT SELECT ON {table} TO the box's user")]
    Denied {
        addr: String,
        user: String,
        table: String,
        message: String,
    },
    #[error("CDR database {addr}: TLS failed ({reason}); set require_ssl=false in cdr_db or fix the server's certificate")]
    Tls { addr: String, reason: String },
    #[error("CDR database {addr}: no answer within {seconds} s ({what})")]
    Timeout {
        addr: String,
        seconds: u64,
        what: &'static str,
    },
    #[error("CDR database {addr}: the connection broke during the query ({reason}); the rows read so far were kept, the rest is read at the next pull")]
    Broken { addr: String, reason: String },
    #[error("CDR database {addr}: {message} (server error {code})")]
    Server {
        addr: String,
        code: u16,
        message: String,
    },
}

impl CdrDbError {
    /// A short code for the OLED and alarm lists.
    pub fn code(&self) -> &'static str {
        match self {
            CdrDbError::Url { .. } | CdrDbError::Table(_) => "DB CONFIG",
            CdrDbError::Auth { .. } | CdrDbError::Denied { .. } => "DB AUTH",
            CdrDbError::NoTable { .. } => "DB NO TABLE",
            _ => "DB DOWN",
        }
    }
}

/// Validates `cdr_db_table` and quotes it for SQL (`db.table` → `` `db`.`table` ``).
pub fn quote_table(table: &str) -> Result<String, CdrDbError> {
    if !crate::config::checks::is_sql_table(table) {
        return Err(CdrDbError::Table(table.to_owned()));
    }
    Ok(table
        .split('.')
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join("."))
}

/// `mysql://user:password@host:port/db` with the password replaced (for messages and logs).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a mysql:// URL)".to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// Time limits of one pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub connect: Duration,
    /// For the whole query, first row to last.
    pub query: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connect: Duration::from_secs(10),
            query: Duration::from_secs(120),
        }
    }
}

/// The adapter: one configured database, a fresh connection per pull (pulls are rare: when a
/// gap closes and once an hour), closed afterwards.
#[derive(Clone)]
pub struct CdrDb {
    opts: mysql_async::Opts,
    /// The URL did not say `require_ssl`: try TLS, fall back to plain when the server has none.
    tls_preferred: bool,
    table: String,
    quoted_table: String,
    addr: String,
    user: String,
    pub limits: Limits,
}

impl std::fmt::Debug for CdrDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CdrDb")
            .field("addr", &self.addr)
            .field("user", &self.user)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl CdrDb {
    /// From `[[pbx]] cdr_db` and `cdr_db_table`. The URL's database is where the table is
    /// unless the table is written `db.table`.
    pub fn new(url: &str, table: &str) -> Result<CdrDb, CdrDbError> {
        let bad = |reason: String| CdrDbError::Url {
            url: redact_url(url),
            reason,
        };
        if !url.starts_with("mysql://") {
            return Err(bad("must start with mysql://".into()));
        }
        let opts = mysql_async::Opts::from_url(url).map_err(|e| bad(e.to_string()))?;
        let quoted_table = quote_table(table)?;
        let tls_preferred = !url.contains("require_ssl=");
        let addr = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
        let user = opts.user().unwrap_or("").to_owned();
        Ok(CdrDb {
            opts,
            tls_preferred,
            table: table.to_owned(),
            quoted_table,
            addr,
            user,
            limits: Limits::default(),
        })
    }

    /// `host:port`, for status lines.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn builder(&self, tls: bool) -> mysql_async::OptsBuilder {
        let b = mysql_async::OptsBuilder::from_opts(self.opts.clone())
            // Raw stored bytes, no conversion by the server: the PBX's charset setting decodes
            // them, as it does for AMI (a latin1 table holding UTF-8 stays byte-exact).
            .init(vec!["SET character_set_results = binary"])
            .stmt_cache_size(0)
            .prefer_socket(false);
        if tls && self.tls_preferred {
            // "Preferred", like the mysql client's default: encrypted when the server can,
            // without a CA to check (a PBX on the LAN has a self-signed certificate).
            b.ssl_opts(Some(
                mysql_async::SslOpts::default()
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true),
            ))
        } else {
            b
        }
    }

    fn classify(&self, e: mysql_async::Error, during_query: bool) -> CdrDbError {
        use mysql_async::{DriverError, Error};
        let addr = self.addr.clone();
        match e {
            Error::Server(s) => match s.code {
                // ER_ACCESS_DENIED_ERROR, ER_DBACCESS_DENIED_ERROR (no rights on the database).
                1045 | 1044 | 1698 => CdrDbError::Auth {
                    addr,
                    user: self.user.clone(),
                    message: s.message,
                },
                // ER_NO_SUCH_TABLE, ER_BAD_DB_ERROR.
                1146 | 1049 => CdrDbError::NoTable {
                    addr,
                    table: self.table.clone(),
                    message: s.message,
                },
                // ER_TABLEACCESS_DENIED_ERROR, ER_COLUMNACCESS_DENIED_ERROR.
                1142 | 1143 => CdrDbError::Denied {
                    addr,
                    user: self.user.clone(),
                    table: self.table.clone(),
                    message: s.message,
                },
                code => CdrDbError::Server {
                    addr,
                    code,
                    message: s.message,
                },
            },
            Error::Io(io) => {
                let reason = io.to_string();
                if reason.to_ascii_lowercase().contains("tls") {
                    CdrDbError::Tls { addr, reason }
                } else if during_query {
                    CdrDbError::Broken { addr, reason }
                } else {
                    CdrDbError::Connect { addr, reason }
                }
            }
            Error::Driver(DriverError::ConnectionClosed) if during_query => CdrDbError::Broken {
                addr,
                reason: "connection closed".into(),
            },
            other => {
                if during_query {
                    CdrDbError::Broken {
                        addr,
                        reason: other.to_string(),
                    }
                } else {
                    CdrDbError::Connect {
                        addr,
                        reason: other.to_string(),
                    }
                }
            }
        }
    }

    async fn connect(&self) -> Result<mysql_async::Conn, CdrDbError> {
        let timeout = |what| CdrDbError::Timeout {
            addr: self.addr.clone(),
            seconds: self.limits.connect.as_secs(),
            what,
        };
        let first = tokio::time::timeout(
            self.limits.connect,
            mysql_async::Conn::new(self.builder(true)),
        )
        .await
        .map_err(|_| timeout("connect"))?;
        match first {
            Ok(c) => Ok(c),
            Err(mysql_async::Error::Driver(
                mysql_async::DriverError::NoClientSslFlagFromServer,
            )) if self.tls_preferred => {
                tracing::debug!(target: "import::cdr_db", addr = %self.addr,
                    "server offers no TLS; connecting without");
                tokio::time::timeout(
                    self.limits.connect,
                    mysql_async::Conn::new(self.builder(false)),
                )
                .await
                .map_err(|_| timeout("connect"))?
                .map_err(|e| self.classify(e, false))
            }
            Err(e) => Err(self.classify(e, false)),
        }
    }

    /// Checks the connection, the login and the SELECT right; returns whether TLS is in use.
    pub async fn check(&self) -> Result<bool, CdrDbError> {
        use mysql_async::prelude::Queryable;
        let mut conn = self.connect().await?;
        let tls = self.tls_in_use(&mut conn).await;
        let q = format!("SELECT * FROM {} LIMIT 0", self.quoted_table);
        let r = tokio::time::timeout(self.limits.query, conn.query_drop(q))
            .await
            .map_err(|_| CdrDbError::Timeout {
                addr: self.addr.clone(),
                seconds: self.limits.query.as_secs(),
                what: "query",
            })?;
        let _ = conn.disconnect().await;
        r.map_err(|e| self.classify(e, false))?;
        Ok(tls)
    }

    async fn tls_in_use(&self, conn: &mut mysql_async::Conn) -> bool {
        use mysql_async::prelude::Queryable;
        let v: Result<Option<(String, String)>, _> = conn
            .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            .await;
        matches!(v, Ok(Some((_, cipher))) if !cipher.is_empty())
    }

    /// Streams the rows of `window` (in the PBX zone `tz`) to `each`, oldest first. Returns how
    /// many rows were read. On an error the rows already handed to `each` stay handed over.
    pub async fn fetch(
        &self,
        window: &Window,
        tz: &jiff::tz::TimeZone,
        mut each: impl FnMut(DbRow),
    ) -> Result<u64, CdrDbError> {
        let mut conn = self.connect().await?;
        let deadline = tokio::time::Instant::now() + self.limits.query;
        let r = tokio::time::timeout_at(deadline, self.stream(&mut conn, window, tz, &mut each))
            .await
            .map_err(|_| CdrDbError::Timeout {
                addr: self.addr.clone(),
                seconds: self.limits.query.as_secs(),
                what: "query",
            });
        // A broken connection cannot say goodbye; do not wait on it.
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.disconnect()).await;
        r?
    }

    async fn stream(
        &self,
        conn: &mut mysql_async::Conn,
        window: &Window,
        tz: &jiff::tz::TimeZone,
        each: &mut impl FnMut(DbRow),
    ) -> Result<u64, CdrDbError> {
        use mysql_async::prelude::Queryable;
        // Which time column the table has (FreePBX: calldate; some setups: start).
        let probe = format!("SELECT * FROM {} LIMIT 0", self.quoted_table);
        let probe_result = conn
            .query_iter(probe)
            .await
            .map_err(|e| self.classify(e, false))?;
        let names: Vec<String> = probe_result
            .columns_ref()
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect();
        probe_result
            .drop_result()
            .await
            .map_err(|e| self.classify(e, false))?;
        let time_col = ["calldate", "start"]
            .into_iter()
            .find(|t| names.iter().any(|n| n.eq_ignore_ascii_case(t)))
            .ok_or_else(|| CdrDbError::Server {
                addr: self.addr.clone(),
                code: 0,
                message: format!(
                    "table {} has no calldate or start column (columns: {})",
                    self.table,
                    names.join(", ")
                ),
            })?;
        let (lo, hi) = window.calldate_bounds(tz);
        let q = format!(
            "SELECT * FROM {t} WHERE `{time_col}` >= ? AND `{time_col}` <= ? ORDER BY `{time_col}`",
            t = self.quoted_table
        );
        let mut result = conn
            .exec_iter(q, (lo, hi))
            .await
            .map_err(|e| self.classify(e, false))?;
        let columns: Arc<[String]> = result
            .columns_ref()
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect();
        let mut n = 0u64;
        loop {
            let row = match result.next().await {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => return Err(self.classify(e, true)),
            };
            let values = row
                .unwrap_raw()
                .into_iter()
                .map(|v| v.map_or(DbValue::Null, db_value))
                .collect();
            each(DbRow {
                columns: columns.clone(),
                values,
            });
            n += 1;
        }
        Ok(n)
    }
}

fn db_value(v: mysql_async::Value) -> DbValue {
    use mysql_async::Value;
    match v {
        Value::NULL => DbValue::Null,
        Value::Bytes(b) => DbValue::Bytes(b),
        Value::Int(i) => DbValue::Int(i),
        Value::UInt(u) => DbValue::Int(i64::try_from(u).unwrap_or(i64::MAX)),
        Value::Float(f) => DbValue::Bytes(f.to_string().into_bytes()),
        Value::Double(f) => DbValue::Bytes(f.to_string().into_bytes()),
        Value::Date(y, mo, d, h, mi, s, _us) => {
            DbValue::DateTime(format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"))
        }
        Value::Time(neg, days, h, mi, s, _us) => DbValue::Bytes(
            format!(
                "{}{:02}:{mi:02}:{s:02}",
                if neg { "-" } else { "" },
                u64::from(days) * 24 + u64::from(h)
            )
            .into_bytes(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn freepbx_row() -> DbRow {
        let cols = [
            "calldate",
            "clid",
            "src",
            "dst",
            "dcontext",
            "channel",
            "dstchannel",
            "lastapp",
            "lastdata",
            "duration",
            "billsec",
            "disposition",
            "amaflags",
            "accountcode",
            "uniqueid",
            "userfield",
            "did",
            "recordingfile",
            "cnum",
            "cnam",
            "outbound_cnum",
            "outbound_cnam",
            "dst_cnam",
            "linkedid",
            "peeraccount",
            "sequence",
        ];
        let b = |s: &str| DbValue::Bytes(s.as_bytes().to_vec());
        DbRow {
            columns: cols.iter().map(|c| c.to_string()).collect(),
            values: vec![
                DbValue::DateTime("2026-11-22 10:07:06".into()),
                b("\"Alice Smith\" <1001>"),
                b("1001"),
                b("2001"),
                b("internal"),
                b("Local/2001@internal-00000000;2"),
                b("Local/2001@sim-answer-00000001;1"),
                b("Dial"),
                b("Local/2001@sim-answer,20"),
                DbValue::Int(4),
                DbValue::Int(3),
                b("ANSWERED"),
                DbValue::Int(3),
                b(""),
                b("1795331226.1"),
                b(""),
                b(""),
                b(""),
                b("1001"),
                b("Alice Smith"),
                b(""),
                b(""),
                b(""),
                b("1795331226.0"),
                b(""),
                DbValue::Int(5),
            ],
        }
    }

    #[test]
    fn freepbx_columns_become_cdr_fields() {
        let f = row_fields(&freepbx_row()).unwrap();
        let get = |k: &str| {
            f.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(get("StartTime").as_deref(), Some("2026-11-22 10:07:06"));
        assert_eq!(get("AMAFlags").as_deref(), Some("DOCUMENTATION"));
        assert_eq!(get("Duration").as_deref(), Some("4"));
        assert_eq!(get("cnam").as_deref(), Some("Alice Smith"));
        assert_eq!(get("sequence").as_deref(), Some("5"));
        assert_eq!(get("AnswerTime"), None, "not invented");
        assert_eq!(get("EndTime"), None, "not invented");
    }

    #[test]
    fn older_schemas_and_odd_values() {
        let mut row = freepbx_row();
        let keep = 18; // FreePBX 2.x: up to recordingfile
        row.columns = row.columns[..keep].to_vec().into();
        row.values.truncate(keep);
        assert!(row_fields(&row).is_ok());
        let mut zero = freepbx_row();
        zero.columns = ["calldate", "answer", "end", "disposition"]
            .iter()
            .map(|c| c.to_string())
            .collect();
        zero.values = vec![
            DbValue::DateTime("2026-11-22 10:07:06".into()),
            DbValue::DateTime("0000-00-00 00:00:00".into()),
            DbValue::Bytes(b"2026-11-22 10:07:10.000000".to_vec()),
            DbValue::Int(8),
        ];
        let f = row_fields(&zero).unwrap();
        assert_eq!(f[1], ("AnswerTime".into(), Vec::new()));
        assert_eq!(f[2], ("EndTime".into(), b"2026-11-22 10:07:10".to_vec()));
        assert_eq!(f[3], ("Disposition".into(), b"ANSWERED".to_vec()));
        let mut none = freepbx_row();
        none.columns = vec!["src".to_string()].into();
        none.values = vec![DbValue::Null];
        assert_eq!(row_fields(&none), Err(DbRowError::NoStart));
    }

    #[test]
    fn raw_form_is_lossless_text() {
        let mut row = freepbx_row();
        row.values[15] = DbValue::Bytes(b"a\\b\nc".to_vec());
        row.values[16] = DbValue::Null;
        let raw = String::from_utf8(row_raw(&row)).unwrap();
        assert!(raw.starts_with("calldate=2026-11-22 10:07:06\nclid=\"Alice Smith\" <1001>\n"));
        assert!(raw.contains("\nuserfield=a\\\\b\\nc\n"));
        assert!(raw.contains("\ndid\n"));
    }

    #[test]
    fn window_reaches_back_by_the_longest_call() {
        let tz = jiff::tz::TimeZone::get("Europe/Moscow").unwrap();
        let w = Window {
            from_utc: 1_795_331_226, // 10:07:06 Moscow
            to_utc: 1_795_331_226 + 60,
            lookback: Duration::from_secs(4 * 3600),
        };
        assert_eq!(
            w.calldate_bounds(&tz),
            ("2026-11-22 05:07:06".into(), "2026-11-22 11:08:06".into())
        );
    }

    #[test]
    fn config_values_are_checked_and_secrets_redacted() {
        assert_eq!(quote_table("cdr").unwrap(), "`cdr`");
        assert_eq!(
            quote_table("asteriskcdrdb.cdr").unwrap(),
            "`asteriskcdrdb`.`cdr`"
        );
        assert!(quote_table("cdr; DROP TABLE x").is_err());
        assert!(quote_table("a.b.c").is_err());
        assert_eq!(
            redact_url("mysql://cdrbox:s3cret@pbx:3306/asteriskcdrdb"),
            "mysql://cdrbox:***@pbx:3306/asteriskcdrdb"
        );
        let e = CdrDb::new("postgres://x@y/z", "cdr").unwrap_err();
        assert!(e.to_string().contains("must start with mysql://"), "{e}");
        let e = CdrDb::new("mysql://u:p@h:3306/db?nonsense=1", "cdr").unwrap_err();
        assert!(!e.to_string().contains(":p@"), "{e}");
        let db = CdrDb::new("mysql://u:pw@127.0.0.1:3307/asteriskcdrdb", "cdr").unwrap();
        assert_eq!(db.addr(), "127.0.0.1:3307");
        assert!(!format!("{db:?}").contains("pw"));
    }
}
