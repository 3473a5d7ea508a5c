//! What a handler returns when an event cannot be handled.

use std::fmt;

/// Why an event failed, and so what the host does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Transient: the host discards the event's effects and delivers it again after a
    /// backoff; once the retry budget is spent it goes to the dead-letter topic.
    Retry(String),
    /// The event is bad: the host discards its effects and dead-letters it now.
    Reject(String),
}

impl Failure {
    /// A transient failure with a reason.
    pub fn retry(reason: impl Into<String>) -> Self {
        Failure::Retry(reason.into())
    }

    /// A permanent failure with a reason.
    pub fn reject(reason: impl Into<String>) -> Self {
        Failure::Reject(reason.into())
    }

    /// The reason given.
    pub fn reason(&self) -> &str {
        match self {
            Failure::Retry(r) | Failure::Reject(r) => r,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Retry(r) => write!(f, "retry: {r}"),
            Failure::Reject(r) => write!(f, "reject: {r}"),
        }
    }
}

impl std::error::Error for Failure {}
