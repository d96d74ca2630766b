//! Building blocks of generated calls: the PBX's phones, trunk callers and counters (channel
//! names, UniqueIDs, the CDR sequence) and a CDR skeleton for one party. Pure and seeded.

use super::{callerid_merge, CallGenerator, CdrData};

pub(super) const PHONES: &[(&str, &str)] = &[
    ("1001", "Alice Smith"),
    ("1002", "Bob Jones"),
    ("1003", "Иван Петров"),
    ("1004", "Carol White"),
    ("1005", "Dave Brown"),
    ("1006", "Eve Adams"),
    ("1007", "Мария Соколова"),
    ("1008", "Frank Miller"),
];

/// External callers: number and display name ("" = the trunk sent no name).
pub(super) const EXTERNAL: &[(&str, &str)] = &[
    ("+74957778899", "ООО Ромашка"),
    ("+79031112233", ""),
    ("+74991234567", "Sidorov A."),
    ("+79265550101", ""),
    ("+442071234567", "Acme Ltd"),
];

/// Names and numbers from `cdr_unicode_callerid.bin`; `true` = the caller is external.
pub(super) const UNICODE_CALLERS: &[(&str, &str, bool)] = &[
    ("+79161234567", "Петров, Иван \"Ваня\"", true),
    ("1003", "Иван Петров", false),
    ("1003", "Back\\slash, \"Q\" Ltd", false),
];

pub(super) const DIALLED_OUT: &[&str] =
    &["89161234567", "84959876543", "+74951230000", "88005553535"];
pub(super) const DIDS: &[&str] = &["74951234500", "74951234501"];
pub(super) const ACCOUNT_CODES: &[&str] = &["ACC-778", "ACC-101", "SALES-01"];
pub(super) const CAMPAIGNS: &[&str] = &["Spring-2025", "Autumn-2025", ""];
pub(super) const QUEUES: &[(&str, &str)] = &[("support", "Support"), ("sales", "Sales")];
pub(super) const TRUNK: &str = "trunk";

/// A channel as allocated by the PBX.
#[derive(Debug, Clone)]
pub(super) struct Chan {
    pub(super) name: String,
    pub(super) unique_id: String,
}

/// The calling party.
#[derive(Debug, Clone)]
pub(super) struct Party {
    pub(super) number: String,
    pub(super) caller_id: String,
    pub(super) chan: Chan,
}

impl CallGenerator {
    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.usize(0..items.len())]
    }

    pub(super) fn secs(&mut self, lo: i64, hi: i64) -> i64 {
        self.rng.i64(lo..=hi)
    }

    /// Talk time: mostly short, sometimes long, like office calls.
    pub(super) fn talk(&mut self) -> i64 {
        if self.rng.u8(0..10) == 0 {
            self.secs(300, 1800)
        } else {
            self.secs(5, 240)
        }
    }

    pub(super) fn unique_id(&mut self, epoch: i64) -> String {
        let n = self.uniqueint;
        self.uniqueint += 1;
        match &self.opts.system_name {
            Some(sys) => format!("{sys}-{epoch}.{n}"),
            None => format!("{epoch}.{n}"),
        }
    }

    pub(super) fn pjsip(&mut self, endpoint: &str, created: i64) -> Chan {
        let idx = self.pjsip_idx;
        self.pjsip_idx = self.pjsip_idx.wrapping_add(1);
        Chan {
            name: format!("PJSIP/{endpoint}-{idx:08x}"),
            unique_id: self.unique_id(created),
        }
    }

    /// A Local channel pair; returns the `;1` half (the one a Dial or Queue talks to) and the
    /// `;2` half. The pair takes two UniqueIDs, `;1` first.
    pub(super) fn local_pair(&mut self, exten: &str, context: &str, created: i64) -> (Chan, Chan) {
        let idx = self.local_idx;
        self.local_idx = self.local_idx.wrapping_add(1);
        let base = format!("Local/{exten}@{context}-{idx:08x}");
        let one = Chan {
            name: format!("{base};1"),
            unique_id: self.unique_id(created),
        };
        let two = Chan {
            name: format!("{base};2"),
            unique_id: self.unique_id(created),
        };
        (one, two)
    }

    pub(super) fn next_sequence(&mut self) -> u64 {
        let s = self.sequence;
        self.sequence += 1;
        s
    }

    pub(super) fn phone_pair(
        &mut self,
    ) -> ((&'static str, &'static str), (&'static str, &'static str)) {
        let a = self.rng.usize(0..PHONES.len());
        let mut b = self.rng.usize(0..PHONES.len() - 1);
        if b >= a {
            b += 1;
        }
        (PHONES[a], PHONES[b])
    }

    pub(super) fn internal_caller(&mut self, phone: (&str, &str), created: i64) -> Party {
        Party {
            number: phone.0.to_string(),
            caller_id: callerid_merge(Some(phone.1), Some(phone.0)),
            chan: self.pjsip(phone.0, created),
        }
    }

    pub(super) fn external_caller(&mut self, number: &str, name: &str, created: i64) -> Party {
        Party {
            number: number.to_string(),
            caller_id: callerid_merge(Some(name), Some(number)),
            chan: self.pjsip(TRUNK, created),
        }
    }

    /// A CDR skeleton for `party`'s channel; the caller fills in the rest.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn cdr(
        &mut self,
        party: &Party,
        destination: &str,
        context: &str,
        destination_channel: &str,
        app: &str,
        data: &str,
        times: (i64, Option<i64>, i64),
        disposition: &'static str,
    ) -> CdrData {
        CdrData {
            account_code: String::new(),
            source: party.number.clone(),
            destination: destination.to_string(),
            destination_context: context.to_string(),
            caller_id: party.caller_id.clone(),
            channel: party.chan.name.clone(),
            destination_channel: destination_channel.to_string(),
            last_application: app.to_string(),
            last_data: data.to_string(),
            start: times.0,
            answer: times.1,
            end: times.2,
            disposition,
            ama_flags: "DOCUMENTATION",
            unique_id: party.chan.unique_id.clone(),
            user_field: String::new(),
            linked_id: party.chan.unique_id.clone(),
            sequence: self.next_sequence(),
            department: String::new(),
            campaign: String::new(),
            dispatched: (times.2, 0),
        }
    }

    /// A caller dials `callee` and the callee answers after ringing; one `ANSWERED` CDR.
    pub(super) fn answered_call(
        &mut self,
        caller: Party,
        callee: &str,
        context: &str,
        now: i64,
    ) -> CdrData {
        let ring = self.secs(1, 15);
        let talk = self.talk();
        let start = now - ring - talk;
        let mut caller = caller;
        // The caller's channel was created at call start: re-stamp its UniqueID epoch.
        restamp(&mut caller.chan, start);
        let dest = self.pjsip(callee, start);
        self.cdr(
            &caller,
            callee,
            context,
            &dest.name,
            "Dial",
            &format!("PJSIP/{callee},30,tT"),
            (start, Some(start + ring), now),
            "ANSWERED",
        )
    }
}

/// Replaces the epoch part of a UniqueID (`[sys-]<epoch>.<n>`) keeping the counter.
pub(super) fn restamp(chan: &mut Chan, epoch: i64) {
    if let Some(dot) = chan.unique_id.rfind('.') {
        let head = &chan.unique_id[..dot];
        let prefix_end = head.rfind('-').map_or(0, |i| i + 1);
        let new = format!(
            "{}{}{}",
            &chan.unique_id[..prefix_end],
            epoch,
            &chan.unique_id[dot..]
        );
        chan.unique_id = new;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restamp_keeps_prefix_and_counter() {
        let mut c = Chan {
            name: String::new(),
            unique_id: "pbx-msk-01-100.7".into(),
        };
        restamp(&mut c, 42);
        assert_eq!(c.unique_id, "pbx-msk-01-42.7");
        let mut c = Chan {
            name: String::new(),
            unique_id: "100.7".into(),
        };
        restamp(&mut c, 42);
        assert_eq!(c.unique_id, "42.7");
    }
}
