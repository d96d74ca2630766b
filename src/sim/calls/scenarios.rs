//! One function per call [`Scenario`](super::Scenario): which CDRs Asterisk writes for that kind
//! of call, in dispatch order, each modelled on a capture in `tests/fixtures/ami/` (see the
//! module docs of `calls`). Pure and seeded.

use super::parts::{
    Party, ACCOUNT_CODES, CAMPAIGNS, DIALLED_OUT, DIDS, EXTERNAL, PHONES, QUEUES, TRUNK,
    UNICODE_CALLERS,
};
use super::{CallGenerator, CdrData};

impl CallGenerator {
    pub(super) fn answered(&mut self, now: i64) -> Vec<CdrData> {
        let (a, b) = self.phone_pair();
        let caller = self.internal_caller(a, now);
        vec![self.answered_call(caller, b.0, "internal", now)]
    }

    /// Dial ends without answer (`NO ANSWER`, `BUSY`, `CONGESTION`), then the dialplan goes on
    /// to `Hangup`, which `unanswered=yes` logs as a 0 s `NO ANSWER` leftover.
    pub(super) fn unanswered(&mut self, now: i64, disposition: &'static str) -> Vec<CdrData> {
        let (a, b) = self.phone_pair();
        let (ring, timeout) = match disposition {
            "NO ANSWER" => {
                let t = *self.pick(&[15i64, 20, 30]);
                (t, t)
            }
            _ => (self.secs(0, 1), 30),
        };
        let start = now - ring;
        let caller = self.internal_caller(a, start);
        let dest = self.pjsip(b.0, start);
        let dial = self.cdr(
            &caller,
            b.0,
            "internal",
            &dest.name,
            "Dial",
            &format!("PJSIP/{},{timeout},tT", b.0),
            (start, None, now),
            disposition,
        );
        let leftover = self.cdr(
            &caller,
            b.0,
            "internal",
            "",
            "Hangup",
            "",
            (now, None, now),
            "NO ANSWER",
        );
        vec![dial, leftover]
    }

    pub(super) fn failed(&mut self, now: i64) -> Vec<CdrData> {
        let phone = *self.pick(PHONES);
        let caller = self.internal_caller(phone, now);
        let dialled = *self.pick(&["2005", "6000"]);
        let target = *self.pick(&["9999", "9998"]);
        // The caller's CDR is created first (lower sequence) but dispatched after the stub's.
        let mut caller_cdr = self.cdr(
            &caller,
            dialled,
            "internal",
            "",
            "Dial",
            &format!("Local/{target}@no-such-context,20"),
            (now, None, now),
            "NO ANSWER",
        );
        let (_one, two) = self.local_pair(target, "no-such-context", now);
        let stub_party = Party {
            number: caller.number.clone(),
            caller_id: caller.caller_id.clone(),
            chan: two,
        };
        let mut stub = self.cdr(
            &stub_party,
            target,
            "no-such-context",
            "",
            "",
            "",
            (now, None, now),
            "FAILED",
        );
        stub.linked_id = caller.chan.unique_id.clone();
        caller_cdr.linked_id = caller.chan.unique_id.clone();
        vec![stub, caller_cdr]
    }

    pub(super) fn failed_hangup(&mut self, now: i64) -> Vec<CdrData> {
        let phone = *self.pick(PHONES);
        let caller = self.internal_caller(phone, now);
        let dialled = *self.pick(&["2015", "0000", "5555"]);
        vec![self.cdr(
            &caller,
            dialled,
            "internal",
            "",
            "Hangup",
            "3",
            (now, None, now),
            "FAILED",
        )]
    }

    pub(super) fn queue(&mut self, now: i64) -> Vec<CdrData> {
        let (number, name) = *self.pick(EXTERNAL);
        let did = *self.pick(DIDS);
        let (queue, department) = *self.pick(QUEUES);
        let ring = self.secs(2, 20);
        let talk = self.talk();
        let start = now - ring - talk;
        let caller = self.external_caller(number, name, start);
        // ringall: both members are called at once; the first answers.
        let (m1, _) = self.local_pair("201", "agents", start);
        let (m2, _) = self.local_pair("202", "agents", start);
        let data = format!("{queue},rt,,,30");
        let mut answered = self.cdr(
            &caller,
            did,
            "from-trunk",
            &m1.name,
            "Queue",
            &data,
            (start, Some(start + ring), now),
            "ANSWERED",
        );
        let mut missed = self.cdr(
            &caller,
            did,
            "from-trunk",
            &m2.name,
            "Queue",
            &data,
            (start, None, start + ring),
            "NO ANSWER",
        );
        for c in [&mut answered, &mut missed] {
            c.department = department.to_string();
        }
        // Dispatched answered first, although the missed leg ended earlier (cdr_queue.bin).
        vec![answered, missed]
    }

    pub(super) fn blind_transfer(&mut self, now: i64) -> Vec<CdrData> {
        let (a, b) = self.phone_pair();
        let c = loop {
            let p = *self.pick(PHONES);
            if p.0 != a.0 && p.0 != b.0 {
                break p;
            }
        };
        let ring = self.secs(1, 10);
        let talk1 = self.secs(3, 60);
        let talk2 = self.talk();
        let start = now - ring - talk1 - talk2;
        let transfer_at = start + ring + talk1;
        let external = self.rng.bool();
        let caller = if external {
            let (number, name) = *self.pick(EXTERNAL);
            self.external_caller(number, name, start)
        } else {
            self.internal_caller(a, start)
        };
        let context = if external { "from-trunk" } else { "internal" };
        // One CDR per leg, b's then c's; both carry the transfer target as Destination
        // (cdr_transfer.bin).
        let legs = [
            (b.0, (start, Some(start + ring), transfer_at)),
            (c.0, (transfer_at, Some(transfer_at), now)),
        ];
        legs.into_iter()
            .map(|(taker, times)| {
                let dest = self.pjsip(taker, times.0);
                let data = format!("PJSIP/{taker},30,tT");
                self.cdr(
                    &caller, c.0, context, &dest.name, "Dial", &data, times, "ANSWERED",
                )
            })
            .collect()
    }

    pub(super) fn custom_fields(&mut self, now: i64) -> Vec<CdrData> {
        let (a, b) = self.phone_pair();
        let caller = self.internal_caller(a, now);
        let mut cdr = self.answered_call(caller, b.0, "internal", now);
        cdr.account_code = self.pick(ACCOUNT_CODES).to_string();
        cdr.ama_flags = "BILLING";
        let ticket = self.rng.u32(1..10_000);
        cdr.user_field = format!("ticket={ticket}; note: перезвонить");
        cdr.department = "Sales".to_string();
        cdr.campaign = self.pick(CAMPAIGNS).to_string();
        vec![cdr]
    }

    pub(super) fn unicode(&mut self, now: i64) -> Vec<CdrData> {
        let (number, name, external) = *self.pick(UNICODE_CALLERS);
        let callee = *self.pick(PHONES);
        let (caller, context) = if external {
            (self.external_caller(number, name, now), "from-trunk")
        } else {
            (self.internal_caller((number, name), now), "internal")
        };
        let dest = if external {
            callee.0
        } else if callee.0 == number {
            "1001"
        } else {
            callee.0
        };
        vec![self.answered_call(caller, dest, context, now)]
    }

    pub(super) fn anonymous(&mut self, now: i64) -> Vec<CdrData> {
        let name = if self.rng.u8(0..5) == 0 {
            ""
        } else {
            "Anonymous"
        };
        let callee = *self.pick(PHONES);
        let caller = self.external_caller("", name, now);
        vec![self.answered_call(caller, callee.0, "from-trunk", now)]
    }

    pub(super) fn inbound(&mut self, now: i64) -> Vec<CdrData> {
        let (number, name) = *self.pick(EXTERNAL);
        let callee = *self.pick(PHONES);
        let caller = self.external_caller(number, name, now);
        vec![self.answered_call(caller, callee.0, "from-trunk", now)]
    }

    pub(super) fn outbound(&mut self, now: i64) -> Vec<CdrData> {
        let phone = *self.pick(PHONES);
        let dialled = *self.pick(DIALLED_OUT);
        let ring = self.secs(3, 25);
        let talk = self.talk();
        let start = now - ring - talk;
        let caller = self.internal_caller(phone, start);
        let dest = self.pjsip(TRUNK, start);
        vec![self.cdr(
            &caller,
            dialled,
            "internal",
            &dest.name,
            "Dial",
            &format!("PJSIP/{dialled}@{TRUNK},60,T"),
            (start, Some(start + ring), now),
            "ANSWERED",
        )]
    }
}
