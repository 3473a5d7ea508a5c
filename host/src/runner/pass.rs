//! One pass of a runner: for every partition with something to do, its new records and
//! committed state are read from the source and handed to the replica's workers as one
//! job, which runs them through a dispatcher of its own in batches until they are done,
//! an event asks for a retry, or the pass has run long enough; then one commit of every
//! partition's run.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{CommitEvery, Runner, Source};
use crate::dispatch::{Batch, BatchStats, DeadLetterTopic, Dispatcher, RetryRequest};
use crate::model::effects::{Commit, Effects};
use crate::model::event::{InputEvent, Positions};
use crate::state::PartitionState;

/// A partition's run of batches, ready to commit.
struct PartitionRun {
    partition: u32,
    /// Next offset per input topic the run moved.
    positions: Positions,
    stream_time_ms: i64,
    /// Accepted effects, dead letters included.
    effects: Effects,
    processed: usize,
    outputs: usize,
    stats: BatchStats,
    retry: Option<RetryRequest>,
}

/// What a worker needs to run one partition: its records, its state, and a dispatcher
/// no other partition uses meanwhile.
struct PartitionJob {
    partition: u32,
    events: Vec<InputEvent>,
    state: PartitionState,
    stream_time_ms: i64,
    retries_spent: Option<(String, u64)>,
    dispatcher: Dispatcher,
    max_batch: usize,
    /// How long the job may run batches: reading the records took part of the pass
    /// already, and on Kafka that part can be most of it.
    after: Duration,
    dead_letters: DeadLetterTopic,
}

/// Each partition's events in its last run: how many to read for its next.
#[derive(Debug, Default)]
pub(super) struct Appetite(HashMap<u32, usize>);

impl Appetite {
    /// How many events to read for `partition`: twice what its last run took, between
    /// one batch and a commit's worth, so a slow function does not read far more than
    /// it runs in a pass.
    fn wanted(&self, partition: u32, max_batch: usize, every: CommitEvery) -> usize {
        let last = self.0.get(&partition).copied().unwrap_or(max_batch);
        (last * 2).clamp(max_batch, every.events.max(max_batch))
    }

    fn record(&mut self, partition: u32, processed: usize) {
        self.0.insert(partition, processed);
    }
}

impl Runner {
    /// A run of batches for every partition with something to do, on the workers, then
    /// committed together in one transaction. Returns whether any partition had
    /// something.
    pub(super) fn pass(&mut self) -> Result<bool> {
        let started = Instant::now();
        let Some(active) = self.active.as_mut() else {
            return Ok(false);
        };
        let limits = active.deployment.spec.limits.clone();
        let every = active.source.commit_every();
        let max_batch = limits.max_batch as usize;
        let mut jobs = Vec::new();
        for partition in active.source.partitions()? {
            if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            if self.hold.waiting(partition, Instant::now()) {
                continue;
            }
            let wanted = self.appetite.wanted(partition, max_batch, every);
            let events = read(active.source.as_mut(), partition, wanted)?;
            if events.is_empty() {
                continue;
            }
            let (committed, stream_time_ms) = active.source.state(partition)?;
            jobs.push(PartitionJob {
                partition,
                events,
                state: PartitionState::new(committed),
                stream_time_ms,
                retries_spent: self.hold.spent(partition, &limits),
                dispatcher: active.dispatcher(),
                max_batch,
                after: every.after,
                dead_letters: active.dead_letters.clone(),
            });
        }
        if jobs.is_empty() {
            return Ok(false);
        }
        let runs = self.run_on_workers(jobs)?;
        let Some(active) = self.active.as_mut() else {
            return Ok(false);
        };
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
            self.appetite.record(run.partition, run.processed);
            self.context.metrics.record_batch(
                &spec.name,
                active.deployment.version,
                run.processed,
                run.outputs,
                &run.stats,
                seconds,
            );
            let attempts =
                self.hold
                    .settle(run.partition, run.retry.as_ref(), &limits, Instant::now());
            if let (Some(retry), Some(attempts)) = (&run.retry, attempts) {
                tracing::info!(function = %spec.name, partition = run.partition, offset = retry.offset, attempts, "retry requested: {}", retry.reason);
            }
        }
        Ok(true)
    }

    /// Runs `jobs` on the replica's workers and takes their dispatchers back; the runs,
    /// or the first host error among them.
    fn run_on_workers(&mut self, jobs: Vec<PartitionJob>) -> Result<Vec<PartitionRun>> {
        type Work = Box<dyn FnOnce() -> (Dispatcher, Result<PartitionRun>) + Send>;
        let work: Vec<Work> = jobs
            .into_iter()
            .map(|job| Box::new(move || job.run()) as Work)
            .collect();
        let results = self.context.workers.run(&self.name, work);
        let mut runs = Vec::with_capacity(results.len());
        let mut failure = None;
        for result in results {
            let run = match result {
                Ok((dispatcher, run)) => {
                    if let Some(active) = self.active.as_mut() {
                        active.give_back(dispatcher);
                    }
                    run
                }
                Err(panicked) => Err(panicked),
            };
            match run {
                Ok(run) => runs.push(run),
                Err(err) => {
                    failure.get_or_insert(err);
                }
            }
        }
        match failure {
            Some(err) => Err(err),
            None => Ok(runs),
        }
    }
}

/// Up to `wanted` records of `partition`: as many as the source has at hand.
fn read(source: &mut dyn Source, partition: u32, wanted: usize) -> Result<Vec<InputEvent>> {
    let mut events = source.fetch(partition, wanted)?;
    while !events.is_empty() && events.len() < wanted {
        let more = source.fetch(partition, wanted - events.len())?;
        if more.is_empty() {
            break;
        }
        events.extend(more);
    }
    Ok(events)
}

impl PartitionJob {
    /// Runs the events in batches until they are done, an event asks for a retry, or the
    /// job has run its time; the dispatcher comes back either way. Events left over
    /// are read again after the commit, which puts the read position on what it names.
    fn run(self) -> (Dispatcher, Result<PartitionRun>) {
        let PartitionJob {
            partition,
            events,
            mut state,
            mut stream_time_ms,
            mut retries_spent,
            mut dispatcher,
            max_batch,
            after,
            dead_letters: dead_letter_topic,
        } = self;
        let started = Instant::now();
        let mut positions = Positions::new();
        let mut dead_letters = Vec::new();
        let mut stats = BatchStats::default();
        let mut processed = 0;
        let mut retry = None;
        let mut events = events.into_iter();
        loop {
            let chunk: Vec<InputEvent> = events.by_ref().take(max_batch).collect();
            if chunk.is_empty() {
                break;
            }
            let consumed: Vec<(String, u64)> =
                chunk.iter().map(|e| (e.topic.clone(), e.offset)).collect();
            let batch = Batch {
                partition,
                events: chunk,
                stream_time_ms,
                retries_spent: retries_spent.take(),
            };
            let done = match dispatcher.run(state, batch) {
                Ok(done) => done,
                Err(err) => return (dispatcher, Err(err)),
            };
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
            if started.elapsed() >= after {
                break;
            }
        }
        let mut effects = state.accepted;
        let outputs = effects.outputs.len();
        for dead in &dead_letters {
            effects
                .outputs
                .push(dead.output(&dead_letter_topic, partition));
            tracing::warn!(function = %dead_letter_topic.function, partition, kind = %dead.failure.kind, "dead-lettered: {}", dead.failure.reason);
        }
        let run = PartitionRun {
            partition,
            positions,
            stream_time_ms,
            effects,
            processed,
            outputs,
            stats,
            retry,
        };
        (dispatcher, Ok(run))
    }
}
