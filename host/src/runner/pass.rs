//! One pass of a runner: for every partition with something to do, its new records and
//! committed state are read from the source and handed to the replica's workers as one
//! job, which runs them through a dispatcher of its own in batches until they are done,
//! an event asks for a retry, or the pass has run long enough; every partition's run is
//! then committed in one commit. Under a backlog the workers run the next pass while the
//! runner makes that commit: a partition's next run reads over the effects of its run
//! whose commit is under way, and begins with the records its last run left. Without a
//! backlog a pass commits before the next begins, so latency stays one commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::workers::Submitted;
use super::{CommitEvery, Runner, Source};
use crate::dispatch::{Batch, BatchStats, DeadLetterTopic, Dispatcher, RetryRequest};
use crate::model::effects::{Commit, Effects};
use crate::model::event::{InputEvent, Positions};
use crate::state::{CommittedState, PartitionState, Uncommitted};

/// A partition's run of batches, ready to commit.
struct PartitionRun {
    partition: u32,
    /// The version that ran it.
    version: u32,
    /// Next offset per input topic the run moved.
    positions: Positions,
    stream_time_ms: i64,
    /// Accepted effects, dead letters included; shared with the partition's next run
    /// while the commit is under way.
    effects: Arc<Effects>,
    /// What the effects add to the bytes the partition's state holds.
    growth: i64,
    /// Records read but not run, when the run stopped for time: the next run's first.
    leftover: Vec<InputEvent>,
    processed: usize,
    outputs: usize,
    stats: BatchStats,
    retry: Option<RetryRequest>,
}

/// What a job gives back: the version that ran it, its dispatcher, and its run.
type Ran = (u32, Dispatcher, Result<PartitionRun>);

/// A pass whose runs wait for their commit.
pub(super) struct InFlight {
    runs: Vec<PartitionRun>,
    started: Instant,
}

impl InFlight {
    fn run_of(&self, partition: u32) -> Option<&PartitionRun> {
        self.runs.iter().find(|run| run.partition == partition)
    }
}

/// What a worker needs to run one partition: its records, its state, and a dispatcher
/// no other partition uses meanwhile.
struct PartitionJob {
    partition: u32,
    events: Vec<InputEvent>,
    state: PartitionState,
    stream_time_ms: i64,
    retries_spent: Option<(String, u64)>,
    /// The version the dispatcher runs.
    version: u32,
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
    /// Carries out the replay of the active version on those of `partitions` that have
    /// not yet, once what the last pass ran is committed: nothing read or run before the
    /// replay is committed after it.
    fn carry_out_replay(&mut self, partitions: &[u32]) -> Result<()> {
        let Some(active) = self.active.as_ref() else {
            return Ok(());
        };
        if active.deployment().replay.is_none() {
            return Ok(());
        }
        let pending: Vec<u32> = partitions
            .iter()
            .filter(|p| !active.replayed.contains(p))
            .copied()
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        let version = active.deployment().version;
        let Some(replay) = active.deployment().replay.clone() else {
            return Ok(());
        };
        self.settle()?;
        let Some(active) = self.active.as_mut() else {
            return Ok(());
        };
        for partition in pending {
            active.source.replay(partition, version, &replay)?;
            active.replayed.insert(partition);
            self.carry.remove(&partition);
            self.rewind.remove(&partition);
        }
        Ok(())
    }

    /// Hands a run of batches of every partition with something to do to the workers,
    /// commits the previous pass while they run, and waits for them; commits this pass
    /// too when no partition had more than it read. Returns whether any partition had
    /// something.
    pub(super) fn pass(&mut self) -> Result<bool> {
        let started = Instant::now();
        let Some(active) = self.active.as_mut() else {
            return Ok(false);
        };
        let limits = active.deployment().spec.limits.clone();
        let every = active.source.commit_every();
        let max_batch = limits.max_batch as usize;
        let partitions = active.source.partitions()?;
        self.carry_out_replay(&partitions)?;
        let Some(active) = self.active.as_mut() else {
            return Ok(false);
        };
        // What was read or run for partitions given up since is not this replica's to
        // run on or commit: their next owner starts from their last commit.
        self.carry.retain(|p, _| partitions.contains(p));
        self.rewind.retain(|p| partitions.contains(p));
        self.lagging.retain(|p| partitions.contains(p));
        if let Some(flight) = self.in_flight.as_mut() {
            flight
                .runs
                .retain(|run| partitions.contains(&run.partition));
        }
        let mut jobs = Vec::new();
        // Whether a partition had more records than its run reads: only then does the
        // next pass overlap this one's commit. Without a backlog a pass commits at once,
        // which keeps latency at low load to one commit.
        let mut backlog = false;
        for partition in partitions {
            if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            // A partition that stopped at a retry reads again from its commit.
            if self.rewind.contains(&partition) || self.hold.waiting(partition, Instant::now()) {
                continue;
            }
            let wanted = self.appetite.wanted(partition, max_batch, every);
            let mut events = self.carry.remove(&partition).unwrap_or_default();
            if events.len() < wanted {
                events.extend(read(
                    active.source.as_mut(),
                    partition,
                    wanted - events.len(),
                )?);
            }
            if events.is_empty() {
                continue;
            }
            backlog |= events.len() >= wanted;
            let (committed, mut stream_time_ms) = active.source.state(partition)?;
            let base: Box<dyn CommittedState> =
                match self.in_flight.as_ref().and_then(|f| f.run_of(partition)) {
                    Some(run) => {
                        stream_time_ms = run.stream_time_ms;
                        Box::new(Uncommitted::new(committed, run.effects.clone(), run.growth))
                    }
                    None => committed,
                };
            let runs = active.runs(partition);
            jobs.push(PartitionJob {
                partition,
                events,
                state: PartitionState::new(base),
                stream_time_ms,
                retries_spent: self.hold.spent(partition, &limits),
                version: runs.deployment.version,
                dispatcher: runs.dispatcher(),
                max_batch,
                after: every.after,
                dead_letters: runs.dead_letters.clone(),
            });
        }
        let read = started.elapsed();
        let running: Vec<u32> = jobs.iter().map(|job| job.partition).collect();
        let submitted = (!jobs.is_empty()).then(|| self.submit(jobs));
        // The previous pass commits while the workers run this one.
        let settled = self.settle();
        let committed = started.elapsed();
        let Some(submitted) = submitted else {
            return settled.map(|()| false);
        };
        // Under a backlog the next pass's records are read while the workers still run
        // this one, so they do not wait for the read.
        let ahead = match (backlog, &settled) {
            (true, Ok(())) => self.read_ahead(&running, max_batch, every),
            _ => Ok(HashMap::new()),
        };
        let read_ahead = started.elapsed();
        let runs = self.collect(submitted.wait());
        tracing::debug!(
            function = %self.name,
            partitions = runs.as_ref().map_or(0, Vec::len),
            events = runs.as_ref().map_or(0, |r| r.iter().map(|run| run.processed).sum::<usize>()),
            read_ms = read.as_secs_f64() * 1e3,
            commit_ms = (committed - read).as_secs_f64() * 1e3,
            read_ahead_ms = (read_ahead - committed).as_secs_f64() * 1e3,
            ran_ms = started.elapsed().as_secs_f64() * 1e3,
            "pass"
        );
        settled?;
        let mut runs = runs?;
        let mut ahead = ahead?;
        for run in &mut runs {
            self.appetite.record(run.partition, run.processed);
            let attempts =
                self.hold
                    .settle(run.partition, run.retry.as_ref(), &limits, Instant::now());
            // After a retry the partition reads again from its commit: what was read
            // ahead of it goes.
            let ahead = ahead.remove(&run.partition).unwrap_or_default();
            if let Some(retry) = &run.retry {
                self.rewind.insert(run.partition);
                if let Some(attempts) = attempts {
                    tracing::info!(function = %self.name, partition = run.partition, offset = retry.offset, attempts, "retry requested: {}", retry.reason);
                }
            }
            if run.leftover.is_empty() {
                self.lagging.remove(&run.partition);
            } else {
                self.lagging.insert(run.partition);
            }
            let mut carry = std::mem::take(&mut run.leftover);
            if run.retry.is_none() {
                carry.extend(ahead);
            }
            if !carry.is_empty() {
                self.carry.insert(run.partition, carry);
            }
        }
        self.in_flight = Some(InFlight { runs, started });
        if !backlog {
            self.settle()?;
        }
        Ok(true)
    }

    /// Reads the next run's records of `partitions` while their runs are under way: as
    /// many as each would read at the start of the next pass. A partition whose last
    /// run left records unrun has them still to run, and reads none ahead, so what it
    /// carries stays within two runs' worth.
    fn read_ahead(
        &mut self,
        partitions: &[u32],
        max_batch: usize,
        every: CommitEvery,
    ) -> Result<HashMap<u32, Vec<InputEvent>>> {
        let mut ahead = HashMap::new();
        let Some(active) = self.active.as_mut() else {
            return Ok(ahead);
        };
        for &partition in partitions {
            if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            if self.lagging.contains(&partition) {
                continue;
            }
            let wanted = self.appetite.wanted(partition, max_batch, every);
            let events = read(active.source.as_mut(), partition, wanted)?;
            if !events.is_empty() {
                ahead.insert(partition, events);
            }
        }
        Ok(ahead)
    }

    /// Commits the pass that waits for its commit, if there is one; partitions that
    /// stopped at a retry then read again from what they committed.
    pub(super) fn settle(&mut self) -> Result<()> {
        let Some(flight) = self.in_flight.take() else {
            return Ok(());
        };
        let Some(active) = self.active.as_mut() else {
            return Ok(());
        };
        let spec = &active.current.deployment.spec;
        let commits = flight
            .runs
            .iter()
            .map(|run| Commit {
                group: &spec.name,
                partition: run.partition,
                offsets: run.positions.iter().map(|(t, o)| (t.clone(), *o)).collect(),
                stream_time_ms: run.stream_time_ms,
                effects: &run.effects,
                state_growth: Some(run.growth),
            })
            .collect();
        active.source.commit(commits)?;
        for partition in std::mem::take(&mut self.rewind) {
            active.source.rewind(partition);
        }
        let seconds = flight.started.elapsed().as_secs_f64();
        for run in &flight.runs {
            self.context.metrics.record_batch(
                &spec.name,
                run.version,
                run.processed,
                run.outputs,
                &run.stats,
                seconds,
            );
        }
        Ok(())
    }

    /// Hands `jobs` to the replica's workers.
    fn submit(&mut self, jobs: Vec<PartitionJob>) -> Submitted<Ran> {
        type Work = Box<dyn FnOnce() -> Ran + Send>;
        let work: Vec<Work> = jobs
            .into_iter()
            .map(|job| Box::new(move || job.run()) as Work)
            .collect();
        self.context.workers.submit(&self.name, work)
    }

    /// Takes the jobs' dispatchers back; the runs, or the first host error among them.
    fn collect(&mut self, results: Vec<Result<Ran>>) -> Result<Vec<PartitionRun>> {
        let mut runs = Vec::with_capacity(results.len());
        let mut failure = None;
        for result in results {
            let run = match result {
                Ok((version, dispatcher, run)) => {
                    if let Some(active) = self.active.as_mut() {
                        active.give_back(version, dispatcher);
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

/// The topic and offset of each event of a chunk, kept while the chunk is in the
/// dispatcher: a chunk reads from a topic or two, so each event holds an index into its
/// topics rather than a copy of the name.
struct Consumed {
    topics: Vec<String>,
    events: Vec<(usize, u64)>,
}

impl Consumed {
    fn of(chunk: &[InputEvent]) -> Consumed {
        let mut topics: Vec<String> = Vec::new();
        let events = chunk
            .iter()
            .map(|event| {
                let topic = match topics.iter().position(|t| *t == event.topic) {
                    Some(at) => at,
                    None => {
                        topics.push(event.topic.clone());
                        topics.len() - 1
                    }
                };
                (topic, event.offset)
            })
            .collect();
        Consumed { topics, events }
    }

    /// Moves `positions` past the first `processed` events.
    fn advance(&self, positions: &mut Positions, processed: usize) {
        let mut next: Vec<Option<u64>> = vec![None; self.topics.len()];
        for (topic, offset) in &self.events[..processed] {
            next[*topic] = Some(offset + 1);
        }
        for (topic, next) in self.topics.iter().zip(next) {
            if let Some(next) = next {
                positions.insert(topic.clone(), next);
            }
        }
    }
}

impl PartitionJob {
    /// Runs the events in batches until they are done, an event asks for a retry, or the
    /// job has run its time; the dispatcher comes back either way. Events left over for
    /// time are the next run's first; after a retry the partition reads again from its
    /// commit.
    fn run(self) -> Ran {
        let PartitionJob {
            partition,
            version,
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
            let consumed = Consumed::of(&chunk);
            let batch = Batch {
                partition,
                events: chunk,
                stream_time_ms,
                retries_spent: retries_spent.take(),
            };
            let done = match dispatcher.run(state, batch) {
                Ok(done) => done,
                Err(err) => return (version, dispatcher, Err(err)),
            };
            state = done.state;
            let report = done.report;
            consumed.advance(&mut positions, report.processed);
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
        let growth = state.growth();
        let mut effects = state.accepted;
        let outputs = effects.outputs.len();
        for dead in &dead_letters {
            effects
                .outputs
                .push(dead.output(&dead_letter_topic, partition));
            tracing::warn!(function = %dead_letter_topic.function, partition, kind = %dead.failure.kind, "dead-lettered: {}", dead.failure.reason);
        }
        let leftover = if retry.is_none() {
            events.collect()
        } else {
            Vec::new()
        };
        let run = PartitionRun {
            partition,
            version,
            positions,
            stream_time_ms,
            effects: Arc::new(effects),
            growth,
            leftover,
            processed,
            outputs,
            stats,
            retry,
        };
        (version, dispatcher, Ok(run))
    }
}
