//! Why an event failed: the classified failure kinds, and the errors host imports raise
//! to stop a guest. A guest's own reject or retry is an outcome, not an error, and ends
//! up here only once the host turns it into a dead letter.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kind of a failure, as counted in metrics and named in dead-letter headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The event burnt more fuel than its limit.
    OutOfFuel,
    /// The instance tried to grow its memory past its limit.
    OutOfMemory,
    /// A call ran past its wall-clock deadline.
    Timeout,
    /// The guest trapped: a panic, an `unreachable`, a contract violation.
    Trap,
    /// The guest emitted to an undeclared topic, or more than its output limits.
    OutputDenied,
    /// The guest wrote more state than its limits allow.
    StateDenied,
    /// The guest rejected the event.
    Rejected,
    /// The guest asked for a retry more times than allowed.
    RetryExhausted,
    /// The record's value does not decode in its topic's format (no schema registry
    /// frame, an unknown schema id, a payload that does not fit its schema).
    DecodeError,
    /// The guest emitted a value that does not fit its output's format or schema.
    EncodeError,
}

impl FailureKind {
    /// Every kind, in a stable order.
    pub const ALL: [FailureKind; 10] = [
        FailureKind::OutOfFuel,
        FailureKind::OutOfMemory,
        FailureKind::Timeout,
        FailureKind::Trap,
        FailureKind::OutputDenied,
        FailureKind::StateDenied,
        FailureKind::Rejected,
        FailureKind::RetryExhausted,
        FailureKind::DecodeError,
        FailureKind::EncodeError,
    ];

    /// The kebab-case name used in headers, metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::OutOfFuel => "out-of-fuel",
            FailureKind::OutOfMemory => "out-of-memory",
            FailureKind::Timeout => "timeout",
            FailureKind::Trap => "trap",
            FailureKind::OutputDenied => "output-denied",
            FailureKind::StateDenied => "state-denied",
            FailureKind::Rejected => "rejected",
            FailureKind::RetryExhausted => "retry-exhausted",
            FailureKind::DecodeError => "decode-error",
            FailureKind::EncodeError => "encode-error",
        }
    }

    /// Whether the failure came from a resource limit, where running a split batch
    /// again costs the whole limit at every step.
    pub fn is_exhaustion(self) -> bool {
        matches!(self, FailureKind::OutOfFuel | FailureKind::Timeout)
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure with a human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What kind of failure it was.
    pub kind: FailureKind,
    /// Why, in words a function author can act on.
    pub reason: String,
}

impl Failure {
    /// A failure of `kind` with `reason`.
    pub fn new(kind: FailureKind, reason: impl Into<String>) -> Self {
        Failure {
            kind,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.reason)
    }
}

/// Errors host imports raise to stop a call. They travel through the guest as a trap and
/// are recognised again when the call returns.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// An emit broke the deployment's output rules.
    #[error("{0}")]
    OutputDenied(String),
    /// A state write broke the deployment's state limits.
    #[error("{0}")]
    StateDenied(String),
    /// An emitted value does not fit its output's format.
    #[error("{0}")]
    EncodeFailed(String),
    /// The schema registry could not be asked. Not the event's fault: the batch is
    /// abandoned and run again later.
    #[error("{0:#}")]
    RegistryUnreachable(anyhow::Error),
    /// The instance asked for more memory than its limit.
    #[error("memory limit of {limit_mib} MiB exceeded (asked for {requested_bytes} bytes)")]
    OutOfMemory {
        /// The function's limit.
        limit_mib: u32,
        /// The size the guest asked to grow to.
        requested_bytes: usize,
    },
    /// The host could not read state. Not the event's fault: the batch is abandoned
    /// and run again later.
    #[error("state storage failed: {0}")]
    Storage(String),
}
