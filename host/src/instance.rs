//! One live instance of a function: its wasmtime store, the host side of every import the
//! guest may call (state, emit, log, config, timers), and the sandbox around it (no files,
//! no environment, no network, a clock that stands still, memory and output limits).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use rand::SeedableRng as _;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::streamfn::function::{config, emit, log, state, timers, types};
use crate::bindings::{Event, FiredTimer, Function, FunctionPre, Outcome};
use crate::effects::Output;
use crate::failure::HostError;
use crate::limits::Limits;
use crate::record::Record;
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
    /// Deploy-time configuration the guest can read.
    pub config: Arc<BTreeMap<String, String>>,
    /// Topics the guest may emit to.
    pub outputs: Arc<BTreeSet<String>>,
    /// The deployment's limits.
    pub limits: Limits,
    /// Largest record the log accepts, in bytes.
    pub max_record_bytes: usize,
    /// Receives guest log lines.
    pub log: LogSink,
}

/// The per-call context of the host imports.
struct Call {
    state: PartitionState,
    partition: u32,
    offsets: Option<(u64, u64)>,
    /// Stream time of the call, the timestamp of records emitted without one.
    stream_time_ms: i64,
    max_outputs: u64,
    max_output_bytes: u64,
    outputs: u64,
    output_bytes: u64,
}

/// The state view handed back after a call, with the call's value and the fuel it burnt,
/// or what made it fail.
pub type CallResult<T> = (PartitionState, Result<(T, u64), CallFailure>);

/// Where a call happens: what its imports need to know.
struct CallSite {
    partition: u32,
    offsets: Option<(u64, u64)>,
    stream_time_ms: i64,
    events: usize,
}

/// Store data of an instance.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    shared: InstanceConfig,
    memory_limit: usize,
    memory_exceeded: bool,
    stderr: StderrTail,
    call: Option<Call>,
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

/// A live instance and its store.
pub struct Instance {
    store: Store<InstanceState>,
    function: Function,
    fuel_budget: u64,
}

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
    /// Instantiates `pre` with the sandbox and limits of `shared`. `seed` makes the
    /// guest's random numbers repeatable.
    pub fn new(
        engine: &wasmtime::Engine,
        pre: &FunctionPre<InstanceState>,
        shared: InstanceConfig,
        seed: u64,
    ) -> Result<Instance> {
        let stderr = StderrTail::default();
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .wall_clock(StillClock)
            .monotonic_clock(StillClock)
            .secure_random(rand::rngs::StdRng::seed_from_u64(seed))
            .insecure_random(rand::rngs::StdRng::seed_from_u64(seed.rotate_left(17)))
            .insecure_random_seed(u128::from(seed))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let memory_limit = shared.limits.memory_mib as usize * 1024 * 1024;
        let data = InstanceState {
            wasi,
            table: ResourceTable::new(),
            shared,
            memory_limit,
            memory_exceeded: false,
            stderr,
            call: None,
        };
        let mut store = Store::new(engine, data);
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        store
            .set_fuel(u64::MAX)
            .map_err(anyhow::Error::from)
            .context("setting fuel")?;
        store.epoch_deadline_trap();
        store.set_epoch_deadline(u64::MAX / 2);
        let function = pre
            .instantiate(&mut store)
            .map_err(anyhow::Error::from)
            .context("instantiating the function")?;
        Ok(Instance {
            store,
            function,
            fuel_budget: 0,
        })
    }

    /// Calls the handler on `events` with `state`, under the budget of `events.len()`
    /// events. Returns the outcomes and hands `state` back either way.
    pub fn handle(
        &mut self,
        state: PartitionState,
        events: &[Event],
        deadline_ticks: u64,
    ) -> CallResult<Vec<Outcome>> {
        let offsets = events
            .first()
            .zip(events.last())
            .map(|(a, b)| (a.offset, b.offset));
        let site = CallSite {
            partition: events.first().map_or(0, |e| e.partition),
            offsets,
            stream_time_ms: events.last().map_or(0, |e| e.stream_time_ms),
            events: events.len().max(1),
        };
        self.begin(state, site, deadline_ticks);
        let result = self
            .function
            .streamfn_function_handler()
            .call_handle(&mut self.store, events);
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
        deadline_ticks: u64,
    ) -> CallResult<Result<(), String>> {
        let site = CallSite {
            partition,
            offsets: None,
            stream_time_ms,
            events: fired.len().max(1),
        };
        self.begin(state, site, deadline_ticks);
        let result = self
            .function
            .streamfn_function_handler()
            .call_on_timers(&mut self.store, fired);
        self.finish(result)
    }

    fn begin(&mut self, state: PartitionState, site: CallSite, deadline_ticks: u64) {
        let limits = &self.store.data().shared.limits;
        let n = site.events as u64;
        let fuel = limits.fuel_per_event.saturating_mul(n);
        let call = Call {
            state,
            partition: site.partition,
            offsets: site.offsets,
            stream_time_ms: site.stream_time_ms,
            max_outputs: u64::from(limits.max_outputs_per_event).saturating_mul(n),
            max_output_bytes: limits.max_output_bytes_per_event.saturating_mul(n),
            outputs: 0,
            output_bytes: 0,
        };
        let data = self.store.data_mut();
        data.call = Some(call);
        data.memory_exceeded = false;
        // Setting fuel only fails when fuel is not enabled, which the engine always is.
        let _ = self.store.set_fuel(fuel);
        self.store.set_epoch_deadline(deadline_ticks);
        self.fuel_budget = fuel;
    }

    fn finish<T>(
        &mut self,
        result: wasmtime::Result<T>,
    ) -> (PartitionState, Result<(T, u64), CallFailure>) {
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

impl InstanceState {
    fn call(&mut self) -> &mut Call {
        // Imports only run inside a call, which `begin` sets up.
        self.call
            .as_mut()
            .unwrap_or_else(|| unreachable!("import called outside a call"))
    }
}

fn storage(err: anyhow::Error) -> wasmtime::Error {
    wasmtime::Error::new(HostError::Storage(format!("{err:#}")))
}

impl types::Host for InstanceState {}

impl state::Host for InstanceState {
    fn get(&mut self, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        self.call().state.get(&key).map_err(storage)
    }

    fn set(&mut self, key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
        self.call().state.set(key, Some(value));
        Ok(())
    }

    fn delete(&mut self, key: Vec<u8>) -> wasmtime::Result<()> {
        self.call().state.set(key, None);
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

/// A clock that stands still (the wall clock at the epoch): guests get time only from
/// events and stream time, so that a replay sees the same times.
struct StillClock;

impl wasmtime_wasi::HostWallClock for StillClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for StillClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }

    // Not zero: Go's runtime refuses to start on a monotonic clock that reads 0.
    fn now(&self) -> u64 {
        1
    }
}

/// The guest's stderr: keeps only the last few KiB (where a panic message is) and never
/// refuses a write, so a chatty guest cannot fail by logging.
#[derive(Clone, Default)]
struct StderrTail(Arc<Mutex<VecDeque<u8>>>);

const STDERR_TAIL: usize = 4096;

impl StderrTail {
    fn push(&self, bytes: &[u8]) {
        let mut tail = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        tail.extend(bytes);
        let excess = tail.len().saturating_sub(STDERR_TAIL);
        tail.drain(..excess);
    }

    fn text(&self) -> String {
        let tail = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        let bytes: Vec<u8> = tail.iter().copied().collect();
        String::from_utf8_lossy(&bytes).trim().to_owned()
    }
}

impl wasmtime_wasi::cli::IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for StderrTail {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl wasmtime_wasi::p2::OutputStream for StderrTail {
    fn write(&mut self, bytes: bytes::Bytes) -> wasmtime_wasi::p2::StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> wasmtime_wasi::p2::StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> wasmtime_wasi::p2::StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl wasmtime_wasi::p2::Pollable for StderrTail {
    async fn ready(&mut self) {}
}
