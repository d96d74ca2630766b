//! Every open connection of the simulated PBX, for broadcasting events and closing sessions:
//! `manager_event()`'s fan-out. Never waits: a session that cannot take an event is dropped.
//!
//! Modelled on `main/manager.c` (`__manager_event_sessions_va`): an event goes only to sessions
//! that are logged in *now* and whose mask has its class, into each session's own bounded
//! queue; nothing is kept for sessions that come later (AMI never replays).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

use super::protocol::class;

/// What a session task receives from the rest of the simulator.
#[derive(Debug)]
pub(super) enum Outgoing {
    Event {
        bytes: Bytes,
        cdr: bool,
    },
    /// Close the connection after `linger` (Asterisk closes ~10 ms after `Event: Shutdown`).
    Close {
        linger: Duration,
    },
}

#[derive(Debug)]
pub(super) struct Slot {
    pub(super) logged_in: bool,
    pub(super) mask: u32,
    pub(super) tx: mpsc::Sender<Outgoing>,
    pub(super) kill: Arc<Notify>,
}

#[derive(Debug, Default)]
pub(super) struct Hub {
    next_id: u64,
    pub(super) sessions: HashMap<u64, Slot>,
}

impl Hub {
    /// Registers a new, not yet logged-in connection; returns its id.
    pub(super) fn add(&mut self, tx: mpsc::Sender<Outgoing>, kill: Arc<Notify>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.sessions.insert(
            id,
            Slot {
                logged_in: false,
                mask: 0,
                tx,
                kill,
            },
        );
        id
    }

    /// Sessions logged in right now.
    pub(super) fn logged_in(&self) -> usize {
        self.sessions.values().filter(|s| s.logged_in).count()
    }

    /// Queues `bytes` for every logged-in session that receives `category`; never waits.
    /// Returns how many sessions it was queued for (0: nobody heard it, it is gone).
    pub(super) fn broadcast(&mut self, category: u32, bytes: &Bytes) -> usize {
        let mut gone = Vec::new();
        let mut queued = 0;
        for (id, slot) in &self.sessions {
            if !slot.logged_in || slot.mask & category == 0 {
                continue;
            }
            let out = Outgoing::Event {
                bytes: bytes.clone(),
                cdr: category == class::CDR,
            };
            match slot.tx.try_send(out) {
                Ok(()) => queued += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // Cannot keep up: drop it like Asterisk drops a session it cannot write to
                    // (the session task counts the drop).
                    slot.kill.notify_one();
                    gone.push(*id);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push(*id),
            }
        }
        for id in gone {
            self.sessions.remove(&id);
        }
        queued
    }

    /// Asks every connection to close after what is already queued.
    pub(super) fn close_all(&mut self, linger: Duration) {
        for slot in self.sessions.values() {
            if slot.tx.try_send(Outgoing::Close { linger }).is_err() {
                slot.kill.notify_one();
            }
        }
        self.sessions.clear();
    }
}
