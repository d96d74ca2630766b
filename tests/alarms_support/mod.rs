//! Shared by the alarm tests: a real SMTP server (Debian's python3-aiosmtpd, started from
//! `smtp_server.py`, optionally with STARTTLS + AUTH and a throw-away CA made with the openssl
//! CLI), the mails it received, and their parts as Python's `email` module reads them.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const USER: &str = "alarm";
pub const PASSWORD: &str = "s3cret-pw";

/// A throw-away CA and a server certificate for 127.0.0.1 signed by it.
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn make_certs(dir: &Path) -> Certs {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=cdrbox test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-subj", "/CN=localhost"];
    csr.extend(ec);
    csr.extend(["-keyout", "key.pem", "-out", "leaf.csr"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "cert.pem",
        ],
    );
    Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    }
}

/// The aiosmtpd server process; killed on drop.
pub struct Smtp {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Smtp {
    /// `tls`: STARTTLS required + AUTH with [`USER`]/[`PASSWORD`]; `None`: plain, no AUTH.
    /// `port` 0 picks one.
    pub fn start(dir: &Path, port: u16, tls: Option<&Certs>) -> Smtp {
        std::fs::create_dir_all(dir).unwrap();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/alarms_support/smtp_server.py"
        );
        let (cert, key) = tls.map_or(("-".into(), "-".into()), |c| {
            (c.cert.display().to_string(), c.key.display().to_string())
        });
        // Debian's python, where python3-aiosmtpd is installed (not a pyenv shim on PATH).
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(dir)
            .arg(port.to_string())
            .args([&cert, &key, USER, PASSWORD])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/bin/python3 with python3-aiosmtpd (apt-get install python3-aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the SMTP server did not start (is python3-aiosmtpd installed?): {line:?}")
        });
        Smtp {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The mails received in `dir`, in arrival order.
pub fn mails(dir: &Path) -> Vec<String> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    names.retain(|p| p.extension().is_some_and(|e| e == "eml"));
    names.sort();
    names
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// The subjects of the mails received in `dir`, in arrival order.
pub fn subjects(dir: &Path) -> Vec<String> {
    mails(dir).iter().map(|m| subject(m)).collect()
}

pub fn subject(mail: &str) -> String {
    mail.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_default()
        .to_owned()
}

/// One received mail as Python's `email` package parses it (`mail_parts.py`): the decoded
/// subject, the plain-text part and every attachment's name and exact bytes.
pub struct MailParts {
    pub subject: String,
    pub text: String,
    pub attachments: Vec<(String, Vec<u8>)>,
}

pub fn mail_parts(mail: &str) -> MailParts {
    use base64::Engine;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/alarms_support/mail_parts.py"
    );
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3");
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), mail.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "mail_parts.py failed on:\n{mail}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    MailParts {
        subject: v["subject"].as_str().unwrap().to_owned(),
        text: v["text"].as_str().unwrap().to_owned(),
        attachments: v["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["filename"].as_str().unwrap().to_owned(),
                    b64.decode(a["data"].as_str().unwrap()).unwrap(),
                )
            })
            .collect(),
    }
}
