//! The simulated PBX's sockets: the accept loop and one task per connection, carrying out what
//! the pure `protocol` session decides and writing the events the hub queues for it.
//!
//! Modelled on `main/manager.c`'s `session_do`: the banner at once, `authtimeout` for
//! unauthenticated sessions, and every write within `writetimeout` (100 ms) or the session is
//! dropped (`send_string`). While the PBX is down (a restart in progress) a connection is reset
//! right after it is accepted, which the client sees as a refused connect.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;

use super::hub::Outgoing;
use super::protocol::{Effect, ServerSession};
use super::{lock, Phase, Shared, BANNER};
use crate::ami::{Decoder, Frame, Limits};

pub(super) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut halt = shared.halt.subscribe();
    let mut sessions = JoinSet::new();
    loop {
        if *halt.borrow() {
            break;
        }
        tokio::select! {
            _ = halt.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    if *shared.phase.borrow() == Phase::Down {
                        // The PBX process is gone: the kernel would answer the SYN with RST.
                        // Closing the listener could lose its port to another socket, so
                        // reset each connection instead; the client cannot tell the difference.
                        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                        shared.refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    sessions.spawn(serve(shared.clone(), stream));
                }
                // EMFILE and friends: back off instead of spinning; the PBX stays up.
                Err(e) => {
                    tracing::warn!(target: "cdrbox::sim", error = %e, "accept failed");
                    shared.clock.sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    drop(listener);
    // Sessions keep running after a halt (they close on their own Close); wait for them so
    // `stop()` returns only when every socket is closed.
    while sessions.join_next().await.is_some() {}
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed, or the socket failed.
    PeerGone,
    /// Logoff, failed login, shutdown.
    Closed,
    /// Writes stalled past `write_timeout` or the queue overflowed.
    TooSlow,
    /// Unauthenticated past `auth_timeout`.
    AuthTimeout,
    /// [`super::SimHandle::stop`].
    Stopped,
}

/// One `send_string`: the whole message within `limit`, or the session is dropped. Also gives up
/// at once when the broadcaster dropped the session for a full queue while this write stalled.
async fn write_timed(
    wr: &mut OwnedWriteHalf,
    bytes: &[u8],
    limit: Duration,
    kill: &Notify,
) -> Result<(), End> {
    tokio::select! {
        written = tokio::time::timeout(limit, wr.write_all(bytes)) => match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::PeerGone),
            Err(_) => Err(End::TooSlow),
        },
        _ = kill.notified() => Err(End::TooSlow),
    }
}

async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    // Asterisk sets TCP_NODELAY on AMI sockets; failures only cost latency.
    let _ = stream.set_nodelay(true);
    if let Some(size) = shared.opts.send_buffer {
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(size);
    }
    let (tx, rx) = mpsc::channel(shared.opts.session_queue);
    let kill = Arc::new(Notify::new());
    let id = lock(&shared.hub).add(tx, kill.clone());
    let (mut rd, mut wr) = stream.into_split();
    let mut rx = rx;
    let end = match session(&shared, id, &mut rd, &mut wr, &mut rx, &kill).await {
        Ok(never) => match never {},
        Err(end) => end,
    };
    lock(&shared.hub).sessions.remove(&id);
    if end == End::TooSlow {
        shared.sessions_dropped.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "cdrbox::sim", session = id, "dropped slow session");
    }
    if end != End::PeerGone && end != End::TooSlow {
        let _ = tokio::time::timeout(shared.opts.write_timeout, wr.shutdown()).await;
    }
}

/// The session loop; every way out is an `Err(End)` so `?` works on writes.
async fn session(
    shared: &Shared,
    id: u64,
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    rx: &mut mpsc::Receiver<Outgoing>,
    kill: &Notify,
) -> Result<std::convert::Infallible, End> {
    let limit = shared.opts.write_timeout;
    let clock = &shared.clock;
    let mut stop = shared.stop.subscribe();
    if *stop.borrow() {
        return Err(End::Stopped);
    }
    write_timed(wr, BANNER, limit, kill).await?;
    let challenge = lock(&shared.challenge_rng).u32(0..i32::MAX as u32);
    let mut proto = ServerSession::new(shared.account.clone(), challenge);
    // Asterisk reads at most 1024 bytes per line and 128 lines per action.
    let mut decoder = Decoder::new(Limits {
        max_line: 1026,
        max_message: 128 * 1026,
    });
    let mut buf = BytesMut::with_capacity(4096);
    let auth_deadline = clock.now() + shared.opts.auth_timeout;
    loop {
        tokio::select! {
            _ = kill.notified() => {
                return Err(End::TooSlow);
            }
            _ = stop.changed() => return Err(End::Stopped),
            _ = clock.sleep_until(auth_deadline), if !proto.authenticated() => {
                return Err(End::AuthTimeout);
            }
            out = rx.recv() => match out {
                Some(Outgoing::Event { bytes, cdr }) => {
                    write_timed(wr, &bytes, limit, kill).await?;
                    if cdr {
                        shared.cdrs_sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Outgoing::Close { linger }) => {
                    clock.sleep(linger).await;
                    return Err(End::Closed);
                }
                None => return Err(End::Closed),
            },
            read = rd.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => return Err(End::PeerGone),
                Ok(_) => {
                    while let Some(frame) = decoder.decode(&mut buf) {
                        match frame {
                            Frame::Message(msg) => {
                                let now = shared.pbx_time();
                                for effect in proto.handle(&msg, &now) {
                                    match effect {
                                        Effect::Send(bytes) => write_timed(wr, &bytes, limit, kill).await?,
                                        Effect::LoggedIn { mask } | Effect::SetMask(mask) => {
                                            if let Some(slot) = lock(&shared.hub).sessions.get_mut(&id) {
                                                slot.logged_in = true;
                                                slot.mask = mask;
                                            }
                                        }
                                        Effect::AuthFailureDelay => {
                                            tokio::select! {
                                                _ = clock.sleep(shared.opts.auth_fail_delay) => {}
                                                _ = stop.changed() => return Err(End::Stopped),
                                            }
                                        }
                                        Effect::Close => return Err(End::Closed),
                                    }
                                }
                            }
                            Frame::Discarded { .. } => {
                                write_timed(
                                    wr,
                                    b"Response: Error\r\nMessage: Failed to parse message: line too long\r\n\r\n",
                                    limit,
                                    kill,
                                )
                                .await?;
                            }
                            // A first line without a colon: Asterisk would ignore it too.
                            Frame::Banner(_) => {}
                        }
                    }
                }
            },
        }
    }
}
