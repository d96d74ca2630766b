//! A TCP fault proxy for the fault campaign: sits between a (simulated) PBX and the logger on
//! 127.0.0.1 and injects delay, reorder-free fragmentation, clean drops (FIN, possibly in the
//! middle of a message), RSTs, closes at an arbitrary instant, black-holes (both directions
//! silently discarded) on command.
//!
//! It also keeps the ground truth of the campaign: every `Event: Cdr` it forwarded to the
//! logger *whole* (all its bytes written, and, before a RST, acknowledged by the logger's
//! kernel). Only test code: panics are fine here.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use cdrbox::ami::{Decoder, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How bytes flow right now (for new and current connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Forward as read.
    Clean = 0,
    /// Sleep up to 150 ms before forwarding each chunk (below the ping timeout).
    Delay = 1,
    /// Forward in pieces of 1–7 bytes with tiny pauses, order kept.
    Fragment = 2,
    /// Read and discard everything in both directions; nothing is closed.
    BlackHole = 3,
}

/// A one-shot cut of the current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Forward a random prefix of the next chunk, then FIN both sides.
    Drop,
    /// Pause, wait until the logger acknowledged everything sent, then RST (SO_LINGER 0).
    Reset,
    /// Close both sides now, at whatever instant this is (FIN after what was forwarded), as a
    /// firewall or NAT dropping its state, or a proxy restarting, does: whatever the PBX had
    /// in flight is lost, as with a real cut. The capture-ratio campaign's cut.
    Close,
}

/// Counters and the delivered-whole ledger.
#[derive(Default)]
pub struct Ledger {
    /// Raw bytes of every Cdr forwarded whole, in order (across connections).
    pub delivered: Mutex<Vec<Vec<u8>>>,
    pub connections: AtomicU64,
    pub drops: AtomicU64,
    pub resets: AtomicU64,
    pub closes: AtomicU64,
    pub bytes_to_logger: AtomicU64,
    pub bytes_discarded: AtomicU64,
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    pub ledger: Arc<Ledger>,
    mode: Arc<AtomicU8>,
    cut: watch::Sender<Option<(u64, Cut)>>,
    cut_seq: AtomicU64,
    stop: watch::Sender<bool>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1:0 and forwards every accepted connection to `upstream`.
    pub async fn start(upstream: SocketAddr, seed: u64) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ledger = Arc::new(Ledger::default());
        let mode = Arc::new(AtomicU8::new(Mode::Clean as u8));
        let (cut, _) = watch::channel(None);
        let (stop, _) = watch::channel(false);
        let p = FaultProxy {
            addr,
            ledger: ledger.clone(),
            mode: mode.clone(),
            cut: cut.clone(),
            cut_seq: AtomicU64::new(0),
            stop: stop.clone(),
        };
        let mut stop_rx = stop.subscribe();
        tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop_rx.changed() => return,
                };
                let Ok((down, _)) = accepted else { continue };
                n += 1;
                ledger.connections.fetch_add(1, Ordering::SeqCst);
                let ctx = Conn {
                    ledger: ledger.clone(),
                    mode: mode.clone(),
                    cut: cut.subscribe(),
                    stop: stop.subscribe(),
                    rng: fastrand::Rng::with_seed(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                };
                tokio::spawn(ctx.run(down, upstream));
            }
        });
        p
    }

    pub fn set_mode(&self, m: Mode) {
        self.mode.store(m as u8, Ordering::SeqCst);
    }

    /// Cuts every connection open now (those accepted later are not affected).
    pub fn cut(&self, c: Cut) {
        let seq = self.cut_seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.cut.send_replace(Some((seq, c)));
    }

    pub fn delivered(&self) -> Vec<Vec<u8>> {
        self.ledger.delivered.lock().unwrap().clone()
    }

    pub fn stop(&self) {
        self.stop.send_replace(true);
    }
}

struct Conn {
    ledger: Arc<Ledger>,
    mode: Arc<AtomicU8>,
    cut: watch::Receiver<Option<(u64, Cut)>>,
    stop: watch::Receiver<bool>,
    rng: fastrand::Rng,
}

/// Runs the codec over what reached the logger, to know which Cdrs arrived whole.
struct Tracker {
    dec: Decoder,
    buf: BytesMut,
}

impl Tracker {
    fn feed(&mut self, bytes: &[u8], ledger: &Ledger) {
        self.buf.extend_from_slice(bytes);
        while let Some(f) = self.dec.decode(&mut self.buf) {
            if let Frame::Message(m) = f {
                if m.is_event("Cdr") && m.terminated() {
                    ledger.delivered.lock().unwrap().push(m.raw().to_vec());
                }
            }
        }
    }
}

fn mode_of(v: u8) -> Mode {
    match v {
        1 => Mode::Delay,
        2 => Mode::Fragment,
        3 => Mode::BlackHole,
        _ => Mode::Clean,
    }
}

/// Bytes written to `s` that its peer has not acknowledged yet (SIOCOUTQ).
fn unacked(s: &TcpStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (== TIOCOUTQ) on a socket we own, writing one int.
    let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if r == 0 {
        n.max(0) as usize
    } else {
        0
    }
}

impl Conn {
    async fn run(mut self, down: TcpStream, upstream: SocketAddr) {
        let Ok(up) = TcpStream::connect(upstream).await else {
            return;
        };
        let _ = down.set_nodelay(true);
        let _ = up.set_nodelay(true);
        // Only cuts announced after this connection was accepted apply to it.
        self.cut.borrow_and_update();
        let (mut up_r, mut up_w) = up.into_split();
        let mut holed = false;
        let mut tracker = Tracker {
            dec: Decoder::default(),
            buf: BytesMut::new(),
        };
        let mut from_pbx = vec![0u8; 16 * 1024];
        let mut from_logger = vec![0u8; 4 * 1024];
        loop {
            // A black-holed connection never comes back: TCP would never splice a stream
            // around lost bytes, so neither may the proxy.
            holed |= mode_of(self.mode.load(Ordering::SeqCst)) == Mode::BlackHole;
            let mode = if holed {
                Mode::BlackHole
            } else {
                mode_of(self.mode.load(Ordering::SeqCst))
            };
            tokio::select! {
                r = up_r.read(&mut from_pbx) => {
                    let n = match r { Ok(0) | Err(_) => break, Ok(n) => n };
                    if mode == Mode::BlackHole {
                        self.ledger.bytes_discarded.fetch_add(n as u64, Ordering::Relaxed);
                        continue;
                    }
                    if self.forward(&down, &from_pbx[..n], mode).await.is_err() {
                        break;
                    }
                    tracker.feed(&from_pbx[..n], &self.ledger);
                }
                r = read_down(&down, &mut from_logger) => {
                    let n = match r { Ok(0) | Err(_) => break, Ok(n) => n };
                    if mode == Mode::BlackHole {
                        continue;
                    }
                    if up_w.write_all(&from_logger[..n]).await.is_err() {
                        break;
                    }
                }
                c = self.cut.changed() => {
                    if c.is_err() { break; }
                    let cut = *self.cut.borrow_and_update();
                    match cut {
                        Some((_, Cut::Reset)) => {
                            // Everything forwarded so far must have reached the logger's
                            // kernel (RST throws away unsent data), and had a moment to be read.
                            for _ in 0..200 {
                                if unacked(&down) == 0 { break; }
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            self.ledger.resets.fetch_add(1, Ordering::SeqCst);
                            let _ = socket2::SockRef::from(&down).set_linger(Some(Duration::ZERO));
                            return; // dropping `down` with linger 0 sends the RST
                        }
                        Some((_, Cut::Close)) => {
                            self.ledger.closes.fetch_add(1, Ordering::SeqCst);
                            let _ = shutdown_down(&down).await;
                            return;
                        }
                        Some((_, Cut::Drop)) => {
                            // Handled on the next chunk from the PBX; if none comes soon,
                            // drop now (nothing is in flight).
                            let next = tokio::time::timeout(
                                Duration::from_millis(300),
                                up_r.read(&mut from_pbx),
                            ).await;
                            if let Ok(Ok(n)) = next {
                                let keep = self.rng.usize(0..=n);
                                if write_down(&down, &from_pbx[..keep]).await.is_ok() {
                                    tracker.feed(&from_pbx[..keep], &self.ledger);
                                }
                            }
                            self.ledger.drops.fetch_add(1, Ordering::SeqCst);
                            let _ = shutdown_down(&down).await;
                            return;
                        }
                        None => {}
                    }
                }
                _ = self.stop.changed() => break,
            }
        }
        let _ = shutdown_down(&down).await;
    }

    async fn forward(&mut self, down: &TcpStream, bytes: &[u8], mode: Mode) -> std::io::Result<()> {
        match mode {
            Mode::Delay => {
                tokio::time::sleep(Duration::from_millis(self.rng.u64(0..150))).await;
                write_down(down, bytes).await
            }
            Mode::Fragment => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    let k = self.rng.usize(1..8).min(rest.len());
                    write_down(down, &rest[..k]).await?;
                    rest = &rest[k..];
                    if self.rng.u8(..) < 16 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                Ok(())
            }
            _ => write_down(down, bytes).await,
        }
        .inspect(|_| {
            self.ledger
                .bytes_to_logger
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        })
    }
}

async fn write_down(s: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        s.writable().await?;
        match s.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn read_down(s: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        s.readable().await?;
        match s.try_read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

async fn shutdown_down(s: &TcpStream) -> std::io::Result<()> {
    let sock = socket2::SockRef::from(s);
    sock.shutdown(std::net::Shutdown::Write)
}
