//! What a saved configuration changes in the running box beyond the links themselves: the
//! standing "logging is off" alarms for PBXs switched off or removed, and the log filter. Also
//! the [`Outcome`] of one run of the box (stopped, or restart from the saved file).
//!
//! Pure except [`set_log_level`], which swaps the global log filter.

use std::sync::OnceLock;

use crate::config::Config;
use crate::status::Alarm;

/// How one run of the box ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// SIGINT/SIGTERM or the scripted time limit: the process exits.
    Stopped,
    /// Restart requested from the settings page: start again from the saved file.
    Restart,
}

/// The OLED code of the alarm; the page shows the sentence.
pub(super) const PBX_OFF: &str = "PBX OFF";

/// PBXs that a change removed, remembered (case-insensitively by name) until the box restarts
/// or the PBX is added again. `previous` is the config before the change. A PBX that is still
/// there under a new name (same address) was renamed, not removed.
pub(super) fn removed_after(previous: &Config, new: &Config, removed: &mut Vec<String>) {
    let named = |c: &Config, n: &str| c.pbx.iter().any(|p| p.name.eq_ignore_ascii_case(n));
    for p in &previous.pbx {
        let renamed = new
            .pbx
            .iter()
            .any(|q| q.host.eq_ignore_ascii_case(&p.host) && q.port == p.port);
        if !named(new, &p.name)
            && !renamed
            && !removed.iter().any(|r| r.eq_ignore_ascii_case(&p.name))
        {
            removed.push(p.name.clone());
        }
    }
    removed.retain(|r| !named(new, r));
}

/// One standing alarm per PBX whose calls are not being recorded because of the settings
/// (issue 10 item 2: switching logging off is never silent).
pub(super) fn pbx_off_alarms(cfg: &Config, removed: &[String]) -> Vec<Alarm> {
    let off = cfg.pbx.iter().filter(|p| !p.enabled).map(|p| Alarm {
        code: PBX_OFF.into(),
        subject: Some(p.name.clone()),
        message: format!(
            "logging is off for PBX {}: it is switched off in Settings (tick \"Record calls from this PBX\" to record again)",
            p.name
        ),
    });
    let gone = removed.iter().map(|name| Alarm {
        code: PBX_OFF.into(),
        subject: Some(name.clone()),
        message: format!(
            "logging is off for PBX {name}: it was removed in Settings (this alarm clears when the box restarts)"
        ),
    });
    off.chain(gone).collect()
}

/// The handle that swaps the log filter of the subscriber [`super::init_logging`] installed.
pub(super) static LOG_FILTER: OnceLock<
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>,
> = OnceLock::new();

/// Applies `[log] level` live. `RUST_LOG`, when set, keeps winning (as at start).
pub(super) fn set_log_level(level: &str) {
    if std::env::var_os("RUST_LOG").is_some() {
        return;
    }
    let Some(handle) = LOG_FILTER.get() else {
        return;
    };
    match tracing_subscriber::EnvFilter::try_new(level) {
        Ok(f) => {
            if let Err(e) = handle.reload(f) {
                tracing::warn!(target: "cdrbox::run", error = %e, "log level not changed");
            }
        }
        Err(e) => tracing::warn!(target: "cdrbox::run", error = %e, level, "log level not changed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pbx: &[(&str, bool)]) -> Config {
        let mut text = String::new();
        for (name, enabled) in pbx {
            let host = name.to_lowercase();
            text.push_str(&format!(
                "[[pbx]]\nname = \"{name}\"\nhost = \"{host}\"\nusername = \"u\"\nenabled = {enabled}\n"
            ));
        }
        Config::parse(&text, "t").unwrap()
    }

    #[test]
    fn switched_off_and_removed_pbxs_raise_standing_alarms() {
        let before = cfg(&[("office", true), ("branch", true)]);
        let after = cfg(&[("office", false)]);
        let mut removed = Vec::new();
        removed_after(&before, &after, &mut removed);
        assert_eq!(removed, ["branch"]);
        let alarms = pbx_off_alarms(&after, &removed);
        assert_eq!(alarms.len(), 2);
        assert!(alarms.iter().all(|a| a.code == PBX_OFF));
        assert!(
            alarms[0]
                .message
                .starts_with("logging is off for PBX office:"),
            "{alarms:?}"
        );
        assert!(
            alarms[1]
                .message
                .starts_with("logging is off for PBX branch:"),
            "{alarms:?}"
        );
        // Added back (any case) and switched on again: no alarm left.
        let again = cfg(&[("office", true), ("Branch", true)]);
        removed_after(&after, &again, &mut removed);
        assert!(removed.is_empty());
        assert!(pbx_off_alarms(&again, &removed).is_empty());
        // A rename keeps the address: not a removal.
        let mut renamed = Config::parse("[[pbx]]\nname = \"hq\"\nhost = \"office\"\nusername = \"u\"\n[[pbx]]\nname = \"Branch\"\nhost = \"branch\"\nusername = \"u\"\n", "t").unwrap();
        removed_after(&again, &renamed, &mut removed);
        assert!(removed.is_empty(), "{removed:?}");
        renamed.pbx.truncate(1);
        removed_after(&again, &renamed, &mut removed);
        assert_eq!(removed, ["Branch"]);
    }
}
