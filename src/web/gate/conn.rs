//! How many connections are open, in total and per client address, and the places for the
//! one large upload and the live feeds — with the eviction of the slowest head when all are
//! taken. Each place is a guard released on drop, so a connection thread that ends for any
//! reason gives its place back.

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
// Instant, not the box Clock: when a connection's head started is compared with socket
// time-outs, which the kernel and the peer measure in real time.
use std::time::{Duration, Instant};

use super::Limits;

/// Counts open connections, in total and per address (IPv6 grouped by /64, since one LAN host
/// may hold a whole /64), and remembers which are still sending their head.
///
/// When every place is taken, a new connection evicts the one that has been sending its head
/// the longest (a slow-loris client; a real browser sends its head at once), so clients spread
/// over many addresses still cannot fill the server with connections that never finish a
/// request. The per-address cap never evicts: that address gets 503.
#[derive(Debug, Default)]
pub struct ConnCount {
    total: AtomicUsize,
    by_addr: Mutex<HashMap<IpAddr, usize>>,
    heads: Mutex<Vec<(u64, Instant, TcpStream)>>,
    next_id: std::sync::atomic::AtomicU64,
    events: AtomicUsize,
    /// A body larger than `max_body` is being read (one at a time).
    upload: AtomicBool,
}

/// A head must have been dawdling this long before its connection may be evicted.
const EVICT_AFTER: Duration = Duration::from_millis(500);

impl ConnCount {
    fn key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
                }
            },
            v4 => v4,
        }
    }

    /// Takes a place for `ip` (evicting the slowest head when all are taken), or says which
    /// limit is reached.
    pub(super) fn acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        limits: &Limits,
    ) -> Result<Slot, &'static str> {
        let key = Self::key(ip);
        let mut map = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&key).copied().unwrap_or(0) >= limits.max_per_address {
            return Err("too many connections from your address");
        }
        if self.total.load(Ordering::SeqCst) >= limits.max_connections && !self.evict_slowest() {
            return Err("too many connections");
        }
        *map.entry(key).or_insert(0) += 1;
        self.total.fetch_add(1, Ordering::SeqCst);
        Ok(Slot {
            count: self.clone(),
            key,
            id: self.next_id.fetch_add(1, Ordering::SeqCst),
        })
    }

    /// Closes the connection that has been sending its head the longest (its thread then
    /// ends and frees the place). False when none qualifies.
    fn evict_slowest(&self) -> bool {
        let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        let Some(i) = heads
            .iter()
            .enumerate()
            .filter(|(_, (_, t, _))| t.elapsed() >= EVICT_AFTER)
            .min_by_key(|(_, (_, t, _))| *t)
            .map(|(i, _)| i)
        else {
            return false;
        };
        let (_, _, sock) = heads.swap_remove(i);
        let _ = sock.shutdown(Shutdown::Both);
        tracing::debug!(target: "cdrbox::web", "all connections taken: evicted the slowest head");
        true
    }

    pub(super) fn head_started(&self, slot: &Slot, sock: &TcpStream) {
        if let Ok(clone) = sock.try_clone() {
            let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
            heads.push((slot.id, Instant::now(), clone));
        }
    }

    pub(super) fn head_done(&self, slot: &Slot) {
        let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
        heads.retain(|(id, _, _)| *id != slot.id);
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Takes the place for a large body, if free.
    pub(super) fn reserve_upload(&self) -> Option<UploadPlace<'_>> {
        self.upload
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| UploadPlace(self))
    }

    /// Takes a live-feed place (exactly `max` exist), released when the guard drops.
    pub(super) fn reserve_event(&self, max: usize) -> Option<EventPlace<'_>> {
        self.events
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| EventPlace(self))
    }
}

/// The one place for a large body; released on drop.
pub(super) struct UploadPlace<'a>(&'a ConnCount);

impl Drop for UploadPlace<'_> {
    fn drop(&mut self) {
        self.0.upload.store(false, Ordering::SeqCst);
    }
}

/// A live-feed place; released on drop.
pub(super) struct EventPlace<'a>(&'a ConnCount);

impl Drop for EventPlace<'_> {
    fn drop(&mut self) {
        self.0.events.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One open connection; released on drop.
pub(super) struct Slot {
    pub(super) count: Arc<ConnCount>,
    key: IpAddr,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.count.head_done(self);
        let mut map = self.count.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
        self.count.total.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::super::head::tests::limits;
    use super::*;

    #[test]
    fn per_address_and_total_limits() {
        let l = limits();
        let c = Arc::new(ConnCount::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2::5".parse().unwrap();
        let b2: IpAddr = "2001:db8:1:2::6".parse().unwrap();
        let s1 = c.acquire(a, &l).unwrap();
        let _s2 = c.acquire(a, &l).unwrap();
        assert!(c.acquire(a, &l).is_err(), "third from one address");
        let _s3 = c.acquire(b, &l).unwrap();
        let _s4 = c.acquire(b2, &l).unwrap();
        assert_eq!(
            c.acquire("10.0.0.7".parse().unwrap(), &l).err(),
            Some("too many connections"),
            "total cap, and no slow head to evict"
        );
        drop(s1);
        let _s5 = c.acquire("10.0.0.2".parse().unwrap(), &l).unwrap();
        assert_eq!(c.open(), 4);
    }
}
