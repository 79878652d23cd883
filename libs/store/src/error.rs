//! Store errors: whether to retry is the caller's decision, so each variant says what failed.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend could not be reached or did not answer in time; retrying may help.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with something this version cannot read.
    #[error("corrupt stored value at {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// The request itself cannot be served (too large, bad range).
    #[error("invalid store request: {0}")]
    Invalid(String),
}
