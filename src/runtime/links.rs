//! The running box's AMI links: one tokio task per enabled `[[pbx]]`, started, stopped and
//! restarted so they match the live configuration.
//!
//! A link whose settings change is replaced by a new one only after the old one has logged
//! off (`Action: Logoff`, `Goodbye` or its short deadline, socket closed): with
//! `allowmultiplelogin = no` Asterisk refuses a second session of the same user ("Login
//! Already In Use"), and two live sessions would each get every Cdr. A link task that ends
//! without being told to has panicked; that is reported at once (no polling), so the systemd
//! watchdog stops being fed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ami::client::{run_link, LinkConfig, ToRecord};
use crate::clock::Clock;
use crate::config::{Config, PbxConfig};
use crate::record::{CallRecord, ContextError, PbxContext};
use crate::sink::RecordSink;

/// The record context for one `[[pbx]]` table. Built here, not in `record` (the innermost
/// module, which knows no config) nor in `config` (which validates the same names).
pub fn context_of(pbx: &PbxConfig) -> Result<PbxContext, ContextError> {
    PbxContext::new(&pbx.name, &pbx.timezone, &pbx.charset, &pbx.trunk_patterns)
}

/// How long a replacement link waits for its predecessor's logoff at most: the logoff deadline
/// (1 s) plus a write that may take its own time-out on a dying connection.
const HANDOVER_LIMIT: Duration = Duration::from_secs(3);

/// One running AMI link and the settings it was started with.
struct Link {
    pbx: PbxConfig,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The link tasks, and what each new one is given.
pub(super) struct Links {
    running: Vec<Link>,
    sink: Arc<dyn RecordSink>,
    clock: Clock,
    /// Counts link tasks that ended without being told to (a panic).
    died: watch::Sender<u64>,
}

/// Bumps the "died" count when a link task ends (returns or unwinds) although its stop was
/// never requested.
struct EndGuard {
    stop: watch::Receiver<bool>,
    died: watch::Sender<u64>,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if !*self.stop.borrow() {
            self.died.send_modify(|n| *n += 1);
        }
    }
}

/// Both ends reach the same PBX account: the new link must not log in before the old one left.
fn same_account(a: &PbxConfig, b: &PbxConfig) -> bool {
    a.name == b.name || (a.host == b.host && a.port == b.port && a.username == b.username)
}

impl Links {
    pub(super) fn new(sink: Arc<dyn RecordSink>, clock: Clock) -> Links {
        Links {
            running: Vec::new(),
            sink,
            clock,
            died: watch::channel(0).0,
        }
    }

    /// Starts, stops and restarts links so they match `cfg` (a changed address, user, secret or
    /// zone reconnects that link alone, after the old session logged off; the others keep
    /// their sessions).
    pub(super) fn reconcile(&mut self, cfg: &Config) {
        let wanted: Vec<&PbxConfig> = cfg.pbx.iter().filter(|p| p.enabled).collect();
        let (keep, gone): (Vec<Link>, Vec<Link>) = self
            .running
            .drain(..)
            .partition(|l| wanted.iter().any(|p| **p == l.pbx));
        self.running = keep;
        let mut leaving: Vec<(PbxConfig, Option<JoinHandle<()>>)> = gone
            .into_iter()
            .map(|l| {
                let _ = l.stop.send(true);
                (l.pbx, Some(l.task))
            })
            .collect();
        for pbx in wanted {
            if self.running.iter().any(|l| l.pbx == *pbx) {
                continue;
            }
            let ctx = match context_of(pbx) {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    // Config validation already checks these; keep the other links running.
                    tracing::error!(target: "cdrbox::run", pbx = %pbx.name, error = %e, "link not started");
                    continue;
                }
            };
            let predecessor = leaving
                .iter_mut()
                .find(|(old, task)| task.is_some() && same_account(old, pbx))
                .and_then(|(_, task)| task.take());
            let to_record: ToRecord =
                Arc::new(move |msg, received| CallRecord::from_event(msg, &ctx, received));
            let (stop, stop_rx) = watch::channel(false);
            let guard = EndGuard {
                stop: stop_rx.clone(),
                died: self.died.clone(),
            };
            let link = run_link(
                LinkConfig::from_pbx(pbx),
                self.sink.clone(),
                to_record,
                self.clock.clone(),
                stop_rx,
            );
            let name = pbx.name.clone();
            let task = tokio::spawn(async move {
                let _guard = guard;
                if let Some(old) = predecessor {
                    if tokio::time::timeout(HANDOVER_LIMIT, old).await.is_err() {
                        tracing::warn!(target: "cdrbox::run", pbx = %name, "the old session did not log off in time; logging in anyway");
                    }
                }
                link.await;
            });
            self.running.push(Link {
                pbx: pbx.clone(),
                stop,
                task,
            });
        }
        // Tasks of removed links that nothing replaces finish on their own after logging off.
    }

    pub(super) fn len(&self) -> usize {
        self.running.len()
    }

    /// How many link tasks ended without being told to (they panicked); watch it instead of
    /// polling the tasks.
    pub(super) fn died(&self) -> watch::Receiver<u64> {
        self.died.subscribe()
    }

    /// Tells every link to log off and waits up to `grace` for each.
    pub(super) async fn stop(self, grace: Duration) {
        for l in &self.running {
            let _ = l.stop.send(true);
        }
        for l in self.running {
            let _ = tokio::time::timeout(grace, l.task).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the account matters here (name, host, port, user): the rest as the config file's
    /// defaults.
    fn pbx(name: &str, host: &str, user: &str) -> PbxConfig {
        let toml = format!(
            "[[pbx]]\nname = \"{name}\"\nhost = \"{host}\"\nusername = \"{user}\"\nsecret = \"s\"\n"
        );
        let mut cfg = crate::config::Config::parse(&toml, "test").unwrap();
        cfg.pbx.remove(0)
    }

    #[test]
    fn a_replacement_waits_for_the_same_name_or_the_same_account() {
        let office = pbx("office", "10.0.0.5", "cdrbox");
        assert!(
            same_account(&office, &pbx("main", "10.0.0.5", "cdrbox")),
            "renamed"
        );
        assert!(
            same_account(&office, &pbx("office", "10.0.0.6", "cdrbox")),
            "moved"
        );
        assert!(
            !same_account(&office, &pbx("main", "10.0.0.5", "other")),
            "another user"
        );
        assert!(
            !same_account(&office, &pbx("main", "10.0.0.6", "cdrbox")),
            "another PBX"
        );
    }

    #[tokio::test]
    async fn only_a_link_that_ends_untold_counts_as_died() {
        let (died, _) = watch::channel(0u64);
        let (stop, stop_rx) = watch::channel(false);
        let told = EndGuard {
            stop: stop_rx,
            died: died.clone(),
        };
        let _ = stop.send(true);
        tokio::spawn(async move { drop(told) }).await.unwrap();
        assert_eq!(*died.borrow(), 0);
        let (_keep, rx) = watch::channel(false);
        let untold = EndGuard {
            stop: rx,
            died: died.clone(),
        };
        let panicked = tokio::spawn(async move {
            let _g = untold;
            panic!("link task bug");
        })
        .await;
        assert!(panicked.is_err());
        assert_eq!(*died.borrow(), 1, "the guard runs while the panic unwinds");
    }
}
