//! The stop signal every server and the ticker listen to.

use tokio::sync::watch;

/// Resolves once the simulator is told to stop (or its handle is gone).
#[derive(Debug, Clone)]
pub(crate) struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A signal and the sender that fires it.
    pub(crate) fn new() -> (watch::Sender<bool>, Self) {
        let (sender, receiver) = watch::channel(false);
        (sender, Self(receiver))
    }

    pub(crate) async fn wait(mut self) {
        // An error means the sender is gone, which is a stop as well.
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }
}
