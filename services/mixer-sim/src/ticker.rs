//! The background loop that moves every pod's figures forward.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::fleet::Fleet;
use crate::shutdown::Shutdown;

/// How often figures move; short enough that a scrape a second apart always differs.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// Advances every pod by one nominal tick per period until shutdown. Each tick counts as
/// exactly `TICK` of traffic (late ticks are caught up), so a seed gives the same figures
/// per tick regardless of scheduling noise.
pub(crate) async fn run(fleet: Arc<Fleet>, shutdown: Shutdown) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = interval.tick() => fleet.tick(TICK.as_secs_f64()),
        }
    }
}
