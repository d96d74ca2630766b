//! Who may use the web page and API: the password file (argon2id), browser sessions with CSRF
//! tokens, HTTP Basic for scripts, and a per-address limit on failed logins.
//!
//! There is no default password. While the password file holds no `admin` entry, the first
//! visitor sets it (the "first setup" page); `cdrbox passwd` does the same from a script through
//! [`set_password`]. The file is `cdrbox.passwd` beside the config file ([`passwd_path_for`]),
//! mode 0600, one `user:$argon2id$…` line per account. Accounts: `admin` (may change settings)
//! and `viewer` (read-only).
//!
//! The bookkeeping ([`Sessions`], [`LoginLimiter`], [`BasicCache`]) is pure with the clock and the
//! random bytes passed in; only [`PasswordFile`] and [`os_random`] touch the filesystem.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};

/// The cookie carrying the session token.
pub const SESSION_COOKIE: &str = "cdrbox_session";
/// The header the page sends the CSRF token in, on every change.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session ends after this long without a request…
pub const SESSION_IDLE_SECS: i64 = 12 * 3600;
/// …and after this long in any case.
pub const SESSION_MAX_SECS: i64 = 7 * 24 * 3600;
/// Failed logins allowed per address within [`LOGIN_WINDOW_SECS`] before 429.
pub const LOGIN_FAILURES: usize = 5;
pub const LOGIN_WINDOW_SECS: i64 = 60;
/// Shortest accepted password.
pub const MIN_PASSWORD: usize = 8;
const MAX_PASSWORD: usize = 1024;
const MAX_SESSIONS: usize = 256;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, including settings and passwords.
    Admin,
    /// Sees everything except secrets; changes nothing.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    /// The role of a known account name.
    pub fn of_user(user: &str) -> Option<Role> {
        match user {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("unknown account {0:?}: use \"admin\" or \"viewer\"")]
    UnknownUser(String),
    #[error("password: must be at least {MIN_PASSWORD} characters")]
    TooShort,
    #[error("password: must be at most {MAX_PASSWORD} bytes and one line")]
    Invalid,
    #[error("hashing the password: {0}")]
    Hash(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: line {line} is not `user:$argon2id$…`")]
    Malformed { path: PathBuf, line: usize },
    #[error("the admin password was set by someone else a moment ago")]
    AlreadySet,
}

/// `<config dir>/cdrbox.passwd`: the password file belongs with the config it protects.
pub fn passwd_path_for(config_path: &Path) -> PathBuf {
    config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("cdrbox.passwd")
}

/// Random bytes from the kernel (`getrandom(2)`), for salts, session and CSRF tokens.
pub fn os_random(buf: &mut [u8]) -> io::Result<()> {
    getrandom::fill(buf).map_err(|e| io::Error::other(format!("getrandom: {e}")))
}

/// A fresh 256-bit token as 64 hex digits.
pub fn new_token(random: &dyn Fn(&mut [u8]) -> io::Result<()>) -> io::Result<String> {
    let mut b = [0u8; 32];
    random(&mut b)?;
    Ok(crate::hex::encode(&b))
}

/// Equality that takes the same time wherever the first difference is (`subtle`; only the
/// lengths, which are public, may differ in time).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// Checks a password's shape before hashing it.
pub fn check_password_shape(password: &str) -> Result<(), AuthError> {
    if password.len() > MAX_PASSWORD || password.contains(['\n', '\r']) {
        return Err(AuthError::Invalid);
    }
    if password.chars().count() < MIN_PASSWORD {
        return Err(AuthError::TooShort);
    }
    Ok(())
}

/// The argon2id PHC string of `password` with a 16-byte salt.
pub fn hash_password(password: &str, salt: &[u8; 16]) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// True when `password` matches the PHC string (false for a malformed string).
pub fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The password file's content: `user:phc` per line, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordFile {
    pub entries: Vec<(String, String)>,
}

impl PasswordFile {
    /// Reads `path`; a missing file is an empty one (no password set yet).
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map_err(|line| AuthError::Malformed {
                path: path.to_path_buf(),
                line,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(AuthError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses the text; `Err(line)` names the first bad line (1-based).
    pub fn parse(text: &str) -> Result<Self, usize> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some((u, h)) if !u.is_empty() && h.starts_with("$argon2") => {
                    entries.push((u.to_string(), h.to_string()))
                }
                _ => return Err(i + 1),
            }
        }
        Ok(Self { entries })
    }

    pub fn hash_of(&self, user: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, h)| h.as_str())
    }

    pub fn set(&mut self, user: &str, phc: String) {
        match self.entries.iter_mut().find(|(u, _)| u == user) {
            Some(e) => e.1 = phc,
            None => self.entries.push((user.to_string(), phc)),
        }
    }

    pub fn to_text(&self) -> String {
        let mut s = String::from("# cdrbox web accounts (argon2id). Set with `cdrbox passwd`.\n");
        for (u, h) in &self.entries {
            s.push_str(&format!("{u}:{h}\n"));
        }
        s
    }

    /// Writes atomically ([`crate::fsio::write_atomic`]: temp file, fsync, rename, directory
    /// fsync), mode 0600 whatever the umask. Callers hold [`lock_passwd`] for the whole
    /// read-modify-write, so no two writers — threads or processes — ever share the temporary
    /// file (the first release's unlocked shared `cdrbox.passwd.tmp` let two setups interleave).
    pub fn save(&self, path: &Path) -> Result<(), AuthError> {
        crate::fsio::write_atomic(
            path,
            self.to_text().as_bytes(),
            crate::fsio::AtomicOptions::SECRET,
        )
        .map_err(|source| AuthError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Writes `bytes` to a new temporary file beside `path`, its name our own (`.<name>.<pid>.<random>`,
/// created with `O_EXCL`, so no two writers ever share one), mode 0600 whatever the umask, and
/// fsynced. The caller renames or links it into place. Returns the temporary path.
pub fn write_private_temp(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut tag = [0u8; 6];
    os_random(&mut tag)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cdrbox".into());
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{}",
        std::process::id(),
        crate::hex::encode(&tag)
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Holds the password file's lock (`<file>.lock`, `flock`) for a read-modify-write, so the web
/// page and `cdrbox passwd` in another process never overwrite each other's change.
pub struct PasswdLock(#[allow(dead_code)] std::fs::File);

/// Takes the lock on the password file at `path` (waits for another holder).
pub fn lock_passwd(path: &Path) -> Result<PasswdLock, AuthError> {
    use std::os::unix::fs::OpenOptionsExt;
    let lock = path.with_extension("passwd.lock");
    let io_err = |source| AuthError::Io {
        path: lock.clone(),
        source,
    };
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock)
        .map_err(io_err)?;
    f.lock().map_err(io_err)?;
    Ok(PasswdLock(f))
}

/// Stores the first admin password: exactly one caller wins. `Err(AlreadySet)` tells a loser
/// that someone else set it meanwhile (it gets no session).
pub fn create_admin(path: &Path, phc: String) -> Result<(), AuthError> {
    let _lock = lock_passwd(path)?;
    let mut file = PasswordFile::load(path)?;
    if file.hash_of("admin").is_some() {
        return Err(AuthError::AlreadySet);
    }
    file.set("admin", phc);
    file.save(path)
}

/// Makes the password file 0600 if it is readable by others (an old release, a copy by hand),
/// saying so in the log. Missing file: nothing to do.
pub fn tighten_passwd_mode(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {
                tracing::warn!(target: "cdrbox::web", path = %path.display(), mode = format!("{mode:o}"), "the password file was readable by others; made it 0600")
            }
            Err(e) => {
                tracing::warn!(target: "cdrbox::web", path = %path.display(), mode = format!("{mode:o}"), error = %e, "the password file is readable by others and cannot be made 0600")
            }
        }
    }
}

/// Sets `user`'s password in the file at `path` (created if missing). What `cdrbox passwd`
/// and the first-setup page call. `user` is `admin` or `viewer`.
pub fn set_password(path: &Path, user: &str, password: &str) -> Result<(), AuthError> {
    if Role::of_user(user).is_none() {
        return Err(AuthError::UnknownUser(user.to_string()));
    }
    check_password_shape(password)?;
    let mut salt = [0u8; 16];
    os_random(&mut salt).map_err(|source| AuthError::Io {
        path: "getrandom".into(),
        source,
    })?;
    let phc = hash_password(password, &salt)?;
    let _lock = lock_passwd(path)?;
    let mut file = PasswordFile::load(path)?;
    file.set(user, phc);
    file.save(path)?;
    if user == "admin" {
        super::setup_code::remove(&super::setup_code::path_for(path));
    }
    Ok(())
}

/// Reads the password for `cdrbox passwd`: the first line of `input` (stdin when it is not a
/// terminal), without its line ending.
pub fn read_password_line(input: &mut dyn io::BufRead) -> io::Result<String> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// A logged-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    pub role: Role,
    /// Must come back in [`CSRF_HEADER`] on every change.
    pub csrf: String,
    pub created_utc: i64,
    pub last_seen_utc: i64,
}

/// Browser sessions, in memory (a restart logs everyone out, which is fine on a box).
#[derive(Debug, Default)]
pub struct Sessions {
    by_token: HashMap<String, Session>,
}

impl Sessions {
    /// Adds a session; the oldest goes when too many are open.
    pub fn insert(&mut self, token: String, session: Session) {
        if self.by_token.len() >= MAX_SESSIONS {
            if let Some(oldest) = self
                .by_token
                .iter()
                .min_by_key(|(_, s)| s.last_seen_utc)
                .map(|(t, _)| t.clone())
            {
                self.by_token.remove(&oldest);
            }
        }
        self.by_token.insert(token, session);
    }

    /// The live session for `token`, touched at `now`; expired ones are removed.
    pub fn get(&mut self, token: &str, now: i64) -> Option<Session> {
        let s = self.by_token.get_mut(token)?;
        if now - s.last_seen_utc > SESSION_IDLE_SECS || now - s.created_utc > SESSION_MAX_SECS {
            self.by_token.remove(token);
            return None;
        }
        s.last_seen_utc = now;
        Some(s.clone())
    }

    pub fn remove(&mut self, token: &str) {
        self.by_token.remove(token);
    }

    /// Ends every session of `user` except `keep` (after a password change, the browser that
    /// made the change stays logged in).
    pub fn remove_user(&mut self, user: &str, keep: Option<&str>) {
        self.by_token
            .retain(|t, s| s.user != user || Some(t.as_str()) == keep);
    }

    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

/// Failed logins per client address: [`LOGIN_FAILURES`] within [`LOGIN_WINDOW_SECS`], then
/// refuse until the oldest failure leaves the window. Attempts still being checked (the argon2
/// hash takes a while) count as failures until they end, so guesses sent all at once cannot
/// slip past the limit together ([`LoginLimiter::begin`] / [`LoginLimiter::end`]).
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: HashMap<IpAddr, Vec<i64>>,
    in_flight: HashMap<IpAddr, usize>,
}

impl LoginLimiter {
    /// `Err(retry_after_secs)` while `ip` is locked out.
    pub fn check(&mut self, ip: IpAddr, now: i64) -> Result<(), i64> {
        let pending = self.in_flight.get(&ip).copied().unwrap_or(0);
        let Some(list) = self.failures.get_mut(&ip) else {
            return if pending >= LOGIN_FAILURES {
                Err(1)
            } else {
                Ok(())
            };
        };
        list.retain(|t| now - t < LOGIN_WINDOW_SECS);
        if list.len() + pending >= LOGIN_FAILURES {
            if list.len() < LOGIN_FAILURES {
                // Locked only by attempts still running: they end within a second or two.
                return Err(1);
            }
            let oldest = list.iter().min().copied().unwrap_or(now);
            return Err((oldest + LOGIN_WINDOW_SECS - now).max(1));
        }
        Ok(())
    }

    /// Starts an attempt for `ip` (counted as a failure until [`LoginLimiter::end`]), or
    /// `Err(retry_after_secs)` while locked out.
    pub fn begin(&mut self, ip: IpAddr, now: i64) -> Result<(), i64> {
        self.check(ip, now)?;
        *self.in_flight.entry(ip).or_insert(0) += 1;
        Ok(())
    }

    /// Ends an attempt started with [`LoginLimiter::begin`]; then call `fail` or `succeed`.
    pub fn end(&mut self, ip: IpAddr) {
        if let Some(n) = self.in_flight.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(&ip);
            }
        }
    }

    pub fn fail(&mut self, ip: IpAddr, now: i64) {
        if self.failures.len() > 10_000 {
            // Many addresses (a scan): forget those whose failures all left the window.
            self.failures
                .retain(|_, l| l.iter().any(|t| now - t < LOGIN_WINDOW_SECS));
        }
        self.failures.entry(ip).or_default().push(now);
    }

    pub fn succeed(&mut self, ip: IpAddr) {
        self.failures.remove(&ip);
    }
}

/// Remembers Basic credentials that verified, so a script's every request does not pay for an
/// argon2 hash. Keyed by a salted SHA-256 of `user:password` (the salt is per process), never
/// the password itself; cleared when a password changes.
#[derive(Debug)]
pub struct BasicCache {
    key: [u8; 32],
    entries: HashMap<[u8; 32], (String, i64)>,
}

/// How long a verified Basic credential is trusted without re-hashing.
pub const BASIC_CACHE_SECS: i64 = 600;

impl BasicCache {
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key,
            entries: HashMap::new(),
        }
    }

    fn digest(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    pub fn get(&self, user: &str, password: &str, now: i64) -> bool {
        matches!(self.entries.get(&self.digest(user, password)), Some((u, t)) if u == user && now - t < BASIC_CACHE_SECS)
    }

    pub fn put(&mut self, user: &str, password: &str, now: i64) {
        if self.entries.len() > 64 {
            self.entries.retain(|_, (_, t)| now - *t < BASIC_CACHE_SECS);
        }
        let d = self.digest(user, password);
        self.entries.insert(d, (user.to_string(), now));
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// Decodes `Authorization: Basic base64(user:password)`.
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let (scheme, b64) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// The value of cookie `name` in a `Cookie:` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// `Set-Cookie` for a new session (`HttpOnly; SameSite=Strict; Path=/`, and `Secure` when the
/// page came over HTTPS, so the browser never sends it over plain HTTP).
pub fn session_cookie(token: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={SESSION_MAX_SECS}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let phc = hash_password("correct horse", &[7; 16]).unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify_password(&phc, "correct horse"));
        assert!(!verify_password(&phc, "correct hors"));
        assert!(!verify_password("garbage", "x"));
    }

    #[test]
    fn password_file_round_trip_and_set_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = passwd_path_for(&dir.path().join("cdrbox.toml"));
        assert_eq!(path, dir.path().join("cdrbox.passwd"));
        assert!(PasswordFile::load(&path).unwrap().entries.is_empty());
        set_password(&path, "admin", "s3cret-pass").unwrap();
        set_password(&path, "viewer", "view-only-1").unwrap();
        set_password(&path, "admin", "new-pass-2").unwrap();
        let f = PasswordFile::load(&path).unwrap();
        assert_eq!(f.entries.len(), 2);
        assert!(verify_password(f.hash_of("admin").unwrap(), "new-pass-2"));
        assert!(!verify_password(f.hash_of("admin").unwrap(), "s3cret-pass"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            set_password(&path, "root", "whatever-long"),
            Err(AuthError::UnknownUser(_))
        ));
        assert!(matches!(
            set_password(&path, "admin", "short"),
            Err(AuthError::TooShort)
        ));
        assert_eq!(PasswordFile::parse("admin:nothash\n"), Err(1));
    }

    #[test]
    fn password_file_is_0600_and_has_one_first_admin() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cdrbox.passwd");
        // (The umask itself is tested on the real binary: `cdrbox passwd` under umask 000.)
        set_password(&path, "viewer", "view-only-1").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let phc = hash_password("first-admin-1", &[1; 16]).unwrap();
        let wins: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..6)
                .map(|_| s.spawn(|| create_admin(&path, phc.clone()).is_ok()))
                .collect();
            hs.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
        });
        assert_eq!(wins, 1, "exactly one first admin");
        let f = PasswordFile::load(&path).unwrap();
        assert_eq!(f.entries.len(), 2, "the viewer kept: {:?}", f.entries);
        assert!(matches!(
            create_admin(&path, phc),
            Err(AuthError::AlreadySet)
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        tighten_passwd_mode(&path);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn sessions_expire() {
        let mut s = Sessions::default();
        let sess = Session {
            user: "admin".into(),
            role: Role::Admin,
            csrf: "c".into(),
            created_utc: 0,
            last_seen_utc: 0,
        };
        s.insert("t".into(), sess);
        assert!(s.get("t", 100).is_some());
        assert!(s.get("t", 100 + SESSION_IDLE_SECS + 1).is_none());
        assert!(s.is_empty());
    }

    #[test]
    fn limiter_locks_after_failures_and_unlocks() {
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let other: IpAddr = "10.0.0.10".parse().unwrap();
        let mut l = LoginLimiter::default();
        for t in 0..LOGIN_FAILURES as i64 {
            assert!(l.check(ip, t).is_ok());
            l.fail(ip, t);
        }
        assert_eq!(l.check(ip, 10), Err(LOGIN_WINDOW_SECS - 10));
        assert!(l.check(other, 10).is_ok());
        assert!(l.check(ip, LOGIN_WINDOW_SECS + 5).is_ok());
    }

    /// Issue 11, finding 8: eight guesses at once against a limit of five.
    #[test]
    fn attempts_in_flight_count_against_the_limit() {
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let mut l = LoginLimiter::default();
        let started = (0..8).filter(|_| l.begin(ip, 0).is_ok()).count();
        assert_eq!(started, LOGIN_FAILURES);
        assert_eq!(l.begin(ip, 0), Err(1));
        for _ in 0..started {
            l.end(ip);
            l.fail(ip, 0);
        }
        assert_eq!(l.begin(ip, 1), Err(LOGIN_WINDOW_SECS - 1));
        // A success in flight frees its place.
        let other: IpAddr = "10.0.0.10".parse().unwrap();
        l.begin(other, 0).unwrap();
        l.end(other);
        l.succeed(other);
        assert!(l.check(other, 0).is_ok());
    }

    #[test]
    fn basic_and_cookie_parsing() {
        assert_eq!(
            parse_basic("Basic YWRtaW46cGE6c3M="),
            Some(("admin".into(), "pa:ss".into()))
        );
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(
            cookie_value("a=1; cdrbox_session=abc; b=2", SESSION_COOKIE),
            Some("abc")
        );
        assert_eq!(cookie_value("a=1", SESSION_COOKIE), None);
        let c = BasicCache::new([1; 32]);
        assert!(!c.get("admin", "x", 0));
    }
}
