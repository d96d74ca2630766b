//! The setup-help page's content: the `manager.conf` / `cdr_manager.conf` / `cdr.conf` snippets
//! for this box's settings, and a check of what the box has actually seen from each PBX.
//! Pure code (config text, status and a sample of recent records in; text and checks out).
//! Never includes the AMI secret: the snippet says where to paste it.

use serde::Serialize;
use toml_edit::{DocumentMut, Item};

use crate::record::{CallRecord, Disposition};
use crate::status::{LinkState, StatusView};

/// The PBX settings the snippets need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PbxInfo {
    pub name: String,
    pub host: String,
    pub port: i64,
    pub username: String,
}

/// `[[pbx]]` entries of the config text (defaults as the config documents them).
pub fn pbx_list(config_text: &str) -> Vec<PbxInfo> {
    let Ok(doc) = config_text.parse::<DocumentMut>() else {
        return vec![];
    };
    let Some(Item::ArrayOfTables(arr)) = doc.get("pbx") else {
        return vec![];
    };
    arr.iter()
        .map(|t| {
            let s = |k: &str, d: &str| t.get(k).and_then(|v| v.as_str()).unwrap_or(d).to_string();
            PbxInfo {
                name: s("name", "pbx"),
                host: s("host", ""),
                port: t.get("port").and_then(|v| v.as_integer()).unwrap_or(5038),
                username: s("username", "cdrbox"),
            }
        })
        .collect()
}

/// The `manager.conf` user for the box: read-only events, an ACL for the box's address, and a
/// write timeout generous enough that a busy box is not dropped. README.md shows this same text
/// (for `EXAMPLE_PBX` and `EXAMPLE_BOX_IP`); `tests/readme_setup.rs` keeps the two equal.
///
/// `write = reporting` is the least that lets a client ask `CoreStatus`; the box itself sends
/// only Login/Challenge/Ping/Logoff, which need no write permission (Login and Challenge come
/// before authentication; Ping and Logoff have authority 0, which `process_message` in Asterisk's
/// `main/manager.c` lets any user run).
/// `writetimeout`: Asterisk drops a session whose write waits longer (100 ms by default),
/// losing the queued CDRs, so give a box on a busy LAN seconds, not milliseconds.
pub fn manager_conf(p: &PbxInfo, box_ip: Option<&str>) -> String {
    let permit = match box_ip {
        Some(ip) if !ip.is_empty() => format!("permit = {ip}/255.255.255.255"),
        _ => "permit = <this box's IP address>/255.255.255.255".to_string(),
    };
    format!(
        "; /etc/asterisk/manager.conf (FreePBX: manager_custom.conf) — then: asterisk -rx 'manager reload'\n\
         [general]\n\
         enabled = yes\n\
         port = {port}\n\
         bindaddr = 0.0.0.0\n\
         \n\
         [{user}]\n\
         secret = <the secret entered in cdrbox Settings for '{name}'>\n\
         deny = 0.0.0.0/0.0.0.0\n\
         {permit}\n\
         ; CDRs, plus FullyBooted/Shutdown so a PBX restart is told from a network fault:\n\
         read = cdr,system\n\
         ; the box sends only Login, Ping and Logoff, which need no write permission:\n\
         write = reporting\n\
         ; ms; with the default 100 Asterisk drops a box that reads slowly, and its CDRs with it:\n\
         writetimeout = 5000\n\
         ; cdrbox reconnects on its own; a ghost session must not lock it out:\n\
         allowmultiplelogin = yes\n",
        port = p.port,
        user = p.username,
        name = p.name,
    )
}

/// The PBX README.md's setup section uses for [`manager_conf`].
pub fn example_pbx() -> PbxInfo {
    PbxInfo {
        name: "office".into(),
        host: "192.168.1.10".into(),
        port: 5038,
        username: "cdrbox".into(),
    }
}

/// The box address README.md's setup section uses.
pub const EXAMPLE_BOX_IP: &str = "192.168.1.50";

/// `cdr_manager.conf`: on, with the mappings that make records unique and calls groupable.
pub fn cdr_manager_conf() -> String {
    "; /etc/asterisk/cdr_manager.conf — then: asterisk -rx 'module reload cdr_manager.so'\n\
     [general]\n\
     enabled = yes\n\
     \n\
     ; without these the box falls back to comparing whole records, and cannot group the\n\
     ; records of one call (transfers, queues) into one call:\n\
     [mappings]\n\
     linkedid => LinkedID\n\
     sequence => Sequence\n\
     peeraccount => PeerAccount\n"
        .to_string()
}

/// `cdr.conf`: records posted at once (no batching), unanswered calls logged.
pub fn cdr_conf() -> String {
    "; /etc/asterisk/cdr.conf — then: asterisk -rx 'cdr reload' (or restart)\n\
     [general]\n\
     enable = yes\n\
     ; batch mode holds CDRs in memory and loses them when the PBX crashes:\n\
     batch = no\n\
     ; missed calls are records too:\n\
     unanswered = yes\n\
     congestion = yes\n"
        .to_string()
}

/// `2026-11-22 10:07:37` in the PBX's offset.
fn local_time(utc: i64, offset: i32) -> String {
    jiff::Timestamp::from_second(utc + i64::from(offset))
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| format!("@{utc}"))
}

/// One line of the checklist. `ok: None` means "cannot tell yet".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub ok: Option<bool>,
    pub title: String,
    pub detail: String,
}

fn check(ok: Option<bool>, title: &str, detail: String) -> Check {
    Check {
        ok,
        title: title.to_string(),
        detail,
    }
}

/// What the box has seen, per PBX: link state, last record, mappings, unanswered calls.
/// `recent` is a sample of the newest records (any order).
pub fn checks(status: &StatusView, recent: &[CallRecord]) -> Vec<Check> {
    let mut out = Vec::new();
    if status.links.is_empty() {
        out.push(check(
            Some(false),
            "PBX configured",
            "No [[pbx]] is configured: add one in Settings.".into(),
        ));
    }
    for link in &status.links {
        let (ok, detail) = match &link.state {
            LinkState::Up => (
                Some(true),
                format!(
                    "Logged in to {} ({}).",
                    link.address,
                    link.banner.as_deref().unwrap_or("no banner")
                ),
            ),
            LinkState::AuthFailed => (
                Some(false),
                format!(
                    "{} rejected the username/secret: compare manager.conf with Settings.",
                    link.address
                ),
            ),
            LinkState::Down { reason } => (Some(false), format!("{}: {reason}", link.address)),
            LinkState::Connecting => (None, format!("Connecting to {}…", link.address)),
            LinkState::PbxShutdown => (
                Some(false),
                "The PBX is shutting down or restarting.".into(),
            ),
        };
        out.push(check(ok, &format!("{}: AMI login", link.pbx), detail));
        out.push(match link.last_record_utc {
            Some(t) => check(
                Some(true),
                &format!("{}: records arrive", link.pbx),
                format!(
                    "Last record received {} ({} since start).",
                    local_time(t, status.local_offset_seconds),
                    link.records
                ),
            ),
            None => check(
                None,
                &format!("{}: records arrive", link.pbx),
                "No record yet: make a test call. If none arrives, check cdr_manager.conf `enabled = yes` and `read = cdr` in manager.conf.".into(),
            ),
        });
        let mine: Vec<&CallRecord> = recent.iter().filter(|r| r.pbx == link.pbx).collect();
        if mine.is_empty() {
            continue;
        }
        let has = |name: &str| {
            mine.iter().any(|r| {
                r.custom_fields
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case(name))
            })
        };
        let linked = mine.iter().any(|r| r.linked_id.is_some()) || has("linkedid");
        let seq = mine.iter().any(|r| r.sequence.is_some()) || has("sequence");
        out.push(check(
            Some(linked && seq),
            &format!("{}: LinkedID and Sequence mappings", link.pbx),
            match (linked, seq) {
                (true, true) => "Both present: records are unique and calls are grouped exactly.".into(),
                _ => format!(
                    "Missing {}: add them to cdr_manager.conf [mappings] (below). Without them, several CDRs of one call cannot be told apart reliably.",
                    [(!linked).then_some("LinkedID"), (!seq).then_some("Sequence")]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            },
        ));
        let unanswered = mine.iter().any(|r| r.disposition != Disposition::Answered);
        out.push(check(
            if unanswered { Some(true) } else if mine.len() >= 20 { Some(false) } else { None },
            &format!("{}: unanswered calls logged", link.pbx),
            if unanswered {
                "Unanswered calls are arriving.".into()
            } else {
                format!(
                    "All {} recent records are ANSWERED: set `unanswered = yes` in cdr.conf, or missed calls are invisible.",
                    mine.len()
                )
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_use_the_settings_and_no_secret() {
        let pbx = pbx_list(
            "[[pbx]]\nname = \"main\"\nhost = \"10.0.0.2\"\nport = 5039\nusername = \"logger\"\nsecret = \"topsecret\"\n",
        );
        assert_eq!(pbx.len(), 1);
        let m = manager_conf(&pbx[0], Some("10.0.0.50"));
        assert!(m.contains("[logger]"));
        assert!(m.contains("port = 5039"));
        assert!(m.contains("permit = 10.0.0.50/255.255.255.255"));
        assert!(m.contains("read = cdr,system"));
        assert!(!m.contains("topsecret"));
        assert!(cdr_manager_conf().contains("linkedid => LinkedID"));
    }
}
