//! A call's ICE component 2 (RTCP without rtcp-mux) inside the media task: its
//! connectivity checks run in their own task beside component 1's and the media; once it
//! has a selected pair, RTCP goes over it (and is received from it). Until then, or if it
//! never connects, RTCP goes over component 1's pair.

use peerline_net::{Connected, IceError, IceSession, PathReport};
use peerline_sdp::RemoteIce;
use tokio::task::JoinHandle;

type Checks = JoinHandle<(Box<IceSession>, Result<Connected, IceError>)>;

/// Component 2's agent: checking, or done checking (connected or not).
pub(crate) struct RtcpComponent {
    checks: Option<Checks>,
    session: Option<Box<IceSession>>,
}

impl RtcpComponent {
    /// Starts component 2's checks against the peer's (component-2) candidates.
    pub(crate) fn start(session: Box<IceSession>, remote: RemoteIce) -> Self {
        let checks = tokio::spawn(async move {
            let result = session.connect(&remote).await;
            (session, result)
        });
        Self {
            checks: Some(checks),
            session: None,
        }
    }

    /// The outcome of the checks; never completes when they are over (a `select!` arm).
    pub(crate) async fn checked(&mut self) -> Result<Connected, IceError> {
        let Some(checks) = self.checks.as_mut() else {
            return std::future::pending().await;
        };
        let joined = checks.await;
        self.checks = None;
        match joined {
            Ok((session, result)) => {
                self.session = Some(session);
                result
            }
            Err(e) => Err(IceError::Agent(format!("component 2 checks: {e}"))),
        }
    }

    /// Component 2's selected pair now, if it connected.
    pub(crate) fn path_report(&self) -> Option<PathReport> {
        self.session.as_ref().and_then(|s| s.path_report())
    }

    /// Stops the checks if they still run and closes the agent.
    pub(crate) async fn close(self) {
        if let Some(checks) = self.checks {
            // Dropping the task's agent closes it in the background.
            checks.abort();
        }
        if let Some(session) = self.session {
            session.close().await;
        }
    }
}

/// [`RtcpComponent::checked`] on an optional component: never ready without one.
pub(crate) async fn rtcp_checked(c: &mut Option<RtcpComponent>) -> Result<Connected, IceError> {
    match c.as_mut() {
        Some(c) => c.checked().await,
        None => std::future::pending().await,
    }
}
