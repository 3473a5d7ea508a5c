//! What kind of failure a failed call was: an exceeded limit (fuel, memory, deadline),
//! an output rule broken, or a trap, with the guest's last words; or no failure of the
//! guest at all but of the host, which abandons the batch instead.

use anyhow::{Result, anyhow};

use crate::model::failure::{Failure, FailureKind, HostError};
use crate::model::limits::Limits;
use crate::sandbox::CallFailure;

/// Most of the guest's stderr a dead letter's reason carries.
const MAX_STDERR_IN_REASON: usize = 1000;

/// Turns a failed call into a classified failure, or an error when the host itself failed.
pub(super) fn classify(failure: CallFailure, limits: &Limits) -> Result<Failure> {
    let CallFailure {
        error,
        memory_exceeded,
        stderr,
    } = failure;
    if let Some(host) = error.downcast_ref::<HostError>() {
        return match host {
            HostError::Storage(_) | HostError::RegistryUnreachable(_) => Err(anyhow!("{host}")),
            HostError::EncodeFailed(reason) => {
                Ok(Failure::new(FailureKind::EncodeError, reason.clone()))
            }
            HostError::OutputDenied(reason) => {
                Ok(Failure::new(FailureKind::OutputDenied, reason.clone()))
            }
            HostError::StateDenied(reason) => {
                Ok(Failure::new(FailureKind::StateDenied, reason.clone()))
            }
            HostError::OutOfMemory { .. } => {
                Ok(Failure::new(FailureKind::OutOfMemory, host.to_string()))
            }
        };
    }
    if memory_exceeded {
        return Ok(Failure::new(
            FailureKind::OutOfMemory,
            format!("memory limit of {} MiB exceeded", limits.memory_mib),
        ));
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => Ok(Failure::new(
            FailureKind::OutOfFuel,
            format!("used up its fuel ({} per event)", limits.fuel_per_event),
        )),
        Some(wasmtime::Trap::Interrupt) => Ok(Failure::new(
            FailureKind::Timeout,
            format!("ran past its deadline of {} ms", limits.timeout_ms),
        )),
        Some(trap) => Ok(Failure::new(
            FailureKind::Trap,
            with_stderr(trap.to_string(), &stderr),
        )),
        None => Ok(Failure::new(
            FailureKind::Trap,
            with_stderr(error.to_string(), &stderr),
        )),
    }
}

/// Adds what the guest printed (a panic message, usually) to a trap's reason.
fn with_stderr(reason: String, stderr: &str) -> String {
    let printed: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note: run with"))
        .collect();
    if printed.is_empty() {
        return reason;
    }
    // Enough lines for a panic message, or an exception's message above its stack.
    let mut tail = printed[printed.len().saturating_sub(8)..].join(" | ");
    if tail.len() > MAX_STDERR_IN_REASON {
        let cut = (0..=MAX_STDERR_IN_REASON)
            .rev()
            .find(|i| tail.is_char_boundary(*i))
            .unwrap_or(0);
        tail.truncate(cut);
        tail.push('…');
    }
    format!("{reason}; guest stderr: {tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(error: wasmtime::Error, stderr: &str) -> CallFailure {
        CallFailure {
            error,
            memory_exceeded: false,
            stderr: stderr.to_owned(),
        }
    }

    #[test]
    fn limits_and_traps_are_told_apart() {
        let limits = Limits::default();
        let kind = |f: CallFailure| classify(f, &limits).expect("a guest failure").kind;
        assert_eq!(
            kind(failed(wasmtime::Trap::OutOfFuel.into(), "")),
            FailureKind::OutOfFuel
        );
        assert_eq!(
            kind(failed(wasmtime::Trap::Interrupt.into(), "")),
            FailureKind::Timeout
        );
        let denied = HostError::OutputDenied("emitted to topic \"x\"".into());
        assert_eq!(
            kind(failed(wasmtime::Error::new(denied), "")),
            FailureKind::OutputDenied
        );
        let grown = CallFailure {
            memory_exceeded: true,
            ..failed(wasmtime::Trap::UnreachableCodeReached.into(), "")
        };
        assert_eq!(kind(grown), FailureKind::OutOfMemory);
        let storage = HostError::Storage("disk on fire".into());
        assert!(classify(failed(wasmtime::Error::new(storage), ""), &limits).is_err());
    }

    #[test]
    fn a_trap_carries_the_guests_last_words() {
        let stderr =
            "note: run with `RUST_BACKTRACE=1`\nthread panicked at src/lib.rs:9:5:\npoison record";
        let failure = classify(
            failed(wasmtime::Trap::UnreachableCodeReached.into(), stderr),
            &Limits::default(),
        )
        .expect("a guest failure");
        assert_eq!(failure.kind, FailureKind::Trap);
        assert!(
            failure
                .reason
                .ends_with("guest stderr: thread panicked at src/lib.rs:9:5: | poison record"),
            "{}",
            failure.reason
        );
        let long = "x".repeat(5000);
        let failure = classify(
            failed(wasmtime::Trap::UnreachableCodeReached.into(), &long),
            &Limits::default(),
        )
        .expect("a guest failure");
        assert!(failure.reason.len() < MAX_STDERR_IN_REASON + 200);
    }
}
