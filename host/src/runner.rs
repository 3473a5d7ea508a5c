//! Runs one deployed function on the embedded log: a thread that, partition by
//! partition, fetches what is new on the inputs, hands it to the dispatcher and commits
//! the result with the input offsets. It swaps in a new version between batches and
//! holds back an event that asked for a retry until its backoff has passed.

use std::collections::BTreeMap;
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::bindings::streamfn::function::log::Level;
use crate::dispatch::{Batch, BatchStats, DeadLetter, Dispatcher, InputEvent, Source};
use crate::effects::Output;
use crate::embedded::{Commit, EmbeddedLog, TopicMeta};
use crate::engine::Engine;
use crate::instance::{InstanceConfig, LogLine, LogSink};
use crate::metrics::Metrics;
use crate::registry::{Deployment, Registry};
use crate::state::{PartitionState, StateCache};

/// What every runner of a replica shares.
#[derive(Clone)]
pub struct RunnerContext {
    /// The log and store.
    pub log: Arc<EmbeddedLog>,
    /// The wasm engine.
    pub engine: Arc<Engine>,
    /// Deployments.
    pub registry: Arc<Registry>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// A running function's thread.
pub struct RunnerHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RunnerHandle {
    /// Starts running `name`.
    pub fn start(context: RunnerContext, name: String) -> Result<RunnerHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fn-{name}"))
            .spawn(move || Runner::new(context, name, flag).run())
            .context("starting a runner thread")?;
        Ok(RunnerHandle {
            stop,
            thread: Some(thread),
        })
    }

    /// Whether the thread has ended (the function was undeployed).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops the runner after its current batch and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The loaded version of the function.
struct Active {
    deployment: Deployment,
    dispatcher: Dispatcher,
    inputs: Vec<TopicMeta>,
    partitions: u32,
    caches: BTreeMap<u32, StateCache>,
}

/// An event held back after it asked for a retry.
struct Held {
    topic: String,
    offset: u64,
    attempts: u32,
    until: Instant,
}

struct Runner {
    context: RunnerContext,
    name: String,
    stop: Arc<AtomicBool>,
    active: Option<Active>,
    held: BTreeMap<u32, Held>,
}

/// Events one commit covers at most: more batches per commit spread the cost of making
/// it durable.
const COMMIT_EVENTS: usize = 5000;

/// How long batches may run before their commit, which bounds the latency it adds.
const COMMIT_AFTER: Duration = Duration::from_millis(50);

/// Longest wait for new records before checking for a new version or a stop.
const IDLE_WAIT: Duration = Duration::from_millis(200);

impl Runner {
    fn new(context: RunnerContext, name: String, stop: Arc<AtomicBool>) -> Self {
        Runner {
            context,
            name,
            stop,
            active: None,
            held: BTreeMap::new(),
        }
    }

    fn run(mut self) {
        tracing::info!(function = %self.name, "runner started");
        while !self.stop.load(Ordering::Relaxed) {
            let Some(deployment) = self.context.registry.current(&self.name) else {
                tracing::info!(function = %self.name, "undeployed; runner stops");
                return;
            };
            if self.active.as_ref().map(|a| a.deployment.version) != Some(deployment.version) {
                match self.activate(deployment) {
                    Ok(active) => {
                        tracing::info!(function = %self.name, version = active.deployment.version, "version active");
                        self.active = Some(active);
                    }
                    Err(err) => {
                        tracing::error!(function = %self.name, "cannot load the function: {err:#}");
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                }
            }
            let generation = self.context.log.append_generation();
            match self.pass() {
                Ok(true) => {}
                Ok(false) => {
                    let wait = self.next_release().map_or(IDLE_WAIT, |d| d.min(IDLE_WAIT));
                    self.context.log.wait_for_append(generation, wait);
                }
                Err(err) => {
                    tracing::error!(function = %self.name, "batch abandoned, will run again: {err:#}");
                    // The instance may be in any state after a host failure.
                    self.active = None;
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }

    fn activate(&self, deployment: Deployment) -> Result<Active> {
        let spec = &deployment.spec;
        let bytes = self
            .context
            .log
            .artifact(&spec.component)?
            .with_context(|| format!("component {} is missing from the store", spec.component))?;
        let component = self.context.engine.load(&bytes)?;
        let inputs = spec
            .inputs
            .iter()
            .map(|t| self.context.log.require_topic(t))
            .collect::<Result<Vec<_>>>()?;
        let partitions = inputs.first().map_or(0, |t| t.partitions);
        let mut outputs: std::collections::BTreeSet<String> =
            spec.outputs.iter().cloned().collect();
        outputs.remove(&spec.dlq_topic());
        let config = InstanceConfig {
            config: Arc::new(spec.config.clone()),
            outputs: Arc::new(outputs),
            limits: spec.limits.clone(),
            max_record_bytes: self.context.log.config().max_record_bytes,
            log: guest_log_sink(spec.name.clone(), deployment.version),
        };
        let mut hasher = std::hash::DefaultHasher::new();
        spec.name.hash(&mut hasher);
        let dispatcher = Dispatcher::new(
            self.context.engine.clone(),
            component,
            config,
            hasher.finish(),
        );
        Ok(Active {
            deployment,
            dispatcher,
            inputs,
            partitions,
            caches: BTreeMap::new(),
        })
    }

    /// Time until the earliest held event may be delivered again.
    fn next_release(&self) -> Option<Duration> {
        let now = Instant::now();
        self.held
            .values()
            .map(|h| h.until.saturating_duration_since(now))
            .min()
    }

    /// One batch for every partition with something to do. Returns whether any had.
    fn pass(&mut self) -> Result<bool> {
        let partitions = self.active.as_ref().map_or(0, |a| a.partitions);
        let mut worked = false;
        for partition in 0..partitions {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            if self
                .held
                .get(&partition)
                .is_some_and(|h| h.until > Instant::now())
            {
                continue;
            }
            worked |= self.partition(partition)?;
        }
        Ok(worked)
    }

    /// Runs batches of `partition` until there is nothing new, an event asks for a
    /// retry, or enough work is done, and commits them in one transaction.
    fn partition(&mut self, partition: u32) -> Result<bool> {
        let started = Instant::now();
        let log = self.context.log.clone();
        let Some(active) = self.active.as_mut() else {
            return Ok(false);
        };
        let spec = &active.deployment.spec;
        let max = spec.limits.max_batch as usize;
        let mut positions: BTreeMap<String, u64> = BTreeMap::new();
        for topic in &active.inputs {
            let from = log.committed(&spec.name, topic, partition)?.unwrap_or(0);
            positions.insert(topic.name.clone(), from);
        }
        let mut events = fetch_merged(&log, &active.inputs, partition, &positions, max)?;
        if events.is_empty() {
            return Ok(false);
        }
        let mut retries_spent = self
            .held
            .get(&partition)
            .filter(|h| h.attempts >= spec.limits.max_retries)
            .map(|h| (h.topic.clone(), h.offset));
        let mut stream_time_ms = log.stream_time(&spec.name, partition)?;
        let cache = active.caches.entry(partition).or_default();
        let mut state =
            PartitionState::new(cache.over(log.partition_state(&spec.name, partition)?));
        let mut dead_letters = Vec::new();
        let mut stats = BatchStats::default();
        let mut processed = 0;
        let mut retry = None;
        loop {
            let fetched = events.len();
            let consumed: Vec<(String, u64)> =
                events.iter().map(|e| (e.topic.clone(), e.offset)).collect();
            let batch = Batch {
                partition,
                events,
                stream_time_ms,
                retries_spent: retries_spent.take(),
            };
            let done = active.dispatcher.run(state, batch)?;
            state = done.state;
            let report = done.report;
            for (topic, offset) in &consumed[..report.processed] {
                positions.insert(topic.clone(), offset + 1);
            }
            stream_time_ms = report.stream_time_ms;
            processed += report.processed;
            stats.absorb(&report.stats);
            dead_letters.extend(report.dead_letters);
            if report.retry.is_some() {
                retry = report.retry;
                break;
            }
            if fetched < max || processed >= COMMIT_EVENTS || started.elapsed() >= COMMIT_AFTER {
                break;
            }
            events = fetch_merged(&log, &active.inputs, partition, &positions, max)?;
            if events.is_empty() {
                break;
            }
        }

        let mut effects = state.accepted;
        let outputs = effects.outputs.len();
        let dlq = spec.dlq_topic();
        for dead in &dead_letters {
            effects
                .outputs
                .push(dead_letter(&active.deployment, &dlq, partition, dead));
            tracing::warn!(function = %spec.name, partition, kind = %dead.failure.kind, "dead-lettered: {}", dead.failure.reason);
        }
        let committed = log.commit(Commit {
            group: &spec.name,
            partition,
            offsets: positions.into_iter().collect(),
            stream_time_ms,
            effects: &effects,
        });
        let cache = active.caches.entry(partition).or_default();
        match committed {
            Ok(()) => cache.apply(&effects.state),
            Err(err) => {
                cache.clear();
                return Err(err);
            }
        }
        self.context.metrics.record_batch(
            &spec.name,
            active.deployment.version,
            processed,
            outputs,
            &stats,
            started.elapsed().as_secs_f64(),
        );

        match retry {
            Some(retry) => {
                let attempts = self
                    .held
                    .get(&partition)
                    .filter(|h| h.topic == retry.topic && h.offset == retry.offset)
                    .map_or(1, |h| h.attempts + 1);
                let backoff = spec.limits.backoff(attempts);
                tracing::info!(function = %spec.name, partition, offset = retry.offset, attempts, "retry requested: {}", retry.reason);
                self.held.insert(
                    partition,
                    Held {
                        topic: retry.topic,
                        offset: retry.offset,
                        attempts,
                        until: Instant::now() + backoff,
                    },
                );
            }
            None => {
                self.held.remove(&partition);
            }
        }
        Ok(processed > 0)
    }
}

/// Up to `max` records of `partition` of every input from `positions`, merged in
/// timestamp order (ties in input order), as Kafka Streams picks among co-partitioned
/// inputs.
fn fetch_merged(
    log: &EmbeddedLog,
    inputs: &[TopicMeta],
    partition: u32,
    positions: &BTreeMap<String, u64>,
    max: usize,
) -> Result<Vec<InputEvent>> {
    let mut queues = Vec::with_capacity(inputs.len());
    for topic in inputs {
        let from = positions.get(&topic.name).copied().unwrap_or(0);
        let fetched = log.fetch(topic, partition, from, max)?;
        queues.push(fetched.records.into_iter().peekable());
    }
    if queues.len() == 1 {
        let topic = &inputs[0].name;
        return Ok(queues
            .pop()
            .into_iter()
            .flatten()
            .map(|(offset, record)| InputEvent {
                topic: topic.clone(),
                offset,
                record,
            })
            .collect());
    }
    let mut merged = Vec::new();
    while merged.len() < max {
        let next = queues
            .iter_mut()
            .enumerate()
            .filter_map(|(i, q)| q.peek().map(|(_, r)| (r.timestamp_ms, i)))
            .min();
        let Some((_, i)) = next else { break };
        let Some((offset, record)) = queues[i].next() else {
            break;
        };
        merged.push(InputEvent {
            topic: inputs[i].name.clone(),
            offset,
            record,
        });
    }
    Ok(merged)
}

/// The dead-letter record of a failed event: the original record with headers that say
/// what failed, where and why.
fn dead_letter(deployment: &Deployment, dlq: &str, partition: u32, dead: &DeadLetter) -> Output {
    let mut record = dead.record.clone();
    let mut add =
        |name: &str, value: String| record.headers.push((name.to_owned(), value.into_bytes()));
    add("streamfn.function", deployment.spec.name.clone());
    add("streamfn.version", deployment.version.to_string());
    add(
        "streamfn.failure.kind",
        dead.failure.kind.as_str().to_owned(),
    );
    add("streamfn.failure.reason", dead.failure.reason.clone());
    add("streamfn.source.partition", partition.to_string());
    match &dead.source {
        Source::Event { topic, offset } => {
            add("streamfn.source.topic", topic.clone());
            add("streamfn.source.offset", offset.to_string());
        }
        Source::Timer { at_ms, .. } => {
            add("streamfn.source.timer", at_ms.to_string());
        }
    }
    Output {
        topic: dlq.to_owned(),
        fallback_partition: partition,
        record,
    }
}

fn guest_log_sink(function: String, version: u32) -> LogSink {
    Arc::new(move |line: LogLine| {
        let LogLine {
            level,
            message,
            partition,
            offsets,
        } = line;
        let (first, last) = offsets;
        match level {
            Level::Debug => {
                tracing::debug!(target: "guest", %function, version, partition, first, last, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "guest", %function, version, partition, first, last, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "guest", %function, version, partition, first, last, "{message}")
            }
            Level::Error => {
                tracing::error!(target: "guest", %function, version, partition, first, last, "{message}")
            }
        }
    })
}
