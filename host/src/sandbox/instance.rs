//! One live instance of a function: its wasmtime store, the limits it runs under (fuel,
//! memory, deadline, outputs) and the context of the call under way, which the host side
//! of the imports (`imports.rs`) reads and writes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::Result;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::streamfn::function::log;
use super::bindings::v0_2;
use super::bindings::{Event, FiredTimer, Function, FunctionPre, Outcome};
use super::wasi::{GuestRandom, StderrTail, seed};
use crate::model::failure::HostError;
use crate::model::limits::Limits;
use crate::schema::Encoder;
use crate::state::PartitionState;

/// A guest log line, with where it was written.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// Severity.
    pub level: log::Level,
    /// The text.
    pub message: String,
    /// Partition being handled.
    pub partition: u32,
    /// First and last offsets of the call's events (equal for a single event); none for
    /// a timer call.
    pub offsets: Option<(u64, u64)>,
}

/// Where log lines of a function go.
pub type LogSink = Arc<dyn Fn(LogLine) + Send + Sync>;

/// What every instance of one deployment shares.
#[derive(Clone)]
pub struct InstanceConfig {
    /// The function's name.
    pub function: Arc<str>,
    /// The deployment's version.
    pub version: u32,
    /// Deploy-time configuration the guest can read.
    pub config: Arc<BTreeMap<String, String>>,
    /// Topics the guest may emit to.
    pub outputs: Arc<BTreeSet<String>>,
    /// Encodes what it emits by the outputs' formats.
    pub encoder: Arc<Encoder>,
    /// The deployment's limits.
    pub limits: Limits,
    /// Largest record the log accepts, in bytes.
    pub max_record_bytes: usize,
    /// Receives guest log lines.
    pub log: LogSink,
}

impl InstanceConfig {
    /// The seed of the guest's random numbers in a call that starts at `position` of
    /// `partition`: the same for the same call of the same version, on any replica.
    fn call_seed(&self, partition: u32, position: &[u8]) -> [u8; 32] {
        seed(&[
            self.function.as_bytes(),
            &self.version.to_be_bytes(),
            &partition.to_be_bytes(),
            position,
        ])
    }
}

/// The per-call context of the host imports.
pub(super) struct Call {
    pub(super) state: PartitionState,
    pub(super) partition: u32,
    pub(super) offsets: Option<(u64, u64)>,
    /// Stream time of the call, the timestamp of records emitted without one.
    pub(super) stream_time_ms: i64,
    pub(super) max_outputs: u64,
    pub(super) max_output_bytes: u64,
    pub(super) max_state_bytes: u64,
    pub(super) state_bytes: u64,
    pub(super) outputs: u64,
    pub(super) output_bytes: u64,
}

/// The state view handed back after a call, with the call's value and the fuel it burnt,
/// or what made it fail.
pub type CallResult<T> = (PartitionState, Result<(T, u64), CallFailure>);

/// Where a call happens: what its imports need to know.
struct CallSite<'a> {
    partition: u32,
    offsets: Option<(u64, u64)>,
    stream_time_ms: i64,
    events: usize,
    /// Where in the partition the call starts, for its random numbers.
    position: &'a [u8],
}

/// Store data of an instance.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) shared: InstanceConfig,
    memory_limit: usize,
    memory_exceeded: bool,
    stderr: StderrTail,
    random: GuestRandom,
    pub(super) call: Option<Call>,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for InstanceState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_exceeded = true;
            return Err(wasmtime::Error::new(HostError::OutOfMemory {
                limit_mib: self.shared.limits.memory_mib,
                requested_bytes: desired,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// A component ready to instantiate, with the exports of its contract version.
#[derive(Clone)]
pub(super) enum Pre {
    V0_1(FunctionPre<InstanceState>),
    V0_2(v0_2::FunctionPre<InstanceState>),
}

/// The exports of a live instance, in the contract version its component was built for.
enum Exports {
    V0_1(Function),
    V0_2 {
        function: v0_2::Function,
        /// The buffer batches are written into, kept between calls.
        batch: Vec<u8>,
    },
}

/// A live instance and its store.
pub struct Instance {
    store: Store<InstanceState>,
    exports: Exports,
    fuel_budget: u64,
    /// Epoch ticks a call may take.
    deadline_ticks: u64,
}

/// Every instance slot of the replica is taken: the function must wait for one to be
/// released, or the replica be started with more (`fnctl serve --max-instances`).
#[derive(Debug, thiserror::Error)]
#[error(
    "every instance slot of the replica is in use ({0}); functions release theirs when idle, or give the replica more with --max-instances"
)]
pub struct PoolFull(String);

/// What a call left behind when it failed, for classifying the failure.
pub struct CallFailure {
    /// The error the call returned.
    pub error: wasmtime::Error,
    /// Whether the guest tried to grow memory past its limit.
    pub memory_exceeded: bool,
    /// The end of what the guest wrote to stderr (a panic message, usually).
    pub stderr: String,
}

impl Instance {
    /// Instantiates `pre` with the sandbox and limits of `shared`; a call may take
    /// `deadline_ticks` epochs.
    pub(super) fn new(
        engine: &wasmtime::Engine,
        pre: &Pre,
        shared: InstanceConfig,
        deadline_ticks: u64,
    ) -> Result<Instance> {
        let stderr = StderrTail::default();
        // Guest runtimes seed themselves while they start, from the deployment alone.
        let random = GuestRandom::new(seed(&[
            shared.function.as_bytes(),
            &shared.version.to_be_bytes(),
        ]));
        let wasi = super::wasi::context(&stderr, &random);
        let memory_limit = shared.limits.memory_mib as usize * 1024 * 1024;
        let data = InstanceState {
            wasi,
            table: ResourceTable::new(),
            shared,
            memory_limit,
            memory_exceeded: false,
            stderr,
            random,
            call: None,
        };
        let mut store = Store::new(engine, data);
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        // Setting fuel fails only on an engine measured without it.
        let _ = store.set_fuel(u64::MAX);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(u64::MAX / 2);
        let instantiated = match pre {
            Pre::V0_1(pre) => pre.instantiate(&mut store).map(Exports::V0_1),
            Pre::V0_2(pre) => pre.instantiate(&mut store).map(|function| Exports::V0_2 {
                function,
                batch: Vec::new(),
            }),
        };
        let exports = instantiated.map_err(|err| {
            if err
                .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                .is_some()
            {
                anyhow::Error::new(PoolFull(err.to_string()))
            } else {
                anyhow::Error::from(err).context("instantiating the function")
            }
        })?;
        Ok(Instance {
            store,
            exports,
            fuel_budget: 0,
            deadline_ticks,
        })
    }

    /// Calls the handler on `events` with `state`, under the budget of `events.len()`
    /// events and the deployment's deadline. Returns the outcomes and hands `state` back either way.
    pub fn handle(&mut self, state: PartitionState, events: &[Event]) -> CallResult<Vec<Outcome>> {
        let offsets = events
            .first()
            .zip(events.last())
            .map(|(a, b)| (a.offset, b.offset));
        let position = events
            .first()
            .map(|e| [e.topic.as_bytes(), &e.offset.to_be_bytes()].concat())
            .unwrap_or_default();
        let site = CallSite {
            partition: events.first().map_or(0, |e| e.partition),
            offsets,
            stream_time_ms: events.last().map_or(0, |e| e.stream_time_ms),
            events: events.len().max(1),
            position: &position,
        };
        let partition = site.partition;
        self.begin(state, site);
        let result = match &mut self.exports {
            Exports::V0_1(function) => function
                .streamfn_function_handler()
                .call_handle(&mut self.store, events),
            Exports::V0_2 { function, batch } => {
                super::wire::encode_batch(partition, events, batch);
                function
                    .streamfn_function_handler()
                    .call_handle(&mut self.store, batch)
                    .and_then(|failed| outcomes(events.len(), failed))
            }
        };
        self.finish(result)
    }

    /// Calls the timer handler on `fired` at `stream_time_ms`, under the budget of one
    /// event per timer.
    pub fn on_timers(
        &mut self,
        state: PartitionState,
        partition: u32,
        stream_time_ms: i64,
        fired: &[FiredTimer],
    ) -> CallResult<Result<(), String>> {
        let position = [&b"timers"[..], &stream_time_ms.to_be_bytes()].concat();
        let site = CallSite {
            partition,
            offsets: None,
            stream_time_ms,
            events: fired.len().max(1),
            position: &position,
        };
        self.begin(state, site);
        let result = match &mut self.exports {
            Exports::V0_1(function) => function
                .streamfn_function_handler()
                .call_on_timers(&mut self.store, fired),
            Exports::V0_2 { function, .. } => {
                let fired: Vec<v0_2::streamfn::function::types::FiredTimer> = fired
                    .iter()
                    .map(|t| v0_2::streamfn::function::types::FiredTimer {
                        key: t.key.clone(),
                        at_ms: t.at_ms,
                    })
                    .collect();
                function
                    .streamfn_function_handler()
                    .call_on_timers(&mut self.store, &fired)
            }
        };
        self.finish(result)
    }

    fn begin(&mut self, state: PartitionState, site: CallSite<'_>) {
        let data = self.store.data_mut();
        let limits = &data.shared.limits;
        let n = site.events as u64;
        let fuel = limits.fuel_per_event.saturating_mul(n);
        let call = Call {
            state,
            partition: site.partition,
            offsets: site.offsets,
            stream_time_ms: site.stream_time_ms,
            max_outputs: u64::from(limits.max_outputs_per_event).saturating_mul(n),
            max_output_bytes: limits.max_output_bytes_per_event.saturating_mul(n),
            max_state_bytes: limits.max_state_bytes_per_event.saturating_mul(n),
            state_bytes: 0,
            outputs: 0,
            output_bytes: 0,
        };
        data.random
            .reseed(data.shared.call_seed(site.partition, site.position));
        data.call = Some(call);
        data.memory_exceeded = false;
        // Setting fuel fails only on an engine measured without it.
        let _ = self.store.set_fuel(fuel);
        self.store.set_epoch_deadline(self.deadline_ticks);
        self.fuel_budget = fuel;
    }

    fn finish<T>(&mut self, result: wasmtime::Result<T>) -> CallResult<T> {
        let fuel_used = self
            .fuel_budget
            .saturating_sub(self.store.get_fuel().unwrap_or(0));
        let data = self.store.data_mut();
        let Some(call) = data.call.take() else {
            unreachable!("finish follows begin");
        };
        let outcome = match result {
            Ok(value) => Ok((value, fuel_used)),
            Err(error) => Err(CallFailure {
                error,
                memory_exceeded: data.memory_exceeded,
                stderr: data.stderr.text(),
            }),
        };
        (call.state, outcome)
    }
}

/// One outcome per event of a batch of `events`, from the events a 0.2.0 handler listed
/// as failed; a list that is not in order or names an event outside the batch fails the
/// call.
fn outcomes(
    events: usize,
    failed: Vec<v0_2::streamfn::function::types::FailedEvent>,
) -> wasmtime::Result<Vec<Outcome>> {
    use v0_2::streamfn::function::types::Failure;
    let mut outcomes = vec![Outcome::Ok; events];
    let mut next = 0;
    for event in failed {
        let index = event.index as usize;
        if index < next || index >= events {
            return Err(wasmtime::Error::msg(format!(
                "the handler listed event {index} as failed, in a batch of {events} events (failed events are listed once each, in order)"
            )));
        }
        outcomes[index] = match event.failure {
            Failure::Retry(reason) => Outcome::Retry(reason),
            Failure::Reject(reason) => Outcome::Reject(reason),
        };
        next = index + 1;
    }
    Ok(outcomes)
}

impl InstanceState {
    pub(super) fn call(&mut self) -> &mut Call {
        // Imports only run inside a call, which `begin` sets up.
        self.call
            .as_mut()
            .unwrap_or_else(|| unreachable!("import called outside a call"))
    }
}

#[cfg(test)]
mod tests {
    use super::v0_2::streamfn::function::types::{FailedEvent, Failure};
    use super::*;

    #[test]
    fn a_failed_event_list_becomes_one_outcome_per_event_and_a_wrong_one_fails_the_call() {
        let failed = |index, reason: &str| FailedEvent {
            index,
            failure: Failure::Reject(reason.into()),
        };
        let got = outcomes(
            4,
            vec![
                failed(1, "a"),
                FailedEvent {
                    index: 3,
                    failure: Failure::Retry("b".into()),
                },
            ],
        )
        .expect("in order");
        assert_eq!(
            got,
            vec![
                Outcome::Ok,
                Outcome::Reject("a".into()),
                Outcome::Ok,
                Outcome::Retry("b".into())
            ]
        );
        assert_eq!(
            outcomes(2, vec![]).expect("none failed"),
            vec![Outcome::Ok; 2]
        );
        for wrong in [
            vec![failed(2, "past the end")],
            vec![failed(1, "x"), failed(1, "twice")],
            vec![failed(1, "x"), failed(0, "backwards")],
        ] {
            assert!(outcomes(2, wrong).is_err());
        }
    }
}
