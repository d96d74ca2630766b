//! A throw-away MariaDB server for tests (Debian's `mariadb-server`, `.ci/run` installs it):
//! `mariadb-install-db` into a temporary data directory (done once per test binary, then copied),
//! `mariadbd` on 127.0.0.1 and a free port, stopped when the value is dropped — also when the
//! test panics — and the directory removed. Setup SQL goes through the `mariadb` client over the
//! server's socket as root; the code under test connects over TCP as a normal user.
//! Include with `#[path = "support/mariadb.rs"] mod mariadb;`.
#![allow(dead_code)]

#[path = "box_process.rs"]
mod box_process;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const MARIADBD: &str = "/usr/sbin/mariadbd";
const INSTALL_DB: &str = "/usr/bin/mariadb-install-db";
const CLIENT: &str = "/usr/bin/mariadb";

/// The columns of FreePBX 2.x's `asteriskcdrdb.cdr` (framework's installlib/SQL/cdr.sql).
const FREEPBX_2X_COLUMNS: &str = "
   calldate datetime NOT NULL default '1000-01-01 00:00:00',
   clid varchar(80) NOT NULL default '',
   src varchar(80) NOT NULL default '',
   dst varchar(80) NOT NULL default '',
   dcontext varchar(80) NOT NULL default '',
   channel varchar(80) NOT NULL default '',
   dstchannel varchar(80) NOT NULL default '',
   lastapp varchar(80) NOT NULL default '',
   lastdata varchar(80) NOT NULL default '',
   duration int(11) NOT NULL default '0',
   billsec int(11) NOT NULL default '0',
   disposition varchar(45) NOT NULL default '',
   amaflags int(11) NOT NULL default '0',
   accountcode varchar(20) NOT NULL default '',
   uniqueid varchar(32) NOT NULL default '',
   userfield varchar(255) NOT NULL default '',
   did varchar(50) NOT NULL default '',
   recordingfile varchar(255) NOT NULL default '',";

/// The columns the cdr module of FreePBX 14+ adds.
const FREEPBX_NEW_COLUMNS: &str = "
   cnum varchar(80) NOT NULL default '',
   cnam varchar(80) NOT NULL default '',
   outbound_cnum varchar(80) NOT NULL default '',
   outbound_cnam varchar(80) NOT NULL default '',
   dst_cnam varchar(80) NOT NULL default '',
   linkedid varchar(32) NOT NULL default '',
   peeraccount varchar(80) NOT NULL default '',
   sequence int(11) NOT NULL default '0',";

/// FreePBX's current table (26 columns).
pub fn freepbx_cdr() -> String {
    format!(
        "CREATE TABLE cdr ({FREEPBX_2X_COLUMNS}{FREEPBX_NEW_COLUMNS}
   KEY `calldate` (`calldate`), KEY `dst` (`dst`), KEY `accountcode` (`accountcode`),
   KEY `uniqueid` (`uniqueid`), KEY `did` (`did`)) DEFAULT CHARSET=utf8mb4"
    )
}

/// The older table (FreePBX 2.x–13: no caller-ID, linkedid, peeraccount or sequence columns).
pub fn freepbx_cdr_old() -> String {
    format!("CREATE TABLE cdr ({FREEPBX_2X_COLUMNS} KEY `calldate` (`calldate`)) DEFAULT CHARSET=utf8mb4")
}

/// A running server. Dropping it stops the server and deletes its data.
pub struct MariaDb {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    /// More mariadbd options for the next (re)start, e.g. `--ssl-cert=…`.
    extra: Vec<String>,
}

fn run_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn user_args() -> Vec<String> {
    // mariadbd refuses to run as root unless told to; as another user it runs as that user.
    if run_as_root() {
        vec!["--user=root".into()]
    } else {
        Vec::new()
    }
}

/// A data directory made by mariadb-install-db once per test binary.
fn template() -> &'static Path {
    static T: OnceLock<PathBuf> = OnceLock::new();
    T.get_or_init(|| {
        for bin in [MARIADBD, INSTALL_DB, CLIENT] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: these tests need Debian's mariadb-server and mariadb-client \
                 (apt-get install mariadb-server mariadb-client; .ci/run does)"
            );
        }
        // One template per test process; those of processes that are gone are removed here
        // (statics are never dropped, so a process cannot clean up its own).
        let tmp = std::env::temp_dir();
        let prefix = "cdrbox-mariadb-template-";
        for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(prefix) {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = tmp.join(format!("{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(INSTALL_DB)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .arg("--innodb-log-file-size=8M")
            .args(user_args())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

impl MariaDb {
    /// Starts a fresh server with database `asteriskcdrdb` (empty).
    pub fn start() -> MariaDb {
        let t = template();
        let dir = tempfile::Builder::new()
            .prefix("cdrbox-mariadb-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        let st = Command::new("cp")
            .arg("-a")
            .arg(t)
            .arg(&data)
            .status()
            .unwrap();
        assert!(st.success(), "copying the MariaDB template failed");
        let mut db = MariaDb {
            child: None,
            dir,
            port: box_process::free_port(),
            extra: Vec::new(),
        };
        db.launch();
        db.run_sql("CREATE DATABASE asteriskcdrdb", "mysql")
            .unwrap_or_else(|e| panic!("CREATE DATABASE failed: {e}"));
        db
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's own temporary directory (not the shared /tmp).
    fn tmp(&self) -> PathBuf {
        let t = self.dir.path().join("tmp");
        let _ = std::fs::create_dir_all(&t);
        t
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    fn launch(&mut self) {
        let log = self.dir.path().join("error.log");
        let child = Command::new(MARIADBD)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data().display()))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!("--port={}", self.port))
            .arg("--bind-address=127.0.0.1")
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("mysqld.pid").display()
            ))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--tmpdir={}", self.tmp().display()))
            .arg("--skip-name-resolve")
            .arg("--innodb-buffer-pool-size=32M")
            .arg("--innodb-log-file-size=8M")
            .arg("--max-connections=50")
            .args(user_args())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if self.run_sql("SELECT 1", "mysql").is_ok() {
                return;
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "mariadbd exited ({status}) while starting: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd did not accept connections within 120 s: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs SQL as root in `asteriskcdrdb`.
    pub fn try_sql(&self, sql: &str) -> Result<String, String> {
        self.run_sql(sql, "asteriskcdrdb")
    }

    fn run_sql(&self, sql: &str, database: &str) -> Result<String, String> {
        let out = Command::new(CLIENT)
            .arg("--no-defaults")
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-u", "root", "--batch", "--skip-column-names", "-e", sql])
            .arg(database)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs SQL as root; panics with the server's message on failure.
    pub fn sql(&self, sql: &str) -> String {
        self.try_sql(sql)
            .unwrap_or_else(|e| panic!("SQL failed: {e}\n{sql}"))
    }

    /// A fresh server (as [`MariaDb::start`]) set up as [`MariaDb::freepbx`] says.
    pub fn start_freepbx(create_table: &str) -> MariaDb {
        let db = MariaDb::start();
        db.freepbx(create_table);
        db
    }

    /// Creates FreePBX's table and a read-only user `cdrbox`/`pw` allowed to SELECT it from
    /// 127.0.0.1, exactly as the README tells users to.
    pub fn freepbx(&self, create_table: &str) {
        self.sql(create_table);
        self.sql(
            "CREATE USER 'cdrbox'@'127.0.0.1' IDENTIFIED BY 'pw';
             GRANT SELECT ON asteriskcdrdb.cdr TO 'cdrbox'@'127.0.0.1';",
        );
    }

    /// `mysql://user:password@127.0.0.1:port/asteriskcdrdb`.
    pub fn url(&self, user: &str, password: &str) -> String {
        format!(
            "mysql://{user}:{password}@127.0.0.1:{}/asteriskcdrdb",
            self.port
        )
    }

    /// Kills the server at once (the database "goes away").
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing answers — a hung
    /// database, not a dead one. [`thaw`](Self::thaw) lets it go on.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a frozen server go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid, not yet waited for.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    /// Stops the server cleanly (SIGTERM), SIGKILL after 60 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => return,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = c.kill();
                        let _ = c.wait();
                        return;
                    }
                }
            }
        }
    }

    /// Options for the next [`restart`](Self::restart).
    pub fn set_extra_args(&mut self, args: Vec<String>) {
        self.extra = args;
    }

    /// Starts the server again on the same data and port.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An SQL literal for test data: a quoted string for UTF-8 (quotes and backslashes doubled),
/// a hex literal for other bytes.
pub fn lit(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''")),
        Err(_) => format!(
            "X'{}'",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
    }
}

/// The INSERT cdr_adaptive_odbc makes for `r` into FreePBX's table: calldate = start,
/// amaflags as its number, and with `sequence` the newer columns (cnum, cnam, linkedid,
/// sequence) too.
pub fn freepbx_insert(r: &cdrbox::record::CallRecord, sequence: Option<usize>) -> String {
    let ama = match r.ama_flags.as_str() {
        "OMIT" => 1,
        "BILLING" => 2,
        "DOCUMENTATION" => 3,
        _ => 0,
    };
    let t = |s: &str| lit(s.as_bytes());
    let mut cols = "calldate, clid, src, dst, dcontext, channel, dstchannel, lastapp, lastdata, \
                    duration, billsec, disposition, amaflags, accountcode, uniqueid, userfield, \
                    did, recordingfile"
        .to_string();
    let mut vals = format!(
        "{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {ama}, {}, {}, {}, '', ''",
        t(&r.start.raw),
        t(&r.caller_id),
        t(&r.source),
        t(&r.destination),
        t(&r.destination_context),
        t(&r.channel),
        t(&r.destination_channel),
        t(&r.last_application),
        t(&r.last_data),
        r.duration,
        r.billable_seconds,
        t(r.disposition.as_str()),
        t(&r.account_code),
        t(&r.unique_id),
        t(&r.user_field),
    );
    if let Some(seq) = sequence {
        cols.push_str(", cnum, cnam, linkedid, sequence");
        vals.push_str(&format!(
            ", {}, {}, {}, {seq}",
            t(&r.source),
            t(&r.caller_name()),
            t(&r.unique_id)
        ));
    }
    format!("INSERT INTO cdr ({cols}) VALUES ({vals});\n")
}
