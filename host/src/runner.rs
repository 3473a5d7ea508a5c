//! Runs one deployed function: a thread that, partition by partition, takes what is new
//! on the inputs from the function's source, hands it to the dispatcher and commits the
//! result with the input positions. It swaps in a new version between batches and holds
//! back an event that asked for a retry until its backoff has passed.

use std::collections::BTreeMap;
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::bindings::streamfn::function::log::Level;
use crate::dispatch::{Batch, BatchStats, DeadLetter, Dispatcher, Origin, RetryRequest};
use crate::effects::{Effects, Output};
use crate::engine::Engine;
use crate::instance::{InstanceConfig, LogLine, LogSink};
use crate::logbook::LogBook;
use crate::metrics::Metrics;
use crate::registry::{Deployment, Registry};
use crate::source::{Backend, Commit, Positions, Source};
use crate::state::PartitionState;

/// What every runner of a replica shares.
#[derive(Clone)]
pub struct RunnerContext {
    /// Where functions' inputs and outputs live.
    pub backend: Arc<dyn Backend>,
    /// The wasm engine.
    pub engine: Arc<Engine>,
    /// Deployments.
    pub registry: Arc<Registry>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Guest log lines.
    pub logs: Arc<LogBook>,
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
    source: Box<dyn Source>,
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
                let previous = self.active.take();
                match self.activate(deployment, previous) {
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
            match self.pass() {
                Ok(true) => {}
                Ok(false) => {
                    let wait = self.next_release().map_or(IDLE_WAIT, |d| d.min(IDLE_WAIT));
                    if let Some(active) = self.active.as_mut() {
                        active.source.wait(wait);
                    }
                }
                Err(err) => {
                    tracing::error!(function = %self.name, "batch abandoned, will run again: {err:#}");
                    // The instance and the source may be in any state after a host failure.
                    self.active = None;
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }

    /// Loads `deployment`, keeping the source of the version it replaces when the inputs
    /// are the same (with Kafka, that keeps the consumer group's assignment).
    fn activate(&self, deployment: Deployment, previous: Option<Active>) -> Result<Active> {
        let spec = &deployment.spec;
        let bytes = self
            .context
            .registry
            .artifact(&spec.component)?
            .with_context(|| format!("component {} is not in the registry yet", spec.component))?;
        let component = self.context.engine.load(&bytes)?;
        let source = match previous {
            Some(previous) if previous.deployment.spec.inputs == spec.inputs => previous.source,
            _ => self.context.backend.source(&deployment)?,
        };
        let mut outputs: std::collections::BTreeSet<String> =
            spec.outputs.iter().cloned().collect();
        outputs.remove(&spec.dlq_topic());
        let config = InstanceConfig {
            config: Arc::new(spec.config.clone()),
            outputs: Arc::new(outputs),
            limits: spec.limits.clone(),
            max_record_bytes: self.context.backend.max_record_bytes(),
            log: guest_log_sink(
                spec.name.clone(),
                deployment.version,
                self.context.logs.clone(),
            ),
        };
        let mut hasher = std::hash::DefaultHasher::new();
        spec.name.hash(&mut hasher);
        let instances = self
            .context
            .metrics
            .instances
            .get_or_create(&crate::metrics::FunctionLabels {
                function: spec.name.clone(),
                version: deployment.version.to_string(),
            })
            .clone();
        let dispatcher = Dispatcher::new(
            self.context.engine.clone(),
            component,
            config,
            hasher.finish(),
            instances,
        );
        Ok(Active {
            deployment,
            dispatcher,
            source,
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

    /// A run of batches for every partition with something to do, committed together in
    /// one transaction. Returns whether any partition had something.
    fn pass(&mut self) -> Result<bool> {
        let started = Instant::now();
        let Some(active) = self.active.as_mut() else {
            return Ok(false);
        };
        let partitions = active.source.partitions()?;
        let mut runs = Vec::new();
        for partition in partitions {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let held = self.held.get(&partition);
            if held.is_some_and(|h| h.until > Instant::now()) {
                continue;
            }
            let retries_spent = held
                .filter(|h| h.attempts >= active.deployment.spec.limits.max_retries)
                .map(|h| (h.topic.clone(), h.offset));
            if let Some(run) = run_partition(active, partition, retries_spent, started)? {
                runs.push(run);
            }
        }
        if runs.is_empty() {
            return Ok(false);
        }
        let spec = &active.deployment.spec;
        let commits = runs
            .iter()
            .map(|run| Commit {
                group: &spec.name,
                partition: run.partition,
                offsets: run.positions.iter().map(|(t, o)| (t.clone(), *o)).collect(),
                stream_time_ms: run.stream_time_ms,
                effects: &run.effects,
            })
            .collect();
        active.source.commit(commits)?;
        let seconds = started.elapsed().as_secs_f64();
        for run in runs {
            self.context.metrics.record_batch(
                &spec.name,
                active.deployment.version,
                run.processed,
                run.outputs,
                &run.stats,
                seconds,
            );
            settle_retry(&mut self.held, run.partition, run.retry, &active.deployment);
        }
        Ok(true)
    }
}

/// Holds back an event that asked for a retry, or releases a partition whose held
/// event went through.
fn settle_retry(
    held: &mut BTreeMap<u32, Held>,
    partition: u32,
    retry: Option<RetryRequest>,
    deployment: &Deployment,
) {
    let Some(retry) = retry else {
        held.remove(&partition);
        return;
    };
    let attempts = held
        .get(&partition)
        .filter(|h| h.topic == retry.topic && h.offset == retry.offset)
        .map_or(1, |h| h.attempts + 1);
    let backoff = deployment.spec.limits.backoff(attempts);
    tracing::info!(function = %deployment.spec.name, partition, offset = retry.offset, attempts, "retry requested: {}", retry.reason);
    held.insert(
        partition,
        Held {
            topic: retry.topic,
            offset: retry.offset,
            attempts,
            until: Instant::now() + backoff,
        },
    );
}

/// A partition's run of batches, ready to commit.
struct Run {
    partition: u32,
    positions: Positions,
    stream_time_ms: i64,
    /// Accepted effects, dead letters included.
    effects: Effects,
    processed: usize,
    outputs: usize,
    stats: BatchStats,
    retry: Option<RetryRequest>,
}

/// Runs batches of `partition` until there is nothing new, an event asks for a retry, or
/// the pass that began at `started` has done enough.
fn run_partition(
    active: &mut Active,
    partition: u32,
    mut retries_spent: Option<(String, u64)>,
    started: Instant,
) -> Result<Option<Run>> {
    let spec = &active.deployment.spec;
    let max = spec.limits.max_batch as usize;
    let every = active.source.commit_every();
    let mut positions = active.source.positions(partition)?;
    let mut events = active.source.fetch(partition, &positions, max)?;
    if events.is_empty() {
        return Ok(None);
    }
    let (committed, mut stream_time_ms) = active.source.state(partition)?;
    let mut state = PartitionState::new(committed);
    let mut dead_letters = Vec::new();
    let mut stats = BatchStats::default();
    let mut processed = 0;
    let mut retry = None;
    loop {
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
        if processed >= every.events || started.elapsed() >= every.after {
            break;
        }
        events = active.source.fetch(partition, &positions, max)?;
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
    Ok(Some(Run {
        partition,
        positions,
        stream_time_ms,
        effects,
        processed,
        outputs,
        stats,
        retry,
    }))
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
    match &dead.origin {
        Origin::Event { topic, offset } => {
            add("streamfn.source.topic", topic.clone());
            add("streamfn.source.offset", offset.to_string());
        }
        Origin::Timer { at_ms, .. } => {
            add("streamfn.source.timer", at_ms.to_string());
        }
    }
    Output {
        topic: dlq.to_owned(),
        fallback_partition: partition,
        record,
    }
}

fn guest_log_sink(function: String, version: u32, book: Arc<LogBook>) -> LogSink {
    Arc::new(move |line: LogLine| {
        let (partition, offsets) = (line.partition, line.offsets);
        let message = &line.message;
        match line.level {
            Level::Debug => {
                tracing::debug!(target: "guest", %function, version, partition, ?offsets, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "guest", %function, version, partition, ?offsets, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "guest", %function, version, partition, ?offsets, "{message}")
            }
            Level::Error => {
                tracing::error!(target: "guest", %function, version, partition, ?offsets, "{message}")
            }
        }
        book.push(&function, version, line);
    })
}
