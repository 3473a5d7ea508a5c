//! Runs one batch of a partition through a function: decodes the input values by their
//! topics' formats (one that does not decode is dead-lettered unseen), hands the events
//! to an instance, fires timers as stream time passes them (`timers.rs`), and when a call
//! fails finds the event that caused it by splitting the batch (`bisect.rs`), so that
//! only that event is dead-lettered (`dead_letter.rs`, with the failure classified by
//! `classify.rs`) and the effects of every other event are kept. Knows nothing of where
//! records come from or go.

mod bisect;
mod classify;
pub mod dead_letter;
mod timers;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use prometheus_client::metrics::gauge::Gauge;

pub use self::dead_letter::{DeadLetter, DeadLetterTopic, Origin};
use crate::model::event::InputEvent;
use crate::model::failure::{Failure, FailureKind};
use crate::model::limits::Limits;
use crate::model::record::Record;
use crate::sandbox::bindings::{Event, FiredTimer, Header, Outcome};
use crate::sandbox::{
    CallFailure, CallResult, Engine, Instance, InstanceConfig, LoadedComponent, PoolFull,
};
use crate::schema::{Decoder, Encoder};
use crate::state::PartitionState;

/// A live function instance the dispatcher calls: the sandbox's, or a fake in tests.
pub trait Guest: Send {
    /// Calls the handler on `events` over `state`; hands `state` back either way.
    fn handle(&mut self, state: PartitionState, events: &[Event]) -> CallResult<Vec<Outcome>>;

    /// Calls the timer handler on `fired` at `stream_time_ms`.
    fn on_timers(
        &mut self,
        state: PartitionState,
        partition: u32,
        stream_time_ms: i64,
        fired: &[FiredTimer],
    ) -> CallResult<Result<(), String>>;
}

impl Guest for Instance {
    fn handle(&mut self, state: PartitionState, events: &[Event]) -> CallResult<Vec<Outcome>> {
        Instance::handle(self, state, events)
    }

    fn on_timers(
        &mut self,
        state: PartitionState,
        partition: u32,
        stream_time_ms: i64,
        fired: &[FiredTimer],
    ) -> CallResult<Result<(), String>> {
        Instance::on_timers(self, state, partition, stream_time_ms, fired)
    }
}

/// Makes instances of one deployment, for every worker that runs one of its partitions.
pub trait Guests: Send + Sync {
    /// A fresh instance.
    fn instantiate(&self) -> Result<Box<dyn Guest>>;
}

/// Instances of a component in the sandbox.
pub struct Sandboxed {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The component.
    pub component: LoadedComponent,
    /// The deployment's configuration and limits.
    pub config: InstanceConfig,
}

/// Longest a call waits for an instance slot of the replica to come free.
const SLOT_WAIT: Duration = Duration::from_secs(5);

impl Guests for Sandboxed {
    fn instantiate(&self) -> Result<Box<dyn Guest>> {
        let deadline = Instant::now() + SLOT_WAIT;
        loop {
            match self
                .engine
                .instantiate(&self.component, self.config.clone())
            {
                Ok(instance) => return Ok(Box::new(instance)),
                Err(err) if err.is::<PoolFull>() && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err) => return Err(err),
            }
        }
    }
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
    guests: Arc<dyn Guests>,
    limits: Limits,
    decoder: Arc<Decoder>,
    encoder: Arc<Encoder>,
    instance: Option<Box<dyn Guest>>,
    instances: Gauge,
}

/// Whether a run of events goes on after a range, stops at an event that asked for a
/// retry, or was cut short before an event because a timer it scheduled came due there.
enum Flow {
    Continue,
    Stopped,
    /// The events before this index are handled; the timers due now fire before the rest.
    Until(usize),
}

impl Dispatcher {
    /// A dispatcher over instances made by `guests`, under `limits`; `instances` counts
    /// its live instance.
    pub fn new(guests: Arc<dyn Guests>, limits: Limits, instances: Gauge) -> Self {
        Dispatcher {
            guests,
            limits,
            decoder: Arc::default(),
            encoder: Arc::default(),
            instance: None,
            instances,
        }
    }

    /// The same dispatcher, decoding input values with `decoder` before each call, and
    /// readying `encoder` (the one its instances encode outputs with) before each batch.
    pub fn with_formats(mut self, decoder: Arc<Decoder>, encoder: Arc<Encoder>) -> Self {
        self.decoder = decoder;
        self.encoder = encoder;
        self
    }

    /// A dispatcher of `component` in the sandbox of `engine`.
    pub fn sandboxed(
        engine: Arc<Engine>,
        component: LoadedComponent,
        config: InstanceConfig,
        instances: Gauge,
    ) -> Self {
        let limits = config.limits.clone();
        let guests = Sandboxed {
            engine,
            component,
            config,
        };
        Dispatcher::new(Arc::new(guests), limits, instances)
    }

    /// Another dispatcher of the same deployment, with an instance of its own: for
    /// running a second partition at the same time.
    pub fn sibling(&self) -> Dispatcher {
        Dispatcher::new(
            self.guests.clone(),
            self.limits.clone(),
            self.instances.clone(),
        )
        .with_formats(self.decoder.clone(), self.encoder.clone())
    }

    /// Runs `batch` over `state`. An error means the batch must be abandoned (storage
    /// failed, no instance could be made, the schema registry could not be reached) and
    /// nothing of it committed.
    pub fn run(&mut self, state: PartitionState, batch: Batch) -> Result<Dispatched> {
        self.encoder.prepare()?;
        let mut run = Run::new(self, state, batch)?;
        run.all()?;
        let Run { state, out, .. } = run;
        Ok(Dispatched {
            state: state.unwrap_or_else(|| unreachable!("state is returned after every call")),
            report: out,
        })
    }

    /// Drops the live instance; the next call makes a fresh one. After a failure, and
    /// after a host error that may have left it anywhere.
    pub fn discard(&mut self) {
        if self.instance.take().is_some() {
            self.instances.dec();
        }
    }

    fn instance(&mut self) -> Result<&mut Box<dyn Guest>> {
        if self.instance.is_none() {
            self.instance = Some(self.guests.instantiate()?);
            self.instances.inc();
        }
        self.instance.as_mut().ok_or_else(|| anyhow!("no instance"))
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.discard();
    }
}

/// Makes one call on the dispatcher's instance with the state view taken out of `state`
/// and handed back after. The outer error is the host's: no instance could be made.
fn with_instance<T>(
    dispatcher: &mut Dispatcher,
    state: &mut Option<PartitionState>,
    call: impl FnOnce(&mut dyn Guest, PartitionState) -> CallResult<T>,
) -> Result<Result<(T, u64), CallFailure>> {
    let view = state
        .take()
        .unwrap_or_else(|| unreachable!("state is present between calls"));
    let instance = match dispatcher.instance() {
        Ok(instance) => instance,
        Err(err) => {
            *state = Some(view);
            return Err(err);
        }
    };
    let (view, result) = call(instance.as_mut(), view);
    *state = Some(view);
    Ok(result)
}

/// One batch under way.
struct Run<'a> {
    dispatcher: &'a mut Dispatcher,
    /// Taken out for each call and handed back after it.
    state: Option<PartitionState>,
    partition: u32,
    events: Vec<Event>,
    /// The records as they came, of events whose values were decoded: what a dead
    /// letter carries.
    originals: BTreeMap<usize, Record>,
    /// Events whose values do not decode, with why.
    undecodable: BTreeMap<usize, String>,
    retries_spent: Option<usize>,
    out: BatchReport,
}

impl<'a> Run<'a> {
    fn new(dispatcher: &'a mut Dispatcher, state: PartitionState, batch: Batch) -> Result<Self> {
        let retries_spent = batch.retries_spent.and_then(|(topic, offset)| {
            batch
                .events
                .iter()
                .position(|e| e.topic == topic && e.offset == offset)
        });
        let decoder = dispatcher.decoder.clone();
        let mut originals = BTreeMap::new();
        let mut undecodable = BTreeMap::new();
        let mut stream_time = batch.stream_time_ms;
        let mut events = Vec::with_capacity(batch.events.len());
        for (index, input) in batch.events.into_iter().enumerate() {
            let InputEvent {
                topic,
                offset,
                mut record,
            } = input;
            let original = decoder.transforms(&topic).then(|| record.clone());
            match decoder.decode(&topic, &mut record)? {
                Ok(()) => {
                    if let Some(original) = original {
                        originals.insert(index, original);
                    }
                }
                Err(why) => {
                    undecodable.insert(index, why);
                }
            }
            stream_time = stream_time.max(record.timestamp_ms);
            events.push(Event {
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
            });
        }
        Ok(Run {
            dispatcher,
            state: Some(state),
            partition: batch.partition,
            events,
            originals,
            undecodable,
            retries_spent,
            out: BatchReport {
                stream_time_ms: batch.stream_time_ms,
                ..BatchReport::default()
            },
        })
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
            let mut end = self.segment_end(next)?;
            if let Some(why) = self.undecodable.remove(&next) {
                // Never handed to the function: it could not read it.
                self.dead_letter_event(next, Failure::new(FailureKind::DecodeError, why));
                end = next + 1;
            } else {
                if let Some((&undecodable, _)) = self.undecodable.range(next..end).next() {
                    end = undecodable;
                }
                match self.range(next, end)? {
                    Flow::Stopped => break,
                    Flow::Until(cut) => end = cut,
                    Flow::Continue => {}
                }
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
}

#[cfg(test)]
mod tests;
