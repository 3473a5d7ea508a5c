//! The host side of the contract's imports: state, emit, log, config and timers, each
//! working on the call under way. Writes are buffered in the call's state view and checked
//! against the state limits; an emit is checked against the deployment's declared outputs
//! and output limits.

use super::bindings::streamfn::function::{config, emit, log, state, timers, types};
use super::instance::{InstanceState, LogLine};
use crate::model::effects::Output;
use crate::model::failure::HostError;
use crate::model::record::Record;

fn storage(err: anyhow::Error) -> wasmtime::Error {
    wasmtime::Error::new(HostError::Storage(format!("{err:#}")))
}

impl types::Host for InstanceState {}

impl state::Host for InstanceState {
    fn get(&mut self, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        self.call().state.get(&key).map_err(storage)
    }

    fn set(&mut self, key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
        let limits = &self.shared.limits;
        let (max_value, max_held) = (
            limits.max_state_value_bytes,
            limits.max_partition_state_bytes,
        );
        let size = value.len() as u64;
        let call = self.call();
        call.state_bytes += (key.len() + value.len()) as u64;
        let denied = if size > max_value {
            Some(format!(
                "wrote a state value of {size} bytes; values may be at most {max_value} bytes"
            ))
        } else if call.state_bytes > call.max_state_bytes {
            Some(format!(
                "wrote more than {} bytes of state for its events",
                call.max_state_bytes
            ))
        } else {
            None
        };
        if let Some(reason) = denied {
            return Err(wasmtime::Error::new(HostError::StateDenied(reason)));
        }
        let held = call.state.write(key, Some(value)).map_err(storage)?;
        if held > max_held {
            return Err(wasmtime::Error::new(HostError::StateDenied(format!(
                "the partition's state would hold {held} bytes; a partition may hold at most {max_held}"
            ))));
        }
        Ok(())
    }

    fn delete(&mut self, key: Vec<u8>) -> wasmtime::Result<()> {
        self.call().state.write(key, None).map_err(storage)?;
        Ok(())
    }

    fn scan(
        &mut self,
        prefix: Vec<u8>,
        start_after: Option<Vec<u8>>,
        limit: u32,
    ) -> wasmtime::Result<Vec<state::Entry>> {
        let entries = self
            .call()
            .state
            .scan(&prefix, start_after.as_deref(), limit as usize)
            .map_err(storage)?;
        Ok(entries
            .into_iter()
            .map(|(key, value)| state::Entry { key, value })
            .collect())
    }
}

impl emit::Host for InstanceState {
    fn send(&mut self, output: emit::Output) -> wasmtime::Result<()> {
        if !self.shared.outputs.contains(&output.topic) {
            let declared: Vec<&str> = self.shared.outputs.iter().map(String::as_str).collect();
            return Err(wasmtime::Error::new(HostError::OutputDenied(format!(
                "emitted to topic {:?}, which the deployment does not declare as an output (declared: {})",
                output.topic,
                if declared.is_empty() {
                    "none".to_owned()
                } else {
                    declared.join(", ")
                }
            ))));
        }
        let max_record_bytes = self.shared.max_record_bytes;
        let stream_time_ms = self.call().stream_time_ms;
        let record = Record {
            timestamp_ms: output.timestamp_ms.unwrap_or(stream_time_ms),
            key: output.key,
            value: output.value,
            headers: output
                .headers
                .into_iter()
                .map(|h| (h.key, h.value))
                .collect(),
        };
        let size = record.payload_len();
        let call = self.call();
        call.outputs += 1;
        call.output_bytes += size as u64;
        let denied = if size > max_record_bytes {
            Some(format!(
                "emitted a record of {size} bytes; records may be at most {max_record_bytes} bytes"
            ))
        } else if call.outputs > call.max_outputs {
            Some(format!(
                "emitted more than {} records for its events",
                call.max_outputs
            ))
        } else if call.output_bytes > call.max_output_bytes {
            Some(format!(
                "emitted more than {} bytes for its events",
                call.max_output_bytes
            ))
        } else {
            None
        };
        if let Some(reason) = denied {
            return Err(wasmtime::Error::new(HostError::OutputDenied(reason)));
        }
        let partition = call.partition;
        call.state.current.outputs.push(Output {
            topic: output.topic,
            fallback_partition: partition,
            record,
        });
        Ok(())
    }
}

impl log::Host for InstanceState {
    fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let call = self.call();
        let line = LogLine {
            level,
            message,
            partition: call.partition,
            offsets: call.offsets,
        };
        (self.shared.log)(line);
        Ok(())
    }
}

impl config::Host for InstanceState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.shared.config.get(&key).cloned())
    }

    fn all(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self
            .shared
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl timers::Host for InstanceState {
    fn schedule(&mut self, key: Vec<u8>, at_ms: i64) -> wasmtime::Result<()> {
        self.call().state.set_timer(key, Some(at_ms));
        Ok(())
    }

    fn cancel(&mut self, key: Vec<u8>) -> wasmtime::Result<()> {
        self.call().state.set_timer(key, None);
        Ok(())
    }
}
