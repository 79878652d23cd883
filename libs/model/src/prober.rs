//! What a prober says about itself when it registers.

use crate::ids::{ProberId, Region};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProberIdentity {
    pub id: ProberId,
    pub region: Region,
    pub node: String,
    pub version: String,
}
