//! The real `cdrbox` binary as a child process, for every test that spawns it: a `cdrbox.toml`
//! written by a small builder ([`BoxConfig`]), free loopback ports, the admin password set with
//! `cdrbox passwd`, `cdrbox run` started with its log where the test wants it, polling with a
//! deadline, SIGTERM, and the child's `/proc` numbers. Include it with
//! `#[path = "support/box_process.rs"] mod box_process;` (from a `tests/*_support/` file:
//! `#[path = "../support/box_process.rs"]`). It must not know any one test's PBX or assertions.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_cdrbox");

/// A loopback port nobody listens on right now (the listener is closed again).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `cond` every 50 ms; fails the test naming `what` after `limit`.
pub fn wait(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until something accepts connections on 127.0.0.1:`port` (60 s at most).
pub fn wait_listening(port: u16) {
    wait("the web page", Duration::from_secs(60), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
}

/// A `cdrbox.toml` in a test's temporary directory, table by table in the order the test adds
/// them. Values are TOML text (`"key = value"` lines), so a test states exactly what it sets
/// and everything it leaves out keeps its default.
pub struct BoxConfig {
    dir: PathBuf,
    text: String,
}

impl BoxConfig {
    /// An empty file for `dir` (the journal goes to `dir/data`, see [`BoxConfig::storage`]).
    pub fn new(dir: &Path) -> BoxConfig {
        BoxConfig {
            dir: dir.to_path_buf(),
            text: String::new(),
        }
    }

    /// The box the import and CLI tests fill by import: `[[pbx]] pbx1` in Moscow (the real
    /// Master.csv fixture's zone) on a port nobody listens on, so the AMI link stays down and
    /// every record comes from the import; `[storage]` and `[web]` on `web` with defaults.
    pub fn imports_only(dir: &Path, web: u16) -> BoxConfig {
        BoxConfig::new(dir)
            .pbx(
                "pbx1",
                free_port(),
                ("cdrbox", "s3cret"),
                &["timezone = \"Europe/Moscow\""],
            )
            .storage(&[])
            .web(web, &[])
    }

    /// A box recording one PBX, `name` on 127.0.0.1:`port` with `login` and the `more`
    /// `[[pbx]]` lines, committing every 200 ms, its page on `web`, no OLED: the box of the
    /// tests that run it against a scripted PBX.
    pub fn recording(
        dir: &Path,
        name: &str,
        port: u16,
        login: (&str, &str),
        more: &[&str],
        web: u16,
    ) -> BoxConfig {
        BoxConfig::new(dir)
            .pbx(name, port, login, more)
            .storage(&["flush_interval_ms = 200"])
            .web(web, &[])
            .no_display()
    }

    /// A `[[pbx]]` on 127.0.0.1:`port`, then the `more` lines (timezone, auth, time-outs).
    pub fn pbx(self, name: &str, port: u16, login: (&str, &str), more: &[&str]) -> BoxConfig {
        let (username, secret) = login;
        let head = [
            format!("name = \"{name}\""),
            "host = \"127.0.0.1\"".to_string(),
            format!("port = {port}"),
            format!("username = \"{username}\""),
            format!("secret = \"{secret}\""),
        ];
        let lines: Vec<&str> = head
            .iter()
            .map(String::as_str)
            .chain(more.iter().copied())
            .collect();
        self.table("[[pbx]]", &lines)
    }

    /// `[storage]` with `path` = [`BoxConfig::data`], then the `more` lines.
    pub fn storage(self, more: &[&str]) -> BoxConfig {
        let path = format!("path = \"{}\"", self.data().display());
        let lines: Vec<&str> = std::iter::once(path.as_str())
            .chain(more.iter().copied())
            .collect();
        self.table("[storage]", &lines)
    }

    /// `[web]` listening on 127.0.0.1:`port` (0: any free port), then the `more` lines.
    pub fn web(self, port: u16, more: &[&str]) -> BoxConfig {
        let listen = format!("listen = \"127.0.0.1:{port}\"");
        let lines: Vec<&str> = std::iter::once(listen.as_str())
            .chain(more.iter().copied())
            .collect();
        self.table("[web]", &lines)
    }

    /// `[display] driver = "none"`: no OLED probe on the test machine.
    pub fn no_display(self) -> BoxConfig {
        self.table("[display]", &["driver = \"none\""])
    }

    /// Any table (`"[usb]"`, `"[display]"`) with its lines as given.
    pub fn table(mut self, header: &str, lines: &[&str]) -> BoxConfig {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        self.text.push_str(header);
        self.text.push('\n');
        for line in lines {
            self.text.push_str(line);
            self.text.push('\n');
        }
        self
    }

    /// Where the journal lives: `dir/data`.
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The file's text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Writes `dir/cdrbox.toml` and returns its path.
    pub fn write(&self) -> PathBuf {
        let path = self.dir.join("cdrbox.toml");
        std::fs::write(&path, &self.text).unwrap();
        path
    }
}

/// `cdrbox passwd --config FILE` with `password` on stdin; the command must succeed.
pub fn set_password(config: &Path, password: &str) {
    let mut passwd = Command::new(BIN)
        .args(["passwd", "--config"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(passwd.stdin.take().unwrap(), "{password}").unwrap();
    assert!(passwd.wait().unwrap().success());
}

/// Starts `cdrbox run --config FILE` with `RUST_LOG=rust_log` and its log (stderr) to `log`
/// (`Stdio::null()`, `Stdio::piped()`, or a `File`); stdin and stdout are closed.
pub fn spawn_run(config: &Path, rust_log: &str, log: impl Into<Stdio>) -> Child {
    Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", rust_log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start cdrbox run")
}

/// Sends SIGTERM to `child` (a clean stop: the box flushes and exits 0).
pub fn sigterm(child: &Child) {
    // SAFETY: kill(2) on our own child, which has not been waited for.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
}

/// SIGTERM, then the exit status.
pub fn terminate(child: &mut Child) -> ExitStatus {
    sigterm(child);
    child.wait().unwrap()
}

/// `cdrbox export ARGS --config FILE`: what it wrote to stdout. The command must succeed; its
/// stderr is shown when it does not.
pub fn export(config: &Path, args: &[&str]) -> Vec<u8> {
    let mut cmd = Command::new(BIN);
    cmd.arg("export").args(args).arg("--config").arg(config);
    run_ok(&mut cmd, &format!("cdrbox export {args:?}")).stdout
}

/// Runs `cmd` (`what`, for the messages) to its end: it must start and exit 0, its stderr shown
/// when it does not. Its output.
pub fn run_ok(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `cdrbox COMMAND --config FILE` (`check-config`, `test-alarm`): whether it exited 0, its
/// stdout and its stderr.
pub fn command(command: &str, config: &Path) -> (bool, String, String) {
    cli(&[command], config)
}

/// `cdrbox ARGS --config FILE` (`["import", "--pbx", "pbx1", "Master.csv"]`): whether it exited
/// 0, its stdout and its stderr.
pub fn cli(args: &[&str], config: &Path) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run cdrbox");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `cdrbox run --config FILE`, stopped with SIGTERM on drop.
pub struct RunningBox {
    pub child: Child,
    pub config: PathBuf,
}

impl RunningBox {
    /// Sets the admin password for `config` to `password`, then starts the box (log off).
    pub fn start(config: &Path, password: &str) -> RunningBox {
        set_password(config, password);
        RunningBox {
            child: spawn_run(config, "warn", Stdio::null()),
            config: config.to_path_buf(),
        }
    }

    pub fn still_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGTERM, and the exit status must be success.
    pub fn stop(mut self) {
        assert!(terminate(&mut self.child).success());
    }
}

impl Drop for RunningBox {
    fn drop(&mut self) {
        if self.still_running() {
            let _ = terminate(&mut self.child);
        }
    }
}

/// Open file descriptors of process `pid` (0 when it is gone).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A `/proc/PID/status` line in KiB (`"VmRSS:"`, `"VmHWM:"`); 0 when absent.
pub fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
