//! HTTPS for the web page (issue 11 item 6): the box's certificate — self-signed on first
//! start, or one the admin uploads —, its SHA-256 fingerprint, and the TLS side of the gate's
//! client connections. rustls with the `ring` provider only (no aws-lc, no OpenSSL: the box is
//! cross-compiled for ARM and those need cmake/nasm/a C toolchain per target).
//!
//! The gate terminates TLS before it parses anything ([`TlsAcceptor::accept`] turns an accepted
//! socket into a [`super::gate::ClientStream`]), so every protection of the plain gate — one
//! parser, deadlines, per-address caps, eviction of slow heads — holds over HTTPS unchanged. The
//! handshake runs under the head deadline and counts as a head still arriving, and every
//! [`Read::read`]/[`Write::write`] on a [`TlsClient`] is bounded in total by the socket's
//! time-out (a client trickling a TLS record byte by byte cannot stretch one read).
//!
//! Files, beside the config like the password file: `cdrbox.tls.crt` (PEM chain, leaf first)
//! and `cdrbox.tls.key` (PEM private key, 0600 whatever the umask). A certificate this box made
//! starts with the line [`SELF_SIGNED_MARK`]. Uploads replace both files atomically and take
//! effect for the next handshake, without a restart.

use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
// Instant, not the box Clock: the handshake and record deadlines bound real sockets (a peer
// trickling bytes in real time); a paused test clock must not let one hang.
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig, ServerConnection};
use rustls::sign::CertifiedKey;

use super::gate::ClientStream;
use crate::fsio::{write_atomic, AtomicOptions};

/// First line of a certificate file this box made itself (PEM readers skip text outside the
/// `BEGIN`/`END` lines), so the page can say "self-signed" after a restart.
pub const SELF_SIGNED_MARK: &str = "# cdrbox: self-signed certificate made by this box";

/// Largest certificate or key file accepted (a chain of a few certificates is ~10 KiB).
pub const MAX_PEM_BYTES: usize = 64 * 1024;

/// Where the certificate and its key live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `cdrbox.tls.crt` and `cdrbox.tls.key` in the config file's directory.
pub fn paths_for(config_path: &Path) -> TlsPaths {
    let dir = config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    TlsPaths {
        cert: dir.join("cdrbox.tls.crt"),
        key: dir.join("cdrbox.tls.key"),
    }
}

/// Why the certificate could not be loaded, made or installed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// What was given is not a usable certificate/key; the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    #[error("making the self-signed certificate: {0}")]
    Generate(String),
}

fn invalid(msg: impl Into<String>) -> TlsError {
    TlsError::Invalid(msg.into())
}

/// The ring provider: the only one this box uses.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 of a certificate (DER), 64 upper-case hex digits (what `openssl x509 -fingerprint
/// -sha256` prints, without the colons).
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    crate::hex::encode(&sha2::Sha256::digest(der)).to_ascii_uppercase()
}

/// `AB:CD:…`: the fingerprint the way browsers and `openssl` show it.
pub fn fingerprint_colons(fp: &str) -> String {
    fp.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}

/// A certificate chain and its private key, checked to belong together.
#[derive(Debug, Clone)]
pub struct Identity {
    key: Arc<CertifiedKey>,
    /// The certificate chain as PEM (what `GET /api/tls` hands scripts for `curl --cacert`).
    pub pem: Arc<str>,
    /// SHA-256 of the leaf certificate.
    pub fingerprint: String,
    /// Made by this box (not uploaded).
    pub self_signed: bool,
}

impl Identity {
    /// Parses PEM text: one or more `CERTIFICATE` blocks (leaf first) and one private key
    /// (PKCS#8, SEC1 or PKCS#1), and checks that the key is the leaf's.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Identity, TlsError> {
        if cert_pem.len() > MAX_PEM_BYTES || key_pem.len() > MAX_PEM_BYTES {
            return Err(invalid(format!(
                "certificate or key larger than {MAX_PEM_BYTES} bytes"
            )));
        }
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("the certificate is not valid PEM: {e}")))?;
        if chain.is_empty() {
            return Err(invalid(
                "no certificate found: paste the PEM text that starts with \"-----BEGIN CERTIFICATE-----\"",
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            invalid(format!(
                "no usable private key found ({e}): paste the PEM text that starts with \"-----BEGIN PRIVATE KEY-----\" (or EC/RSA PRIVATE KEY), not encrypted"
            ))
        })?;
        let fp = fingerprint(chain[0].as_ref());
        let certified = CertifiedKey::from_der(chain, key, &provider())
            .map_err(|e| invalid(format!("the private key does not fit the certificate: {e}")))?;
        let self_signed = std::str::from_utf8(cert_pem)
            .is_ok_and(|t| t.trim_start().starts_with(SELF_SIGNED_MARK));
        let pem = chain_pem(&certified.cert);
        Ok(Identity {
            key: Arc::new(certified),
            pem,
            fingerprint: fp,
            self_signed,
        })
    }
}

/// The chain as PEM text, re-encoded from what was parsed (no stray text from the upload).
fn chain_pem(chain: &[CertificateDer<'_>]) -> Arc<str> {
    use base64::Engine;
    let mut out = String::new();
    for c in chain {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(c.as_ref());
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out.into()
}

/// A new self-signed certificate (ECDSA P-256) for `names` (DNS names and IP literals) and its
/// key, as PEM text: `(certificate, key)`.
pub fn make_self_signed(box_name: &str, names: &[String]) -> Result<(String, String), TlsError> {
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| TlsError::Generate(format!("a name in {names:?}: {e}")))?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, format!("cdrbox {box_name}"));
    params.distinguished_name = dn;
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    Ok((
        format!("{SELF_SIGNED_MARK} ({box_name})\n{}", cert.pem()),
        key.serialize_pem(),
    ))
}

/// The names a self-signed certificate is made for: `localhost`, the box's hostname and
/// `<hostname>.local`, `extra` (`[web] hostnames`), loopback and the given addresses.
pub fn names_for(extra: &[String], addresses: &[IpAddr]) -> Vec<String> {
    let mut names = vec!["localhost".to_string()];
    if let Some(h) = super::gate::system_hostname() {
        names.push(h.clone());
        names.push(format!("{h}.local"));
    }
    names.extend(
        extra
            .iter()
            .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase()),
    );
    names.push("127.0.0.1".into());
    names.push("::1".into());
    names.extend(addresses.iter().map(|a| a.to_string()));
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| !n.is_empty() && seen.insert(n.clone()));
    names
}

type OnChange = Box<dyn Fn(&Identity) + Send + Sync>;

/// The box's live certificate: what new handshakes get, replaced by an upload without a
/// restart.
pub struct BoxCertificate {
    paths: TlsPaths,
    box_name: String,
    names: Vec<String>,
    current: RwLock<Identity>,
    on_change: Mutex<Option<OnChange>>,
    /// Serialises installs (two uploads at once: one after the other, the last one wins whole).
    installing: Mutex<()>,
}

impl std::fmt::Debug for BoxCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxCertificate")
            .field("paths", &self.paths)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

/// What the page shows about the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub fingerprint: String,
    pub self_signed: bool,
    /// The chain as PEM.
    pub certificate: Arc<str>,
}

fn read_file(path: &Path) -> Result<Option<Vec<u8>>, TlsError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn write_pair(paths: &TlsPaths, cert: &[u8], key: &[u8]) -> Result<(), TlsError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    // The key first: a crash between the two leaves a key that does not fit the old
    // certificate, which the next start reports (and `DELETE /api/tls` or removing both files
    // cures) rather than a certificate served with a key nobody has.
    write_atomic(&paths.key, key, AtomicOptions::SECRET).map_err(io(&paths.key))?;
    write_atomic(&paths.cert, cert, AtomicOptions::SECRET.mode(0o644)).map_err(io(&paths.cert))
}

impl BoxCertificate {
    /// Loads the certificate and key from `paths`, or — when neither exists — makes a
    /// self-signed one for `names` and stores it. One file without the other, or a pair that
    /// does not fit, is an error naming the files (nothing is overwritten).
    pub fn load_or_create(
        paths: TlsPaths,
        box_name: &str,
        names: Vec<String>,
    ) -> Result<Arc<BoxCertificate>, TlsError> {
        let identity = match (read_file(&paths.cert)?, read_file(&paths.key)?) {
            (Some(c), Some(k)) => Identity::from_pem(&c, &k).map_err(|e| {
                invalid(format!(
                    "{} / {}: {e} (upload a certificate on the web page, or remove both files to get a new self-signed one)",
                    paths.cert.display(),
                    paths.key.display()
                ))
            })?,
            (None, None) => {
                let (c, k) = make_self_signed(box_name, &names)?;
                write_pair(&paths, c.as_bytes(), k.as_bytes())?;
                tracing::info!(target: "cdrbox::web", cert = %paths.cert.display(), "made a self-signed HTTPS certificate");
                Identity::from_pem(c.as_bytes(), k.as_bytes())?
            }
            (c, _) => {
                let (have, missing) = if c.is_some() {
                    (&paths.cert, &paths.key)
                } else {
                    (&paths.key, &paths.cert)
                };
                return Err(invalid(format!(
                    "{} exists but {} does not: put the matching file there, or remove {} to get a new self-signed certificate",
                    have.display(),
                    missing.display(),
                    have.display()
                )));
            }
        };
        Self::tighten_key_mode(&paths.key);
        Ok(Arc::new(BoxCertificate {
            paths,
            box_name: box_name.to_string(),
            names,
            current: RwLock::new(identity),
            on_change: Mutex::new(None),
            installing: Mutex::new(()),
        }))
    }

    /// A key file readable by others is made 0600, with a warning.
    fn tighten_key_mode(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(target: "cdrbox::web", path = %path.display(), mode = format!("{mode:o}"), "the HTTPS key was readable by others; made it 0600");
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
            }
        }
    }

    pub fn paths(&self) -> &TlsPaths {
        &self.paths
    }

    /// The current certificate's SHA-256 fingerprint (64 upper-case hex digits).
    pub fn fingerprint(&self) -> String {
        self.identity().fingerprint
    }

    pub fn info(&self) -> CertificateInfo {
        let id = self.identity();
        CertificateInfo {
            fingerprint: id.fingerprint,
            self_signed: id.self_signed,
            certificate: id.pem,
        }
    }

    fn identity(&self) -> Identity {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Called with the new identity after every install (the runtime puts the fingerprint on
    /// the OLED).
    pub fn on_change(&self, f: impl Fn(&Identity) + Send + Sync + 'static) {
        *self.on_change.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(f));
    }

    /// Checks an uploaded certificate and key, stores them and serves them from the next
    /// handshake on. Nothing changes when they are refused.
    pub fn install(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<CertificateInfo, TlsError> {
        let mut id = Identity::from_pem(cert_pem, key_pem)?;
        // An upload is the admin's choice even when it carries our mark (a re-upload of the
        // box's own file): stored as the parsed chain alone (no mark, no stray text), shown as
        // uploaded.
        id.self_signed = false;
        let cert = id.pem.clone();
        self.replace(id, cert.as_bytes(), key_pem)
    }

    /// Replaces the certificate by a new self-signed one (back from an uploaded certificate).
    pub fn make_new_self_signed(&self) -> Result<CertificateInfo, TlsError> {
        let (c, k) = make_self_signed(&self.box_name, &self.names)?;
        let id = Identity::from_pem(c.as_bytes(), k.as_bytes())?;
        self.replace(id, c.as_bytes(), k.as_bytes())
    }

    fn replace(&self, id: Identity, cert: &[u8], key: &[u8]) -> Result<CertificateInfo, TlsError> {
        let _one = self.installing.lock().unwrap_or_else(|p| p.into_inner());
        write_pair(&self.paths, cert, key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = id.clone();
        tracing::info!(target: "cdrbox::web", fingerprint = %id.fingerprint, self_signed = id.self_signed, "HTTPS certificate replaced");
        if let Some(f) = &*self.on_change.lock().unwrap_or_else(|p| p.into_inner()) {
            f(&id);
        }
        Ok(CertificateInfo {
            fingerprint: id.fingerprint,
            self_signed: id.self_signed,
            certificate: id.pem,
        })
    }

    /// The rustls server configuration: TLS 1.2 and 1.3, HTTP/1.1 only, this certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(format!("TLS setup: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// Hands every handshake the certificate current at that moment.
#[derive(Debug)]
struct Resolver(Arc<BoxCertificate>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.identity().key)
    }
}

/// Turns accepted sockets into TLS connections (the gate's wrapper for HTTPS).
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
}

impl TlsAcceptor {
    pub fn new(config: Arc<ServerConfig>) -> Self {
        Self { config }
    }

    /// The handshake, done by `deadline` (each socket read at most `io_timeout`). A client
    /// that speaks plain HTTP to this port is told, in plain HTTP, to use `https://`.
    pub fn accept(
        &self,
        mut sock: TcpStream,
        deadline: Instant,
        io_timeout: Duration,
    ) -> io::Result<TlsClient> {
        if speaks_plain_http(&sock, deadline, io_timeout)? {
            let body = "{\"error\":\"this port speaks HTTPS: use an https:// address\"}";
            let _ = sock.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = write!(
                sock,
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.shutdown(std::net::Shutdown::Write);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "plain HTTP on the HTTPS port",
            ));
        }
        let mut conn = ServerConnection::new(self.config.clone()).map_err(io::Error::other)?;
        while conn.is_handshaking() {
            flush_tls(&mut conn, &mut sock, deadline)?;
            if !conn.is_handshaking() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            sock.set_read_timeout(Some(left.min(io_timeout).max(Duration::from_millis(1))))?;
            if conn.read_tls(&mut sock)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if let Err(e) = conn.process_new_packets() {
                // Send the alert that says why, then give up.
                let _ = flush_tls(
                    &mut conn,
                    &mut sock,
                    Instant::now() + Duration::from_secs(1),
                );
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        flush_tls(&mut conn, &mut sock, deadline)?;
        Ok(TlsClient { conn, sock })
    }
}

/// Peeks at the first byte: a TLS handshake starts with 0x16, an HTTP request with a letter.
fn speaks_plain_http(
    sock: &TcpStream,
    deadline: Instant,
    io_timeout: Duration,
) -> io::Result<bool> {
    let mut first = [0u8; 1];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        sock.set_read_timeout(Some(left.min(io_timeout).max(Duration::from_millis(1))))?;
        match sock.peek(&mut first) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => return Ok(first[0].is_ascii_uppercase()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Sends everything rustls has queued, by `deadline`.
fn flush_tls(
    conn: &mut ServerConnection,
    sock: &mut TcpStream,
    deadline: Instant,
) -> io::Result<()> {
    while conn.wants_write() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        sock.set_write_timeout(Some(left))?;
        match conn.write_tls(sock) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// An established TLS connection as the gate reads and writes it.
///
/// Each `read`/`write` takes at most the socket's read/write time-out in total (one plain TCP
/// `read` has that bound; rustls's own `Stream` would keep reading until a whole record came,
/// so a byte-a-second client could hold one read for ever).
pub struct TlsClient {
    conn: ServerConnection,
    sock: TcpStream,
}

fn deadline_of(timeout: Option<Duration>) -> Instant {
    Instant::now() + timeout.unwrap_or(Duration::from_secs(3600))
}

impl Read for TlsClient {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = deadline_of(self.sock.read_timeout()?);
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed the TCP side without a close_notify: the end, all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.sock.set_read_timeout(Some(left))?;
            // (Callers set the time-out before every read, so changing it here is harmless.)
            if self.conn.read_tls(&mut self.sock)? == 0 {
                return Ok(0);
            }
            if let Err(e) = self.conn.process_new_packets() {
                let _ = flush_tls(
                    &mut self.conn,
                    &mut self.sock,
                    Instant::now() + Duration::from_secs(1),
                );
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            flush_tls(&mut self.conn, &mut self.sock, deadline)?;
        }
    }
}

impl Write for TlsClient {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let deadline = deadline_of(self.sock.write_timeout()?);
        let n = self.conn.writer().write(buf)?;
        flush_tls(&mut self.conn, &mut self.sock, deadline)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        let deadline = deadline_of(self.sock.write_timeout()?);
        self.conn.writer().flush()?;
        flush_tls(&mut self.conn, &mut self.sock, deadline)
    }
}

impl ClientStream for TlsClient {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }

    fn is_tls(&self) -> bool {
        true
    }

    fn close(&mut self) {
        self.conn.send_close_notify();
        let _ = flush_tls(
            &mut self.conn,
            &mut self.sock,
            Instant::now() + Duration::from_secs(1),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (String, String) {
        make_self_signed("office", &names_for(&["calls.office.lan".into()], &[])).unwrap()
    }

    #[test]
    fn a_self_signed_certificate_loads_and_its_fingerprint_is_the_sha256_of_the_leaf() {
        let (c, k) = pair();
        assert!(c.starts_with(SELF_SIGNED_MARK));
        let id = Identity::from_pem(c.as_bytes(), k.as_bytes()).unwrap();
        assert!(id.self_signed);
        assert_eq!(id.fingerprint.len(), 64);
        assert!(id
            .fingerprint
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()));
        let der = CertificateDer::from_pem_slice(c.as_bytes()).unwrap();
        assert_eq!(id.fingerprint, fingerprint(der.as_ref()));
        let colons = fingerprint_colons(&id.fingerprint);
        assert_eq!(colons.len(), 64 + 31);
        assert_eq!(colons.replace(':', ""), id.fingerprint);
    }

    #[test]
    fn a_key_that_is_not_the_certificates_or_no_pem_is_refused_saying_so() {
        let (c, _) = pair();
        let (_, other_key) = pair();
        let e = Identity::from_pem(c.as_bytes(), other_key.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("does not fit"), "{e}");
        let e = Identity::from_pem(b"hello", other_key.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("BEGIN CERTIFICATE"), "{e}");
        let e = Identity::from_pem(c.as_bytes(), b"nope").unwrap_err();
        assert!(e.to_string().contains("private key"), "{e}");
        let big = vec![b'a'; MAX_PEM_BYTES + 1];
        assert!(Identity::from_pem(&big, b"").is_err());
    }

    #[test]
    fn made_once_then_loaded_the_same_and_half_a_pair_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths_for(&dir.path().join("cdrbox.toml"));
        let a =
            BoxCertificate::load_or_create(paths.clone(), "office", names_for(&[], &[])).unwrap();
        let b = BoxCertificate::load_or_create(paths.clone(), "office", vec![]).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert!(b.info().self_signed);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&paths.key), 0o600);
        // A key made readable by others is tightened at start.
        std::fs::set_permissions(&paths.key, std::fs::Permissions::from_mode(0o644)).unwrap();
        BoxCertificate::load_or_create(paths.clone(), "office", vec![]).unwrap();
        assert_eq!(mode(&paths.key), 0o600);
        std::fs::remove_file(&paths.key).unwrap();
        let e = BoxCertificate::load_or_create(paths.clone(), "office", vec![]).unwrap_err();
        assert!(e.to_string().contains("cdrbox.tls.key"), "{e}");
        assert!(paths.cert.exists(), "nothing overwritten");
    }

    #[test]
    fn an_upload_replaces_the_served_key_and_tells_the_listener() {
        let dir = tempfile::tempdir().unwrap();
        let paths = paths_for(&dir.path().join("cdrbox.toml"));
        let cert = BoxCertificate::load_or_create(paths.clone(), "office", vec![]).unwrap();
        let seen = Arc::new(Mutex::new(String::new()));
        let s = seen.clone();
        cert.on_change(move |id| *s.lock().unwrap() = id.fingerprint.clone());
        let (c, k) = pair();
        let info = cert.install(c.as_bytes(), k.as_bytes()).unwrap();
        assert!(
            !info.self_signed,
            "an upload is the admin's even with our mark"
        );
        assert_eq!(*seen.lock().unwrap(), info.fingerprint);
        assert_eq!(cert.fingerprint(), info.fingerprint);
        let stored = std::fs::read_to_string(&paths.cert).unwrap();
        assert!(!stored.contains(SELF_SIGNED_MARK));
        let again = BoxCertificate::load_or_create(paths, "office", vec![]).unwrap();
        assert_eq!(again.info(), info);
    }

    /// A server side with a fresh certificate, and a client that trusts exactly it.
    fn acceptor() -> (TlsAcceptor, Arc<rustls::ClientConfig>) {
        let dir = tempfile::tempdir().unwrap();
        let cert = BoxCertificate::load_or_create(
            paths_for(&dir.path().join("c.toml")),
            "t",
            vec!["localhost".into()],
        )
        .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(cert.info().certificate.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (
            TlsAcceptor::new(cert.server_config().unwrap()),
            Arc::new(client),
        )
    }

    /// Sends `bytes` one at a time, `gap` apart, until the peer goes away.
    fn trickle(mut s: TcpStream, bytes: Vec<u8>, gap: Duration) {
        std::thread::spawn(move || {
            for b in bytes {
                if s.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(gap);
            }
            std::thread::sleep(Duration::from_secs(5));
        });
    }

    #[test]
    fn a_handshake_trickled_byte_by_byte_ends_at_the_deadline() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (server, client_config) = acceptor();
        let mut client =
            rustls::ClientConnection::new(client_config, "localhost".try_into().unwrap()).unwrap();
        let mut hello = Vec::new();
        client.write_tls(&mut hello).unwrap();
        trickle(
            TcpStream::connect(l.local_addr().unwrap()).unwrap(),
            hello,
            Duration::from_millis(100),
        );
        let (sock, _) = l.accept().unwrap();
        let t = Instant::now();
        let r = server.accept(sock, t + Duration::from_secs(1), Duration::from_millis(500));
        assert!(r.is_err(), "a trickled handshake must not complete");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }

    #[test]
    fn one_read_is_bounded_by_the_socket_timeout_even_while_a_record_trickles_in() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (server, client_config) = acceptor();
        let srv = std::thread::spawn(move || {
            let (sock, _) = l.accept().unwrap();
            let mut c = server
                .accept(
                    sock,
                    Instant::now() + Duration::from_secs(20),
                    Duration::from_secs(5),
                )
                .unwrap();
            c.sock
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let t = Instant::now();
            let mut buf = [0u8; 64];
            let r = c.read(&mut buf);
            (r.map_err(|e| e.kind()), t.elapsed())
        });
        let mut conn =
            rustls::ClientConnection::new(client_config, "localhost".try_into().unwrap()).unwrap();
        let mut sock = TcpStream::connect(addr).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).unwrap();
        }
        // One application-data record, sent a byte every 100 ms (~4 s in all).
        conn.writer().write_all(b"GET / HTTP/1.1\r\n").unwrap();
        let mut record = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut record).unwrap();
        }
        trickle(sock, record, Duration::from_millis(100));
        let (r, took) = srv.join().unwrap();
        assert!(
            matches!(r, Err(io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)),
            "{r:?}"
        );
        assert!(took < Duration::from_millis(2500), "{took:?}");
    }

    #[test]
    fn plain_http_on_the_https_port_is_told_to_use_https() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (sock, _) = l.accept().unwrap();
        let r = acceptor().0.accept(
            sock,
            Instant::now() + Duration::from_secs(5),
            Duration::from_secs(5),
        );
        assert!(r.is_err());
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        assert!(answer.contains("https://"), "{answer}");
    }
}
