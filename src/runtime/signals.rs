//! SIGINT/SIGTERM as a future: how `run` and `sim-pbx` learn that it is time to stop.

use std::time::Duration;

/// SIGINT/SIGTERM listeners. Installing them replaces the default action (die at once), and a
/// signal that arrives before [`StopSignals::wait`] runs is kept until then.
pub(super) struct StopSignals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    pub(super) fn install() -> StopSignals {
        use tokio::signal::unix::{signal, SignalKind};
        StopSignals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// Until SIGINT, SIGTERM or `stop_after`. Borrowed, so a box that restarts in-process keeps
    /// listening across runs and a signal during the restart is not lost.
    pub(super) async fn wait(&mut self, stop_after: Option<Duration>) {
        let sleep = async {
            match stop_after {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            _ = recv(&mut self.int) => {}
            _ = recv(&mut self.term) => {}
            _ = sleep => {}
        }
    }
}
