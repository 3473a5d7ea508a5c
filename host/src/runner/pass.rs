//! One pass of a runner: for every partition with something to do, a run of batches
//! through the dispatcher until the partition is drained, an event asks for a retry, or
//! the commit would grow too large; then one commit of every partition's run.

use std::time::Instant;

use anyhow::Result;

use super::activation::Active;
use super::{CommitEvery, Runner};
use crate::dispatch::{Batch, BatchStats, RetryRequest};
use crate::model::effects::{Commit, Effects};
use crate::model::event::Positions;
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

impl Runner {
    /// A run of batches for every partition with something to do, committed together in
    /// one transaction. Returns whether any partition had something.
    pub(super) fn pass(&mut self) -> Result<bool> {
        let started = Instant::now();
        let Some(active) = self.active.as_mut() else {
            return Ok(false);
        };
        let limits = active.deployment.spec.limits.clone();
        let every = active.source.commit_every();
        let mut runs = Vec::new();
        for partition in active.source.partitions()? {
            if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            if self.hold.waiting(partition, Instant::now()) {
                continue;
            }
            let spent = self.hold.spent(partition, &limits);
            if let Some(run) = run_partition(active, partition, spent, started, every)? {
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
            let attempts =
                self.hold
                    .settle(run.partition, run.retry.as_ref(), &limits, Instant::now());
            if let (Some(retry), Some(attempts)) = (&run.retry, attempts) {
                tracing::info!(function = %spec.name, partition = run.partition, offset = retry.offset, attempts, "retry requested: {}", retry.reason);
            }
        }
        Ok(true)
    }
}

/// Runs batches of `partition` until there is nothing new, an event asks for a retry, or
/// the pass that began at `started` has done `every`'s worth.
fn run_partition(
    active: &mut Active,
    partition: u32,
    mut retries_spent: Option<(String, u64)>,
    started: Instant,
    every: CommitEvery,
) -> Result<Option<PartitionRun>> {
    let max = active.deployment.spec.limits.max_batch as usize;
    let mut events = active.source.fetch(partition, max)?;
    if events.is_empty() {
        return Ok(None);
    }
    let (committed, mut stream_time_ms) = active.source.state(partition)?;
    let mut state = PartitionState::new(committed);
    let mut positions = Positions::new();
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
        events = active.source.fetch(partition, max)?;
        if events.is_empty() {
            break;
        }
    }
    let mut effects = state.accepted;
    let outputs = effects.outputs.len();
    let name = &active.deployment.spec.name;
    for dead in &dead_letters {
        effects
            .outputs
            .push(dead.output(&active.dead_letters, partition));
        tracing::warn!(function = %name, partition, kind = %dead.failure.kind, "dead-lettered: {}", dead.failure.reason);
    }
    Ok(Some(PartitionRun {
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
