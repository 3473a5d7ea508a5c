//! Runs one batch of a partition through a function: hands the events to an instance,
//! fires timers as stream time passes them, and when a call fails finds out which event
//! caused it (by splitting the batch) so that only that event is dead-lettered and the
//! effects of every other event are kept. Knows nothing of where records come from or go.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};

use crate::bindings::{Event, FiredTimer, Header, Outcome};
use crate::engine::{Engine, LoadedComponent};
use crate::failure::{Failure, FailureKind, HostError};
use crate::instance::{CallFailure, Instance, InstanceConfig};
use crate::record::Record;
use crate::state::PartitionState;
use prometheus_client::metrics::gauge::Gauge;

/// A record read from an input topic.
#[derive(Debug, Clone)]
pub struct InputEvent {
    /// The input topic.
    pub topic: String,
    /// Offset in the topic partition.
    pub offset: u64,
    /// The record.
    pub record: Record,
}

/// Events of one partition to handle, in order.
pub struct Batch {
    /// The partition.
    pub partition: u32,
    /// The events, in the order they must be handled.
    pub events: Vec<InputEvent>,
    /// Stream time of the partition before these events.
    pub stream_time_ms: i64,
    /// The event (topic, offset) whose retries are spent: a retry outcome for it is a
    /// dead letter instead of another delivery.
    pub retries_spent: Option<(String, u64)>,
}

/// Where a dead letter came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An input record.
    Event {
        /// Its topic.
        topic: String,
        /// Its offset.
        offset: u64,
    },
    /// A timer whose handler failed.
    Timer {
        /// The timer key.
        key: Vec<u8>,
        /// Its time.
        at_ms: i64,
    },
}

/// A record that failed, with why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Where it came from.
    pub origin: Origin,
    /// The failed record (for a timer: its key, no value).
    pub record: Record,
    /// What went wrong.
    pub failure: Failure,
}

/// An event that asked to be delivered again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryRequest {
    /// Its topic.
    pub topic: String,
    /// Its offset.
    pub offset: u64,
    /// The reason the function gave.
    pub reason: String,
}

/// Counters of one batch.
#[derive(Debug, Default, Clone)]
pub struct BatchStats {
    /// Calls into the guest.
    pub calls: u64,
    /// Events handled successfully.
    pub handled: u64,
    /// Fuel burnt by all calls, failed ones included.
    pub fuel: u64,
    /// Timers fired successfully.
    pub timers_fired: u64,
    /// Failures by kind.
    pub failures: BTreeMap<FailureKind, u64>,
}

impl BatchStats {
    /// Adds the counts of a later batch.
    pub fn absorb(&mut self, other: &BatchStats) {
        self.calls += other.calls;
        self.handled += other.handled;
        self.fuel += other.fuel;
        self.timers_fired += other.timers_fired;
        for (kind, n) in &other.failures {
            *self.failures.entry(*kind).or_default() += n;
        }
    }
}

/// What came of a batch: its accepted effects (in the state view) are to be committed
/// together with the input offsets of the first `report.processed` events.
pub struct Dispatched {
    /// The partition's state view, with the batch's accepted effects.
    pub state: PartitionState,
    /// What happened to the events.
    pub report: BatchReport,
}

/// What happened to the events of a batch.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Events that failed for good.
    pub dead_letters: Vec<DeadLetter>,
    /// How many events, from the first, are done (handled or dead-lettered).
    pub processed: usize,
    /// Set when the event after the processed ones asked for a retry.
    pub retry: Option<RetryRequest>,
    /// Stream time after the processed events.
    pub stream_time_ms: i64,
    /// Counters.
    pub stats: BatchStats,
}

/// Runs batches of one deployment, keeping a live instance between them.
pub struct Dispatcher {
    engine: std::sync::Arc<Engine>,
    component: LoadedComponent,
    config: InstanceConfig,
    deadline_ticks: u64,
    seed: u64,
    instance: Option<Instance>,
    instances: Gauge,
}

enum Flow {
    Continue,
    Stopped,
}

/// At most this many rounds of timers fire between two events; a function that keeps
/// scheduling timers already due gets the rest after the next event.
const TIMER_ROUNDS: usize = 64;

impl Dispatcher {
    /// A dispatcher for `component` with the deployment's `config`. `seed` feeds the
    /// guest's random numbers; `instances` counts its live instance.
    pub fn new(
        engine: std::sync::Arc<Engine>,
        component: LoadedComponent,
        config: InstanceConfig,
        seed: u64,
        instances: Gauge,
    ) -> Self {
        let timeout = std::time::Duration::from_millis(config.limits.timeout_ms);
        Dispatcher {
            engine,
            component,
            config,
            deadline_ticks: Engine::deadline_ticks(timeout),
            seed,
            instance: None,
            instances,
        }
    }

    /// Runs `batch` over `state`. An error means the batch must be abandoned (storage
    /// failed, or no instance could be made) and nothing of it committed.
    pub fn run(&mut self, state: PartitionState, batch: Batch) -> Result<Dispatched> {
        let mut run = Run::new(self, state, batch);
        run.all()?;
        let Run { state, out, .. } = run;
        Ok(Dispatched {
            state: state.unwrap_or_else(|| unreachable!("state is returned after every call")),
            report: out,
        })
    }

    fn instance(&mut self) -> Result<&mut Instance> {
        if self.instance.is_none() {
            let instance =
                self.engine
                    .instantiate(&self.component, self.config.clone(), self.seed)?;
            self.instance = Some(instance);
            self.instances.inc();
        }
        self.instance.as_mut().ok_or_else(|| anyhow!("no instance"))
    }

    /// Drops the instance after a failure; the next call makes a fresh one.
    fn discard(&mut self) {
        if self.instance.take().is_some() {
            self.instances.dec();
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.discard();
    }
}

struct Run<'a> {
    dispatcher: &'a mut Dispatcher,
    state: Option<PartitionState>,
    partition: u32,
    events: Vec<Event>,
    retries_spent: Option<usize>,
    out: BatchReport,
}

impl<'a> Run<'a> {
    fn new(dispatcher: &'a mut Dispatcher, state: PartitionState, batch: Batch) -> Self {
        let retries_spent = batch.retries_spent.and_then(|(topic, offset)| {
            batch
                .events
                .iter()
                .position(|e| e.topic == topic && e.offset == offset)
        });
        let mut stream_time = batch.stream_time_ms;
        let events: Vec<Event> = batch
            .events
            .into_iter()
            .map(|input| {
                let InputEvent {
                    topic,
                    offset,
                    record,
                } = input;
                stream_time = stream_time.max(record.timestamp_ms);
                Event {
                    topic,
                    partition: batch.partition,
                    offset,
                    timestamp_ms: record.timestamp_ms,
                    stream_time_ms: stream_time,
                    key: record.key,
                    value: record.value,
                    headers: record
                        .headers
                        .into_iter()
                        .map(|(key, value)| Header { key, value })
                        .collect(),
                }
            })
            .collect();
        Run {
            dispatcher,
            state: Some(state),
            partition: batch.partition,
            events,
            retries_spent,
            out: BatchReport {
                stream_time_ms: batch.stream_time_ms,
                ..BatchReport::default()
            },
        }
    }

    fn state(&mut self) -> &mut PartitionState {
        self.state
            .as_mut()
            .unwrap_or_else(|| unreachable!("state is returned after every call"))
    }

    /// Handles every event, firing timers between them as stream time passes them.
    fn all(&mut self) -> Result<()> {
        let start_time = self.out.stream_time_ms;
        self.fire_due_timers(start_time)?;
        let mut next = 0;
        while next < self.events.len() {
            let end = self.segment_end(next)?;
            if let Flow::Stopped = self.range(next, end)? {
                break;
            }
            next = end;
            self.out.processed = end;
            self.out.stream_time_ms = self.events[end - 1].stream_time_ms;
            self.fire_due_timers(self.out.stream_time_ms)?;
        }
        Ok(())
    }

    /// The end of the segment starting at `start`: just after the first event whose stream
    /// time reaches the earliest pending timer, so that timer fires right after it.
    fn segment_end(&mut self, start: usize) -> Result<usize> {
        let Some(next_timer) = self.state().earliest_timer()? else {
            return Ok(self.events.len());
        };
        Ok(self.events[start..]
            .iter()
            .position(|e| e.stream_time_ms >= next_timer)
            .map_or(self.events.len(), |i| start + i + 1))
    }

    /// Runs events `lo..hi`, splitting on failure. Stops at an event that asks for a retry.
    fn range(&mut self, lo: usize, hi: usize) -> Result<Flow> {
        match self.call(lo, hi)? {
            Ok(outcomes) if outcomes.iter().all(|o| matches!(o, Outcome::Ok)) => {
                self.state().accept_current();
                self.out.stats.handled += (hi - lo) as u64;
                Ok(Flow::Continue)
            }
            Ok(outcomes) => {
                self.state().discard_current();
                if hi - lo == 1 {
                    let outcome = outcomes.into_iter().next().unwrap_or(Outcome::Ok);
                    return Ok(self.settle(lo, outcome));
                }
                // Events between the failed ones are run again without them, and each
                // failed one alone, since its outcome may have depended on the others.
                let mut start = lo;
                for (i, outcome) in outcomes.iter().enumerate() {
                    if matches!(outcome, Outcome::Ok) {
                        continue;
                    }
                    let failed = lo + i;
                    for (a, b) in [(start, failed), (failed, failed + 1)] {
                        if a < b && matches!(self.range(a, b)?, Flow::Stopped) {
                            return Ok(Flow::Stopped);
                        }
                    }
                    start = failed + 1;
                }
                if start < hi {
                    return self.range(start, hi);
                }
                Ok(Flow::Continue)
            }
            Err(failure) => {
                self.state().discard_current();
                if hi - lo == 1 {
                    self.dead_letter_event(lo, failure);
                    return Ok(Flow::Continue);
                }
                if failure.kind.is_exhaustion() {
                    // Halving would spend the whole deadline again at every step; one
                    // event at a time spends it once more, on the culprit alone.
                    for i in lo..hi {
                        if let Flow::Stopped = self.range(i, i + 1)? {
                            return Ok(Flow::Stopped);
                        }
                    }
                    return Ok(Flow::Continue);
                }
                let mid = lo + (hi - lo) / 2;
                if let Flow::Stopped = self.range(lo, mid)? {
                    return Ok(Flow::Stopped);
                }
                self.range(mid, hi)
            }
        }
    }

    /// What to do with a single event's non-ok outcome.
    fn settle(&mut self, index: usize, outcome: Outcome) -> Flow {
        match outcome {
            Outcome::Ok => Flow::Continue,
            Outcome::Reject(reason) => {
                self.dead_letter_event(index, Failure::new(FailureKind::Rejected, reason));
                Flow::Continue
            }
            Outcome::Retry(reason) if self.retries_spent == Some(index) => {
                self.dead_letter_event(index, Failure::new(FailureKind::RetryExhausted, reason));
                Flow::Continue
            }
            Outcome::Retry(reason) => {
                let event = &self.events[index];
                self.out.retry = Some(RetryRequest {
                    topic: event.topic.clone(),
                    offset: event.offset,
                    reason,
                });
                self.out.processed = index;
                if index > 0 {
                    self.out.stream_time_ms = self.events[index - 1].stream_time_ms;
                }
                Flow::Stopped
            }
        }
    }

    fn dead_letter_event(&mut self, index: usize, failure: Failure) {
        *self.out.stats.failures.entry(failure.kind).or_default() += 1;
        let event = &self.events[index];
        self.out.dead_letters.push(DeadLetter {
            origin: Origin::Event {
                topic: event.topic.clone(),
                offset: event.offset,
            },
            record: Record {
                timestamp_ms: event.timestamp_ms,
                key: event.key.clone(),
                value: event.value.clone(),
                headers: event
                    .headers
                    .iter()
                    .map(|h| (h.key.clone(), h.value.clone()))
                    .collect(),
            },
            failure,
        });
    }

    /// One call of the handler on events `lo..hi`. The outer error is fatal for the batch;
    /// the inner one is a failure of the guest.
    fn call(&mut self, lo: usize, hi: usize) -> Result<Result<Vec<Outcome>, Failure>> {
        let deadline = self.dispatcher.deadline_ticks;
        let state = self
            .state
            .take()
            .unwrap_or_else(|| unreachable!("state is present between calls"));
        let instance = match self.dispatcher.instance() {
            Ok(instance) => instance,
            Err(err) => {
                self.state = Some(state);
                return Err(err);
            }
        };
        let (state, result) = instance.handle(state, &self.events[lo..hi], deadline);
        self.state = Some(state);
        self.out.stats.calls += 1;
        match result {
            Ok((outcomes, fuel)) => {
                self.out.stats.fuel += fuel;
                if outcomes.len() != hi - lo {
                    self.dispatcher.discard();
                    return Ok(Err(Failure::new(
                        FailureKind::Trap,
                        format!(
                            "the handler returned {} outcomes for {} events",
                            outcomes.len(),
                            hi - lo
                        ),
                    )));
                }
                Ok(Ok(outcomes))
            }
            Err(failure) => {
                self.dispatcher.discard();
                Ok(Err(classify(failure, &self.dispatcher.config)?))
            }
        }
    }

    /// Fires timers due at `stream_time`, in rounds, as long as handlers schedule more.
    fn fire_due_timers(&mut self, stream_time: i64) -> Result<()> {
        for _ in 0..TIMER_ROUNDS {
            let due = self.state().due_timers(stream_time, 1000)?;
            if due.is_empty() {
                return Ok(());
            }
            // A fired timer is gone whatever its handler does.
            for (_, key) in &due {
                self.state().set_timer(key.clone(), None);
            }
            self.state().accept_current();
            let fired: Vec<FiredTimer> = due
                .into_iter()
                .map(|(at_ms, key)| FiredTimer { key, at_ms })
                .collect();
            self.timers(&fired, stream_time)?;
        }
        Ok(())
    }

    fn timers(&mut self, fired: &[FiredTimer], stream_time: i64) -> Result<()> {
        let deadline = self.dispatcher.deadline_ticks;
        let partition = self.partition;
        let state = self
            .state
            .take()
            .unwrap_or_else(|| unreachable!("state is present between calls"));
        let instance = match self.dispatcher.instance() {
            Ok(instance) => instance,
            Err(err) => {
                self.state = Some(state);
                return Err(err);
            }
        };
        let (state, result) = instance.on_timers(state, partition, stream_time, fired, deadline);
        self.state = Some(state);
        self.out.stats.calls += 1;
        let failure = match result {
            Ok((Ok(()), fuel)) => {
                self.out.stats.fuel += fuel;
                self.state().accept_current();
                self.out.stats.timers_fired += fired.len() as u64;
                return Ok(());
            }
            Ok((Err(reason), fuel)) => {
                self.out.stats.fuel += fuel;
                Failure::new(FailureKind::Rejected, reason)
            }
            Err(failure) => {
                self.dispatcher.discard();
                classify(failure, &self.dispatcher.config)?
            }
        };
        self.state().discard_current();
        if fired.len() > 1 {
            for timer in fired {
                self.timers(std::slice::from_ref(timer), stream_time)?;
            }
            return Ok(());
        }
        let timer = &fired[0];
        *self.out.stats.failures.entry(failure.kind).or_default() += 1;
        self.out.dead_letters.push(DeadLetter {
            origin: Origin::Timer {
                key: timer.key.clone(),
                at_ms: timer.at_ms,
            },
            record: Record {
                timestamp_ms: timer.at_ms,
                key: Some(timer.key.clone()),
                value: None,
                headers: Vec::new(),
            },
            failure,
        });
        Ok(())
    }
}

/// Turns a failed call into a classified failure, or an error when the host itself failed.
fn classify(failure: CallFailure, config: &InstanceConfig) -> Result<Failure> {
    let CallFailure {
        error,
        memory_exceeded,
        stderr,
    } = failure;
    if let Some(host) = error.downcast_ref::<HostError>() {
        return match host {
            HostError::Storage(_) => Err(anyhow!("{host}")),
            HostError::OutputDenied(reason) => {
                Ok(Failure::new(FailureKind::OutputDenied, reason.clone()))
            }
            HostError::OutOfMemory { .. } => {
                Ok(Failure::new(FailureKind::OutOfMemory, host.to_string()))
            }
        };
    }
    if memory_exceeded {
        return Ok(Failure::new(
            FailureKind::OutOfMemory,
            format!("memory limit of {} MiB exceeded", config.limits.memory_mib),
        ));
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => Ok(Failure::new(
            FailureKind::OutOfFuel,
            format!(
                "used up its fuel ({} per event)",
                config.limits.fuel_per_event
            ),
        )),
        Some(wasmtime::Trap::Interrupt) => Ok(Failure::new(
            FailureKind::Timeout,
            format!("ran past its deadline of {} ms", config.limits.timeout_ms),
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

/// Most of the guest's stderr a dead letter's reason carries.
const MAX_STDERR_IN_REASON: usize = 1000;
