//! Per-function limits set at deploy, with their defaults in one place.

use serde::{Deserialize, Serialize};

/// The most memory a function may be given, in MiB; the engine reserves slots this size.
pub const MAX_MEMORY_MIB: u32 = 1024;

/// What one function may use. Exceeding a limit fails the event with a classified
/// failure and sends it to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Fuel (roughly, wasm instructions) one event may burn. A call with N events gets
    /// N times this; an event that fails a call is then run alone with exactly this much.
    /// The default leaves room for interpreted guests (JavaScript, Python), which burn
    /// a few hundred thousand per trivial event.
    pub fuel_per_event: u64,
    /// Linear memory an instance may grow to, in MiB (at most 1024).
    pub memory_mib: u32,
    /// Wall-clock deadline of one call into the function, in milliseconds.
    pub timeout_ms: u64,
    /// Records one event may emit.
    pub max_outputs_per_event: u32,
    /// Bytes (key, value and headers) one event may emit.
    pub max_output_bytes_per_event: u64,
    /// Bytes of one state value (as Kafka's changelog records, 1 MiB by default).
    pub max_state_value_bytes: u64,
    /// Bytes of state (keys and values) one event may write.
    pub max_state_bytes_per_event: u64,
    /// Bytes of state (keys and values) one partition may hold.
    pub max_partition_state_bytes: u64,
    /// Most events handed to the function in one call.
    pub max_batch: u32,
    /// Deliveries of an event whose handler keeps asking for a retry before it is
    /// dead-lettered as `retry-exhausted`.
    pub max_retries: u32,
    /// Backoff before the first redelivery, in milliseconds; it doubles per attempt.
    pub retry_backoff_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel_per_event: 50_000_000,
            memory_mib: 256,
            timeout_ms: 5_000,
            max_outputs_per_event: 100,
            max_output_bytes_per_event: 1 << 20,
            max_state_value_bytes: 1 << 20,
            max_state_bytes_per_event: 4 << 20,
            max_partition_state_bytes: 1 << 30,
            max_batch: 500,
            max_retries: 3,
            retry_backoff_ms: 200,
        }
    }
}

impl Limits {
    /// Checks that the limits are usable, saying which one is not.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.fuel_per_event > 0, "fuel per event must be above 0");
        anyhow::ensure!(
            (1..=MAX_MEMORY_MIB).contains(&self.memory_mib),
            "memory must be between 1 and {MAX_MEMORY_MIB} MiB, not {}",
            self.memory_mib
        );
        anyhow::ensure!(self.timeout_ms > 0, "timeout must be above 0 ms");
        anyhow::ensure!(self.max_batch > 0, "batch size must be above 0");
        Ok(())
    }

    /// Backoff before delivery attempt `attempt` (1 for the first redelivery).
    pub fn backoff(&self, attempt: u32) -> std::time::Duration {
        let factor = 1u64 << attempt.saturating_sub(1).min(16);
        std::time::Duration::from_millis(self.retry_backoff_ms.saturating_mul(factor).min(60_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<Limits>(r#"{"fuel":1}"#).expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `fuel`"), "{err}");
        let partial: Limits = serde_json::from_str(r#"{"memory_mib":64}"#).expect("partial");
        assert_eq!(partial.memory_mib, 64);
        assert_eq!(partial.timeout_ms, Limits::default().timeout_ms);
    }

    #[test]
    fn out_of_range_limits_are_named() {
        let limits = Limits {
            memory_mib: 4096,
            ..Limits::default()
        };
        assert!(
            limits
                .validate()
                .expect_err("too big")
                .to_string()
                .contains("memory")
        );
    }

    #[test]
    fn backoff_doubles() {
        let limits = Limits::default();
        assert_eq!(limits.backoff(1).as_millis(), 200);
        assert_eq!(limits.backoff(3).as_millis(), 800);
    }
}
