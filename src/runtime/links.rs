//! The running box's AMI links: one tokio task per enabled `[[pbx]]`, started, stopped and
//! restarted so they match the live configuration.

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
}

impl Links {
    pub(super) fn new(sink: Arc<dyn RecordSink>, clock: Clock) -> Links {
        Links {
            running: Vec::new(),
            sink,
            clock,
        }
    }

    /// Starts, stops and restarts links so they match `cfg` (a changed address, user, secret or
    /// zone reconnects that link alone; the others keep their sessions).
    pub(super) fn reconcile(&mut self, cfg: &Config) {
        let wanted: Vec<&PbxConfig> = cfg.pbx.iter().filter(|p| p.enabled).collect();
        self.running.retain_mut(|l| {
            let keep = wanted.iter().any(|p| **p == l.pbx);
            if !keep {
                let _ = l.stop.send(true);
            }
            keep
        });
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
            let to_record: ToRecord =
                Arc::new(move |msg, received| CallRecord::from_event(msg, &ctx, received));
            let (stop, stop_rx) = watch::channel(false);
            let task = tokio::spawn(run_link(
                LinkConfig::from_pbx(pbx),
                self.sink.clone(),
                to_record,
                self.clock.clone(),
                stop_rx,
            ));
            self.running.push(Link {
                pbx: pbx.clone(),
                stop,
                task,
            });
        }
        // Tasks of removed links finish on their own after logging off.
    }

    pub(super) fn len(&self) -> usize {
        self.running.len()
    }

    /// No link task has ended: a link task only ends when told to, so one that ended by
    /// itself has panicked.
    pub(super) fn all_running(&self) -> bool {
        self.running.iter().all(|l| !l.task.is_finished())
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
