//! The host side of the contract's imports, in both versions: state, emit, log, config
//! and timers (0.1.0), and state reads, effects, log and config (0.2.0), each working on
//! the call under way. Writes are buffered in the call's state view and checked against
//! the state limits; an emit is checked against the deployment's declared outputs and
//! output limits. An effect means the same whichever version asked for it.

use super::bindings::streamfn::function::{config, emit, log, state, timers, types};
use super::bindings::v0_2::streamfn::function as v0_2;
use super::instance::{InstanceState, LogLine};
use super::wire::{self, Effect};
use crate::model::effects::Output;
use crate::model::failure::HostError;
use crate::model::record::Record;

fn storage(err: anyhow::Error) -> wasmtime::Error {
    wasmtime::Error::new(HostError::Storage(format!("{err:#}")))
}

impl InstanceState {
    fn get(&mut self, key: &[u8]) -> wasmtime::Result<Option<Vec<u8>>> {
        self.call().state.get(key).map_err(storage)
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
    ) -> wasmtime::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.call()
            .state
            .scan(&prefix, start_after.as_deref(), limit as usize)
            .map_err(storage)
    }

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
        let mut record = Record {
            timestamp_ms: output.timestamp_ms.unwrap_or(stream_time_ms),
            key: output.key,
            value: output.value,
            headers: output
                .headers
                .into_iter()
                .map(|h| (h.key, h.value))
                .collect(),
        };
        match self.shared.encoder.encode(&output.topic, &mut record) {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(wasmtime::Error::new(HostError::EncodeFailed(reason))),
            Err(e) => return Err(wasmtime::Error::new(HostError::RegistryUnreachable(e))),
        }
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

    fn write_log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
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

    fn config_value(&self, key: &str) -> Option<String> {
        self.shared.config.get(key).cloned()
    }

    fn config_all(&self) -> Vec<(String, String)> {
        self.shared
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn set_timer(&mut self, key: Vec<u8>, at_ms: Option<i64>) {
        self.call().state.set_timer(key, at_ms);
    }
}

impl types::Host for InstanceState {}

impl state::Host for InstanceState {
    fn get(&mut self, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        InstanceState::get(self, &key)
    }

    fn set(&mut self, key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
        InstanceState::set(self, key, value)
    }

    fn delete(&mut self, key: Vec<u8>) -> wasmtime::Result<()> {
        InstanceState::delete(self, key)
    }

    fn scan(
        &mut self,
        prefix: Vec<u8>,
        start_after: Option<Vec<u8>>,
        limit: u32,
    ) -> wasmtime::Result<Vec<state::Entry>> {
        let entries = InstanceState::scan(self, prefix, start_after, limit)?;
        Ok(entries
            .into_iter()
            .map(|(key, value)| state::Entry { key, value })
            .collect())
    }
}

impl emit::Host for InstanceState {
    fn send(&mut self, output: emit::Output) -> wasmtime::Result<()> {
        InstanceState::send(self, output)
    }
}

impl log::Host for InstanceState {
    fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        self.write_log(level, message)
    }
}

impl config::Host for InstanceState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.config_value(&key))
    }

    fn all(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.config_all())
    }
}

impl timers::Host for InstanceState {
    fn schedule(&mut self, key: Vec<u8>, at_ms: i64) -> wasmtime::Result<()> {
        self.set_timer(key, Some(at_ms));
        Ok(())
    }

    fn cancel(&mut self, key: Vec<u8>) -> wasmtime::Result<()> {
        self.set_timer(key, None);
        Ok(())
    }
}

impl v0_2::types::Host for InstanceState {}

impl v0_2::state::Host for InstanceState {
    fn get(&mut self, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        InstanceState::get(self, &key)
    }

    fn get_many(&mut self, keys: Vec<Vec<u8>>) -> wasmtime::Result<Vec<Option<Vec<u8>>>> {
        keys.iter()
            .map(|key| InstanceState::get(self, key))
            .collect()
    }

    fn scan(
        &mut self,
        prefix: Vec<u8>,
        start_after: Option<Vec<u8>>,
        limit: u32,
    ) -> wasmtime::Result<Vec<v0_2::state::Entry>> {
        let entries = InstanceState::scan(self, prefix, start_after, limit)?;
        Ok(entries
            .into_iter()
            .map(|(key, value)| v0_2::state::Entry { key, value })
            .collect())
    }
}

impl v0_2::effects::Host for InstanceState {
    fn apply(&mut self, effects: Vec<u8>) -> wasmtime::Result<()> {
        for effect in wire::effects(&effects) {
            match effect.map_err(wasmtime::Error::new)? {
                Effect::Set(key, value) => self.set(key, value)?,
                Effect::Delete(key) => self.delete(key)?,
                Effect::Send(output) => self.send(output)?,
                Effect::Schedule(key, at_ms) => self.set_timer(key, Some(at_ms)),
                Effect::Cancel(key) => self.set_timer(key, None),
            }
        }
        Ok(())
    }
}

impl v0_2::log::Host for InstanceState {
    fn write(&mut self, level: v0_2::log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            v0_2::log::Level::Debug => log::Level::Debug,
            v0_2::log::Level::Info => log::Level::Info,
            v0_2::log::Level::Warn => log::Level::Warn,
            v0_2::log::Level::Error => log::Level::Error,
        };
        self.write_log(level, message)
    }
}

impl v0_2::config::Host for InstanceState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.config_value(&key))
    }

    fn all(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.config_all())
    }
}
