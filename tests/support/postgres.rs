//! A throw-away PostgreSQL 15 cluster for tests (Debian's `postgresql`, `.ci/run` installs it):
//! `initdb` into a temporary directory, `postgres` on 127.0.0.1 and a free port, stopped when
//! the value is dropped — also when the test panics — and the directory removed. PostgreSQL
//! refuses to run as root, so as root the cluster belongs to `nobody` (`runuser`). Setup SQL
//! goes through `psql` over the cluster's socket as the superuser; the code under test
//! connects over TCP with a password (scram-sha-256).
//! Include with `#[path = "support/postgres.rs"] mod postgres;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
    as_nobody: bool,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl Postgres {
    /// initdb + start. The superuser is `postgres` (trust over the socket only).
    pub fn start() -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("cdrbox-pg-")
            .tempdir_in("/tmp")
            .unwrap();
        let as_nobody = is_root();
        if as_nobody {
            let ok = Command::new("chown")
                .args(["-R", "nobody"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown nobody {}", dir.path().display());
        }
        let pg = Postgres {
            port: free_port(),
            dir,
            as_nobody,
        };
        let out = pg.tool(
            "initdb",
            &[
                "-D",
                &pg.data().display().to_string(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        assert!(out.status.success(), "initdb: {}", text(&out));
        pg.start_server();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    fn tool(&self, name: &str, args: &[&str]) -> Output {
        let path = format!("{BIN}/{name}");
        let mut cmd = if self.as_nobody {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--", &path]);
            c
        } else {
            Command::new(&path)
        };
        // nobody's home is not writable; keep tools from looking there.
        cmd.current_dir(self.dir.path())
            .env("HOME", self.dir.path());
        cmd.args(args).output().unwrap()
    }

    /// Starts the server (again, after [`stop_server`](Self::stop_server)) and waits until it
    /// accepts connections.
    pub fn start_server(&self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.socket_dir().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        let out = self.tool(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-o",
                &opts,
                "-l",
                &log,
                "-w",
                "-t",
                "120",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            text(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server (`fast`: open sessions are cut, like a server restart).
    pub fn stop_server(&self) {
        let out = self.tool(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "fast",
                "-w",
                "-t",
                "120",
                "stop",
            ],
        );
        assert!(out.status.success(), "pg_ctl stop: {}", text(&out));
    }

    /// The server's log so far (its own account of what clients did, e.g. "unexpected EOF on
    /// client connection with an open transaction" when a client vanished mid-batch).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// How often the server logged that a client vanished inside a transaction.
    pub fn cut_transactions(&self) -> usize {
        self.log()
            .matches("unexpected EOF on client connection with an open transaction")
            .count()
    }

    /// Runs SQL as the superuser in `db`; returns psql's unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        match self.try_psql(db, sql) {
            Ok(out) => out,
            Err(e) => panic!("psql {sql}: {e}"),
        }
    }

    /// [`psql`](Self::psql) that returns psql's complaint instead of panicking (for polls that
    /// may run before the box created its tables).
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = self.tool(
            "psql",
            &[
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-h",
                &self.socket_dir().display().to_string(),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ],
        );
        if !out.status.success() {
            return Err(text(&out));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Polls `sql` until it prints `want` (the deadline is generous: a shared machine).
    pub fn wait_for(&self, db: &str, sql: &str, want: &str, limit: Duration) {
        let t = Instant::now();
        loop {
            let got = self.psql(db, sql);
            if got.trim() == want {
                return;
            }
            assert!(
                t.elapsed() < limit,
                "timed out waiting for {sql:?} = {want:?}, last {got:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.tool(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
