//! A hostile PBX for the memory tests (issue 11, finding 3): an AMI server on 127.0.0.1:0 that
//! accepts any plain login, answers pings, and sends `count` Cdr events of about `bytes` each —
//! the bulk in custom fields (`X00001: …`), the way a PBX with a runaway `[mappings]` or a
//! malicious dialplan would. Plain std threads; stops when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct HostilePbx {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

/// One Cdr event of about `bytes` (at most 1 MB, the box's message bound): the 18 standard
/// fields, then custom fields of 17 bytes each.
pub fn big_cdr(n: usize, bytes: usize) -> Vec<u8> {
    let mut v = format!(
        "Event: Cdr\r\nPrivilege: cdr,all\r\nAccountCode: \r\nSource: 1001\r\nDestination: 2001\r\nDestinationContext: internal\r\nCallerID: \"Big {n}\" <1001>\r\nChannel: PJSIP/1001-{n:08}\r\nDestinationChannel: PJSIP/2001-{n:08}\r\nLastApplication: Dial\r\nLastData: PJSIP/2001,20\r\nStartTime: 2026-11-22 10:{:02}:{:02}\r\nAnswerTime: 2026-11-22 10:{:02}:{:02}\r\nEndTime: 2026-11-22 10:{:02}:{:02}\r\nDuration: 4\r\nBillableSeconds: 3\r\nDisposition: ANSWERED\r\nAMAFlags: DOCUMENTATION\r\nUniqueID: 1795330800.{n}\r\nUserField: \r\n",
        n / 60 % 60, n % 60, n / 60 % 60, n % 60, n / 60 % 60, n % 60
    )
    .into_bytes();
    let mut i = 0;
    while v.len() + 17 < bytes {
        // `X000123: 000123\r\n` = 17 bytes.
        v.extend_from_slice(format!("X{i:06}: {:06}\r\n", i % 1_000_000).as_bytes());
        i += 1;
    }
    v.extend_from_slice(b"\r\n");
    v
}

/// Makes event number `n`.
pub type MakeEvent = Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync>;

impl HostilePbx {
    /// `count` events of about `bytes` each (see [`big_cdr`]).
    pub fn start(count: usize, bytes: usize) -> HostilePbx {
        Self::with_events(count, Arc::new(move |n| big_cdr(n, bytes)))
    }

    /// `count` events of about `bytes` each, one every `gap` (see [`big_cdr`]).
    pub fn start_paced(count: usize, bytes: usize, gap: Duration) -> HostilePbx {
        Self::with_events_paced(count, Arc::new(move |n| big_cdr(n, bytes)), gap)
    }

    /// `count` events made by `make`, sent once per login.
    pub fn with_events(count: usize, make: MakeEvent) -> HostilePbx {
        Self::with_events_paced(count, make, Duration::ZERO)
    }

    /// `count` events made by `make`, one every `gap` (back to back for zero), once per login.
    pub fn with_events_paced(count: usize, make: MakeEvent, gap: Duration) -> HostilePbx {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (stop, make) = (stop2.clone(), make.clone());
                        std::thread::spawn(move || {
                            let _ = session(s, count, &*make, gap, &stop);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        HostilePbx { addr, stop }
    }
}

impl Drop for HostilePbx {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Reads one action (lines up to a blank line); its `ActionID` and `Action`.
fn action(r: &mut BufReader<TcpStream>) -> Option<(String, String)> {
    let (mut id, mut what) = (String::new(), String::new());
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Some((id, what));
        }
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "actionid" => id = v.trim().to_string(),
                "action" => what = v.trim().to_ascii_lowercase(),
                _ => {}
            }
        }
    }
}

fn session(
    s: TcpStream,
    count: usize,
    make: &(dyn Fn(usize) -> Vec<u8> + Send + Sync),
    gap: Duration,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    w.write_all(b"Asterisk Call Manager/11.0.0\r\n")?;
    loop {
        let Some((id, what)) = action(&mut r) else {
            return Ok(());
        };
        if what == "login" {
            write!(
                w,
                "Response: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n"
            )?;
            break;
        }
        write!(
            w,
            "Response: Error\r\nActionID: {id}\r\nMessage: Login first\r\n\r\n"
        )?;
    }
    // Pings are answered from their own thread while the events go out; one writer at a time,
    // so an answer never lands inside an event.
    let w = Arc::new(std::sync::Mutex::new(w));
    let pong = w.clone();
    std::thread::spawn(move || {
        while let Some((id, what)) = action(&mut r) {
            let reply = if what == "ping" {
                format!("Response: Success\r\nActionID: {id}\r\nPing: Pong\r\n\r\n")
            } else {
                format!("Response: Success\r\nActionID: {id}\r\n\r\n")
            };
            if pong.lock().unwrap().write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    });
    for n in 0..count {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let event = make(n);
        w.lock().unwrap().write_all(&event)?;
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
    }
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
