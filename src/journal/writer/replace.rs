//! A damaged database set aside while recording goes on: found by the background quick_check
//! or by a commit that fails with SQLITE_CORRUPT/NOTADB.
//!
//! The ring thread keeps writing throughout: nothing here touches it. The commit thread closes
//! its connection, moves the file (and `-wal`/`-shm`) to `<db>.damaged-<time>`, opens a fresh
//! database with the same seq counter and consumer marks, and refills it from the ring: every
//! valid entry already committed into the old file (records committed since start are all still
//! there, kept by the hold; older ones as far as the ring reaches). Records still pending are
//! committed into the fresh file as usual. Connections still open on the old file (web readers)
//! keep reading it harmlessly: every journal connection keeps its WAL on close, so none of them
//! can delete the fresh file's `-wal`/`-shm`, which now carry those names. What the ring no
//! longer holds stays in the set-aside file; the DB REPLACED alarm says so.

use std::sync::atomic::Ordering;

use rusqlite::{Connection, TransactionBehavior};

use super::super::{payload, ring, store, Integrity};
use super::open::read_db_state;
use super::Writer;

/// Records per refill transaction.
const REFILL_CHUNK: usize = 1000;

impl Writer {
    /// Sets the damaged file aside, starts a fresh one and refills it from the ring. At most
    /// once per run: damage again means the device itself is failing, which the alarm says.
    pub(super) fn replace_damaged(&mut self, problems: String) {
        if self.replaced {
            tracing::error!(target: "journal", %problems,
                "the fresh journal is damaged too; not replacing it again (check the device)");
            return;
        }
        self.replaced = true;
        let db = self.shared.paths.db.clone();
        tracing::error!(target: "journal", path = %db.display(), %problems,
            "the journal database is damaged; setting it aside while recording goes on");
        let now_utc = self.clock.unix();
        // The watermark as stored (a `cdrbox usb-export` may have moved it), if the damage
        // lets it be read.
        if let Ok(Some(w)) = store::meta_get(&self.conn, store::META_USB_COPIED_ID) {
            self.marks.usb_copied_id = self.marks.usb_copied_id.max(w);
        }
        // Close the connection first: no writer may still use the file once it has moved.
        match Connection::open_in_memory() {
            Ok(placeholder) => drop(std::mem::replace(&mut self.conn, placeholder)),
            Err(e) => {
                tracing::error!(target: "journal", error = %e, "cannot close the damaged journal");
                return;
            }
        }
        let aside = match store::set_aside(&db, now_utc) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(target: "journal", error = %e, "cannot set the damaged journal aside");
                self.reopen_after_failure();
                return;
            }
        };
        let opened = match store::open_writer(&db, now_utc, &read_db_state) {
            Ok((o, _)) => o,
            Err(e) => {
                tracing::error!(target: "journal", error = %e, "cannot start a fresh journal");
                self.shared.problems().damaged = Some(aside.clone());
                return;
            }
        };
        self.conn = opened.conn;
        let committed = self.shared.state().committed();
        let refilled = match self.refill(committed, now_utc) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(target: "journal", error = %e, "refilling the fresh journal failed");
                0
            }
        };
        tracing::info!(target: "journal", refilled, aside = %aside.display(),
            "fresh journal started and refilled from the ring");
        self.shared.committed_rows.store(refilled, Ordering::SeqCst);
        self.shared.gaps.store(0, Ordering::SeqCst);
        self.gaps.forget_stored(self.clock.now());
        if let Err(e) = store::create_background_indexes(&self.conn) {
            tracing::warn!(target: "journal", error = %e, "index build in the fresh journal failed");
        }
        self.next_index_build = None;
        // The fresh file's summary starts empty: build it again.
        self.next_summary = self.clock.now();
        // The refill took over what the hold protected.
        self.shared.state().end_hold();
        self.shared.problems().damaged = Some(aside.clone());
        *self.shared.integrity() = Integrity::Replaced {
            path: aside,
            problems,
        };
    }

    /// The file could not be moved: go on with it (commits will show the errors).
    fn reopen_after_failure(&mut self) {
        let db = self.shared.paths.db.clone();
        if let Ok((o, _)) = store::open_writer(&db, self.clock.unix(), &|_| Ok(())) {
            self.conn = o.conn;
        }
    }

    /// Inserts every valid ring entry with seq ≤ `committed` (what the old file held) and
    /// stores the seq counter and the marks, so seqs, ids and the USB watermark never go back.
    /// A refilled row gets its seq as id, as it had in the old file (`store::next_id`): what
    /// was above the watermark there is above it here; a row stored before ids followed seqs
    /// may land above it and reach the next stick a second time, never not at all.
    /// Returns rows inserted.
    fn refill(&mut self, committed: u64, now_utc: i64) -> rusqlite::Result<u64> {
        let mut inserted = 0u64;
        let entries = match &self.ring {
            Some(f) => ring::scan(f).map(|s| s.entries).unwrap_or_default(),
            None => Vec::new(),
        };
        let wanted: Vec<_> = entries.into_iter().filter(|e| e.seq <= committed).collect();
        for chunk in wanted.chunks(REFILL_CHUNK) {
            let tx =
                rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
            for e in chunk {
                // An entry being overwritten right now (released long ago) fails its check:
                // it is simply not refilled.
                let Some(ring) = &self.ring else { break };
                let Ok(bytes) = ring::read_payload(ring, e) else {
                    continue;
                };
                let Ok(record) = payload::decode(&bytes) else {
                    continue;
                };
                let id = store::next_id(e.seq, 0);
                if store::insert_record(&tx, id, e.seq, &record)? {
                    inserted += 1;
                    self.marks.id_high = self.marks.id_high.max(id);
                }
            }
            tx.commit()?;
        }
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        store::meta_set(&tx, store::META_COMMITTED_SEQ, committed as i64)?;
        store::meta_set(&tx, store::META_ROWS, inserted as i64)?;
        store::meta_set(&tx, store::META_LAST_ALIVE, now_utc)?;
        store::meta_set(&tx, store::META_ID_HIGH, self.marks.id_high)?;
        store::advance_copy_watermark(&tx, self.marks.usb_copied_id)?;
        tx.commit()?;
        Ok(inserted)
    }
}
