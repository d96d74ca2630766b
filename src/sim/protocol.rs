//! Pure server side of one simulated AMI session: actions in, responses and effects out.
//!
//! Mirrors Asterisk 22 `main/manager.c` (`process_message`, `action_login`, `authenticate`,
//! `action_challenge`, `action_ping`, `action_events`, `action_logoff`, `strings_to_mask`)
//! as seen in `tests/fixtures/ami/` (`banner_and_login_ok`, `login_bad_secret`,
//! `login_md5_challenge`, `action_before_login`, `ping`, `logoff`, `errors_and_misc_actions`).
//! No socket and no clock: the adapter in `sim/serve.rs` passes [`PbxTime`] and carries out the
//! returned [`Effect`]s (including the 1 s sleep before `Authentication failed`).

use md5::{Digest, Md5};

use crate::ami::AmiMessage;

/// Event classes (`EVENT_FLAG_*` in `include/asterisk/manager.h`), as bits.
pub mod class {
    pub const SYSTEM: u32 = 1 << 0;
    pub const CALL: u32 = 1 << 1;
    pub const LOG: u32 = 1 << 2;
    pub const VERBOSE: u32 = 1 << 3;
    pub const COMMAND: u32 = 1 << 4;
    pub const AGENT: u32 = 1 << 5;
    pub const USER: u32 = 1 << 6;
    pub const CONFIG: u32 = 1 << 7;
    pub const DTMF: u32 = 1 << 8;
    pub const REPORTING: u32 = 1 << 9;
    pub const CDR: u32 = 1 << 10;
    pub const DIALPLAN: u32 = 1 << 11;
    pub const ORIGINATE: u32 = 1 << 12;
    pub const AGI: u32 = 1 << 13;
    pub const CC: u32 = 1 << 15;
    pub const AOC: u32 = 1 << 16;
    pub const TEST: u32 = 1 << 17;
    pub const SECURITY: u32 = 1 << 18;
    pub const MESSAGE: u32 = 1 << 28;
    /// `all` (`INT_MAX`).
    pub const ALL: u32 = i32::MAX as u32;

    /// `(label, bit)` as in manager.c's `perms[]`.
    pub const LABELS: &[(&str, u32)] = &[
        ("system", SYSTEM),
        ("call", CALL),
        ("log", LOG),
        ("verbose", VERBOSE),
        ("command", COMMAND),
        ("agent", AGENT),
        ("user", USER),
        ("config", CONFIG),
        ("dtmf", DTMF),
        ("reporting", REPORTING),
        ("cdr", CDR),
        ("dialplan", DIALPLAN),
        ("originate", ORIGINATE),
        ("agi", AGI),
        ("cc", CC),
        ("aoc", AOC),
        ("test", TEST),
        ("security", SECURITY),
        ("message", MESSAGE),
        ("all", ALL),
    ];

    /// The capture user's `read = cdr,call,system,reporting`.
    pub const CAPTURE_USER_READ: u32 = CDR | CALL | SYSTEM | REPORTING;
    /// The capture user's `write = originate,system,call,reporting`.
    pub const CAPTURE_USER_WRITE: u32 = ORIGINATE | SYSTEM | CALL | REPORTING;
}

/// `strings_to_mask`: `None` for an empty string (Asterisk's -1: "leave the mask as it is").
pub fn strings_to_mask(s: &[u8]) -> Option<u32> {
    let s = String::from_utf8_lossy(s);
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        // atoi: overflow wraps in C; saturate instead.
        return Some(
            s.parse::<u64>()
                .map_or(u32::MAX, |v| v.min(u32::MAX as u64) as u32),
        );
    }
    let lower = s.to_ascii_lowercase();
    if ["no", "false", "n", "f", "0", "off"].contains(&lower.as_str()) {
        return Some(0);
    }
    if ["yes", "true", "y", "t", "1", "on"].contains(&lower.as_str()) {
        return Some(class::LABELS.iter().fold(0, |m, (_, b)| m | b));
    }
    // get_perm: every label that appears as a comma-separated item.
    Some(
        class::LABELS
            .iter()
            .filter(|(label, _)| lower.split(',').any(|item| item.trim() == *label))
            .fold(0, |m, (_, b)| m | b),
    )
}

/// The one AMI user the simulator knows (`manager.conf` section).
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    pub username: String,
    pub secret: String,
    /// `read=` classes.
    pub read: u32,
    /// `write=` classes.
    pub write: u32,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .field("read", &self.read)
            .field("write", &self.write)
            .finish()
    }
}

/// The PBX's time and boot state as the session needs them, injected by the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PbxTime {
    /// UTC epoch seconds and microseconds (`Ping` → `Timestamp:`).
    pub now_sec: i64,
    pub now_usec: u32,
    /// Seconds since the simulated PBX started (`FullyBooted` → `Uptime:`).
    pub uptime: u64,
    /// Seconds since the last reload (`LastReload:`).
    pub last_reload: u64,
    /// Booted completely. A login while the PBX is still loading modules gets no FullyBooted
    /// (`action_login` sends it only `if (ast_test_flag(&ast_options, AST_OPT_FLAG_FULLY_BOOTED))`);
    /// the broadcast one follows when boot completes.
    pub fully_booted: bool,
}

/// What the adapter must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Write these bytes.
    Send(Vec<u8>),
    /// The session just authenticated with this effective event mask: start delivering events
    /// (before the next `Send`, so nothing dispatched after the response is missed).
    LoggedIn { mask: u32 },
    /// The effective event mask changed (`Action: Events`).
    SetMask(u32),
    /// Sleep the configured authentication-failure delay (Asterisk's `sleep(1)`).
    AuthFailureDelay,
    /// Close the connection after what was sent.
    Close,
}

/// Actions Asterisk 22 has that need a `write=` class the capture user lacks; they answer
/// `Permission denied` (`errors_and_misc_actions.bin`, `Command`).
const NEEDS_COMMAND_OR_CONFIG: &[(&str, u32)] = &[
    ("Command", class::COMMAND),
    ("GetConfig", class::CONFIG),
    ("GetConfigJSON", class::CONFIG),
    ("UpdateConfig", class::CONFIG),
    ("CreateConfig", class::CONFIG),
    ("ListCategories", class::CONFIG),
];

/// State of one client connection.
#[derive(Debug, Clone)]
pub struct ServerSession {
    account: Account,
    /// Pre-drawn `ast_random()` value handed out by the first `Challenge`.
    challenge_value: u32,
    challenge: Option<String>,
    authenticated: bool,
    /// `send_events` as set by Login/Events (not yet ANDed with `read`).
    send_events: u32,
}

impl ServerSession {
    /// `challenge_value` is what `Action: Challenge` will answer (random in the adapter,
    /// fixed in tests).
    pub fn new(account: Account, challenge_value: u32) -> Self {
        ServerSession {
            account,
            challenge_value,
            challenge: None,
            authenticated: false,
            send_events: 0,
        }
    }

    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    /// The classes this session receives: its mask ANDed with the user's `read=`.
    pub fn event_mask(&self) -> u32 {
        if self.authenticated {
            self.send_events & self.account.read
        } else {
            0
        }
    }

    /// Handles one client message.
    pub fn handle(&mut self, msg: &AmiMessage, clock: &PbxTime) -> Vec<Effect> {
        let action = msg
            .get("Action")
            .map(|a| String::from_utf8_lossy(a).trim().to_string())
            .unwrap_or_default();
        if action.is_empty() {
            return vec![Effect::Send(error(msg, "Missing action in request"))];
        }
        let is = |name: &str| action.eq_ignore_ascii_case(name);
        if !self.authenticated && !is("Login") && !is("Logoff") && !is("Challenge") {
            return vec![Effect::Send(error(msg, "Permission denied"))];
        }
        if is("Login") {
            self.login(msg, clock)
        } else if is("Logoff") {
            vec![
                Effect::Send(response(
                    msg,
                    "Goodbye",
                    &[("Message", "Thanks for all the fish.")],
                )),
                Effect::Close,
            ]
        } else if is("Challenge") {
            self.challenge(msg)
        } else if is("Ping") {
            let ts = format!("{}.{:06}", clock.now_sec, clock.now_usec);
            vec![Effect::Send(response(
                msg,
                "Success",
                &[("Ping", "Pong"), ("Timestamp", &ts)],
            ))]
        } else if is("Events") {
            self.events(msg)
        } else if NEEDS_COMMAND_OR_CONFIG
            .iter()
            .any(|(name, needed)| is(name) && self.account.write & needed == 0)
        {
            vec![Effect::Send(error(msg, "Permission denied"))]
        } else {
            vec![Effect::Send(error(
                msg,
                &format!(
                    "Invalid/unknown command: {action}. Use Action: ListCommands to show available commands."
                ),
            ))]
        }
    }

    fn login(&mut self, msg: &AmiMessage, clock: &PbxTime) -> Vec<Effect> {
        if self.authenticated {
            return vec![Effect::Send(response(
                msg,
                "Success",
                &[("Message", "Already authenticated")],
            ))];
        }
        if !self.authenticate(msg) {
            return vec![
                Effect::AuthFailureDelay,
                Effect::Send(error(msg, "Authentication failed")),
                Effect::Close,
            ];
        }
        self.authenticated = true;
        // No (or an empty) Events header: the user's read permissions.
        self.send_events = msg
            .get("Events")
            .and_then(strings_to_mask)
            .unwrap_or(class::ALL);
        let mask = self.event_mask();
        let mut out = vec![
            Effect::LoggedIn { mask },
            Effect::Send(response(
                msg,
                "Success",
                &[("Message", "Authentication accepted")],
            )),
        ];
        if mask & class::SYSTEM != 0 && clock.fully_booted {
            // astman_append, not manager_event: no Timestamp/SystemName headers here.
            out.push(Effect::Send(
                format!(
                    "Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: {}\r\nLastReload: {}\r\nStatus: Fully Booted\r\n\r\n",
                    clock.uptime, clock.last_reload
                )
                .into_bytes(),
            ));
        }
        out
    }

    fn authenticate(&self, msg: &AmiMessage) -> bool {
        let Some(user) = msg.get("Username").filter(|u| !u.is_empty()) else {
            return false;
        };
        if !user.eq_ignore_ascii_case(self.account.username.as_bytes()) {
            return false;
        }
        let md5 = msg
            .get("AuthType")
            .is_some_and(|t| t.eq_ignore_ascii_case(b"MD5"));
        if md5 {
            match (msg.get("Key").filter(|k| !k.is_empty()), &self.challenge) {
                (Some(key), Some(challenge)) => {
                    md5_key(challenge, &self.account.secret).as_bytes() == key
                }
                _ => false,
            }
        } else {
            msg.get("Secret") == Some(self.account.secret.as_bytes())
        }
    }

    fn challenge(&mut self, msg: &AmiMessage) -> Vec<Effect> {
        let md5 = msg
            .get("AuthType")
            .is_some_and(|t| t.eq_ignore_ascii_case(b"MD5"));
        if !md5 {
            return vec![Effect::Send(error(msg, "Must specify AuthType"))];
        }
        let value = self.challenge_value;
        let challenge = self
            .challenge
            .get_or_insert_with(|| value.to_string())
            .clone();
        vec![Effect::Send(response(
            msg,
            "Success",
            &[("Challenge", &challenge)],
        ))]
    }

    fn events(&mut self, msg: &AmiMessage) -> Vec<Effect> {
        match msg.get("EventMask").and_then(strings_to_mask) {
            None => vec![Effect::Send(error(msg, "Invalid event mask"))],
            Some(mask) => {
                self.send_events = mask;
                let state = if mask > 0 { "On" } else { "Off" };
                vec![
                    Effect::SetMask(self.event_mask()),
                    Effect::Send(response(msg, "Success", &[("Events", state)])),
                ]
            }
        }
    }
}

/// Lowercase hex md5(challenge ‖ secret), as `authenticate` compares it.
pub fn md5_key(challenge: &str, secret: &str) -> String {
    let mut h = Md5::new();
    h.update(challenge.as_bytes());
    h.update(secret.as_bytes());
    crate::hex::encode(&h.finalize())
}

/// `Response: <kind>\r\n[ActionID: …\r\n]<fields>\r\n` (astman_send_response_full / start_ack).
fn response(msg: &AmiMessage, kind: &str, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b"Response: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(id) = msg.action_id().filter(|id| !id.is_empty()) {
        out.extend_from_slice(b"ActionID: ");
        out.extend_from_slice(id);
        out.extend_from_slice(b"\r\n");
    }
    for (k, v) in fields {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn error(msg: &AmiMessage, message: &str) -> Vec<u8> {
    response(msg, "Error", &[("Message", message)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            username: "logger".into(),
            secret: "s3cret".into(),
            read: class::CAPTURE_USER_READ,
            write: class::CAPTURE_USER_WRITE,
        }
    }

    const CLOCK: PbxTime = PbxTime {
        now_sec: 1_795_331_221,
        now_usec: 819_198,
        uptime: 5,
        last_reload: 5,
        fully_booted: true,
    };

    fn msg(text: &str) -> AmiMessage {
        AmiMessage::parse(text.replace('\n', "\r\n").as_bytes()).unwrap()
    }

    fn sent(effects: &[Effect]) -> Vec<u8> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send(b) => Some(b.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/ami/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn login_while_booting_gets_no_fully_booted() {
        let mut s = ServerSession::new(account(), 1);
        let booting = PbxTime {
            fully_booted: false,
            ..CLOCK
        };
        let out = s.handle(
            &msg("Action: Login\nActionID: b\nUsername: logger\nSecret: s3cret\n\n"),
            &booting,
        );
        let text = String::from_utf8(sent(&out)).unwrap();
        assert!(text.contains("Authentication accepted"), "{text}");
        assert!(!text.contains("FullyBooted"), "{text}");
        assert_eq!(
            out[0],
            Effect::LoggedIn {
                mask: class::CAPTURE_USER_READ
            }
        );
    }

    #[test]
    fn login_matches_banner_and_login_ok() {
        let mut s = ServerSession::new(account(), 1);
        let out = s.handle(
            &msg("Action: Login\nActionID: login-1\nUsername: logger\nSecret: s3cret\n\n"),
            &CLOCK,
        );
        assert_eq!(
            out[0],
            Effect::LoggedIn {
                mask: class::CAPTURE_USER_READ
            }
        );
        let mut expected = fixture("banner_and_login_ok.bin");
        expected.drain(..b"Asterisk Call Manager/11.0.0\r\n".len());
        assert_eq!(
            String::from_utf8(sent(&out)).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }

    #[test]
    fn md5_login_uses_challenge_and_secret() {
        assert_eq!(
            md5_key("213960544", "s3cret"),
            "1b98db6b14fd77743e8eddf68965cc29"
        );
        let mut s = ServerSession::new(account(), 213_960_544);
        let out = s.handle(
            &msg("Action: Challenge\nActionID: chal-1\nAuthType: md5\n\n"),
            &CLOCK,
        );
        assert_eq!(
            sent(&out),
            b"Response: Success\r\nActionID: chal-1\r\nChallenge: 213960544\r\n\r\n"
        );
        let out = s.handle(
            &msg("Action: Login\nAuthType: MD5\nUsername: LOGGER\nKey: 1b98db6b14fd77743e8eddf68965cc29\nEvents: cdr\n\n"),
            &CLOCK,
        );
        assert_eq!(out[0], Effect::LoggedIn { mask: class::CDR });
        assert!(s.authenticated());
    }

    #[test]
    fn md5_without_challenge_fails() {
        let mut s = ServerSession::new(account(), 7);
        let out = s.handle(
            &msg("Action: Login\nAuthType: MD5\nUsername: logger\nKey: 00\n\n"),
            &CLOCK,
        );
        assert_eq!(out[0], Effect::AuthFailureDelay);
        assert_eq!(out.last(), Some(&Effect::Close));
    }

    #[test]
    fn bad_secret_fails_after_delay_and_closes() {
        let mut s = ServerSession::new(account(), 1);
        let out = s.handle(
            &msg(
                "Action: Login\nActionID: login-bad-1\nUsername: logger\nSecret: wrong-secret\n\n",
            ),
            &CLOCK,
        );
        assert_eq!(
            out,
            vec![
                Effect::AuthFailureDelay,
                Effect::Send(fixture("login_bad_secret.bin")[30..].to_vec()),
                Effect::Close
            ]
        );
    }

    #[test]
    fn errors_and_misc_actions_match_capture() {
        let mut s = ServerSession::new(account(), 1);
        let mut all = Vec::new();
        for m in [
            "Action: Login\nActionID: login-x\nUsername: logger\nSecret: s3cret\nEvents: off\n\n",
            "Action: NoSuchAction\nActionID: bad-action-1\n\n",
            "Action: Command\nActionID: cmd-1\nCommand: core show version\n\n",
            "Action: Events\nActionID: ev-1\nEventMask: cdr\n\n",
            "Action: Logoff\n\n",
        ] {
            all.extend(sent(&s.handle(&msg(m), &CLOCK)));
        }
        assert_eq!(
            String::from_utf8(all).unwrap(),
            String::from_utf8(fixture("errors_and_misc_actions.bin")[30..].to_vec()).unwrap()
        );
        assert_eq!(s.event_mask(), class::CDR);
    }

    #[test]
    fn ping_and_pre_login_errors() {
        let mut s = ServerSession::new(account(), 1);
        let out = s.handle(
            &msg("Action: Ping\nActionID: ping-before-login\n\n"),
            &CLOCK,
        );
        assert_eq!(
            sent(&out),
            b"Response: Error\r\nActionID: ping-before-login\r\nMessage: Permission denied\r\n\r\n"
        );
        s.handle(
            &msg("Action: Login\nUsername: logger\nSecret: s3cret\nEvents: off\n\n"),
            &CLOCK,
        );
        assert_eq!(s.event_mask(), 0);
        let out = s.handle(&msg("Action: Ping\n\n"), &CLOCK);
        assert_eq!(
            sent(&out),
            b"Response: Success\r\nPing: Pong\r\nTimestamp: 1795331221.819198\r\n\r\n"
        );
        let out = s.handle(&msg("Action: Events\nEventMask: off\n\n"), &CLOCK);
        assert_eq!(sent(&out), b"Response: Success\r\nEvents: Off\r\n\r\n");
    }

    #[test]
    fn event_masks() {
        assert_eq!(strings_to_mask(b""), None);
        assert_eq!(strings_to_mask(b"off"), Some(0));
        assert_eq!(
            strings_to_mask(b"cdr,system"),
            Some(class::CDR | class::SYSTEM)
        );
        assert_eq!(strings_to_mask(b"1024"), Some(class::CDR));
        assert_eq!(
            strings_to_mask(b"On").map(|m| m & class::CDR),
            Some(class::CDR)
        );
        assert_eq!(strings_to_mask(b"bogus"), Some(0));
    }
}
