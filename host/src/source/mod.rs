//! Where a function's records come from and where its results go: the embedded log, or
//! Kafka. A source hands the runner a partition's records after its committed position
//! and commits a run of batches (outputs, state changes, positions) atomically. The
//! runner and the dispatcher do not know which one they talk to.

pub mod embedded;
pub mod kafka;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;

use crate::dispatch::InputEvent;
use crate::effects::Effects;
use crate::record::Record;
use crate::registry::Deployment;
use crate::state::CommittedState;

/// Next offset to read, per input topic.
pub type Positions = BTreeMap<String, u64>;

/// Everything one run of batches of one function partition commits.
pub struct Commit<'a> {
    /// The function (its consumer group, and the owner of the state).
    pub group: &'a str,
    /// The input partition.
    pub partition: u32,
    /// Next offset per input topic.
    pub offsets: Vec<(String, u64)>,
    /// Stream time after the batches.
    pub stream_time_ms: i64,
    /// Accepted effects, dead letters included among the outputs.
    pub effects: &'a Effects,
}

/// The inputs and outputs of one deployed function, as one replica sees them.
pub trait Source: Send {
    /// The partitions this replica runs now, ready to fetch from. With Kafka this
    /// follows the consumer group's assignment, and restores the state of partitions
    /// that just arrived.
    fn partitions(&mut self) -> Result<Vec<u32>>;

    /// Waits at most `timeout` for new records.
    fn wait(&mut self, timeout: Duration);

    /// Where `partition` continues: its committed positions.
    fn positions(&mut self, partition: u32) -> Result<Positions>;

    /// Up to `max` records of `partition` from `positions`, merged in timestamp order.
    fn fetch(
        &mut self,
        partition: u32,
        positions: &Positions,
        max: usize,
    ) -> Result<Vec<InputEvent>>;

    /// The committed state of `partition` and its stream time.
    fn state(&mut self, partition: u32) -> Result<(Box<dyn CommittedState>, i64)>;

    /// Commits runs of batches of several partitions, atomically.
    fn commit(&mut self, commits: Vec<Commit<'_>>) -> Result<()>;

    /// Forgets what was fetched or cached since the last commit, after a failure.
    fn reset(&mut self);

    /// How much a commit covers at most: events per partition, and time since the pass
    /// began. Larger commits spread their fixed cost (an fsync, a Kafka transaction's
    /// round trips) over more events, and add that much latency.
    fn commit_every(&self) -> CommitEvery {
        CommitEvery {
            events: 5000,
            after: Duration::from_millis(50),
        }
    }
}

/// See [`Source::commit_every`].
#[derive(Debug, Clone, Copy)]
pub struct CommitEvery {
    /// Events of one partition.
    pub events: usize,
    /// Time since the pass began.
    pub after: Duration,
}

/// Opens sources, and knows the limits of the log behind them.
pub trait Backend: Send + Sync {
    /// The source of `deployment`'s inputs.
    fn source(&self, deployment: &Deployment) -> Result<Box<dyn Source>>;

    /// Largest record the log accepts, in bytes.
    fn max_record_bytes(&self) -> usize;
}

type Queue = std::iter::Peekable<std::vec::IntoIter<(u64, Record)>>;

/// Merges the records of co-partitioned inputs in timestamp order (ties in input order),
/// as Kafka Streams picks among them, taking at most `max`.
pub fn merge_by_timestamp(
    inputs: Vec<(String, Vec<(u64, Record)>)>,
    max: usize,
) -> Vec<InputEvent> {
    if inputs.len() == 1 {
        let (topic, records) = inputs.into_iter().next().unwrap_or_default();
        return records
            .into_iter()
            .take(max)
            .map(|(offset, record)| InputEvent {
                topic: topic.clone(),
                offset,
                record,
            })
            .collect();
    }
    let mut queues: Vec<(String, Queue)> = inputs
        .into_iter()
        .map(|(topic, records)| (topic, records.into_iter().peekable()))
        .collect();
    let mut merged = Vec::new();
    while merged.len() < max {
        let next = queues
            .iter_mut()
            .enumerate()
            .filter_map(|(i, (_, q))| q.peek().map(|(_, r)| (r.timestamp_ms, i)))
            .min();
        let Some((_, i)) = next else { break };
        let (topic, queue) = &mut queues[i];
        let Some((offset, record)) = queue.next() else {
            break;
        };
        merged.push(InputEvent {
            topic: topic.clone(),
            offset,
            record,
        });
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ts: i64) -> Record {
        Record {
            timestamp_ms: ts,
            ..Record::default()
        }
    }

    #[test]
    fn co_partitioned_inputs_merge_by_timestamp_then_input_order() {
        let merged = merge_by_timestamp(
            vec![
                ("a".into(), vec![(0, at(5)), (1, at(9))]),
                ("b".into(), vec![(0, at(1)), (1, at(5)), (2, at(20))]),
            ],
            4,
        );
        let order: Vec<(&str, u64)> = merged
            .iter()
            .map(|e| (e.topic.as_str(), e.offset))
            .collect();
        assert_eq!(order, vec![("b", 0), ("a", 0), ("b", 1), ("a", 1)]);
    }
}
