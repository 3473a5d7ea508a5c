//! What the runner needs of a log: for one deployed function, the partitions this
//! replica runs, their records in order, their committed state, and atomic commits of
//! runs of batches. The logs implement it; the runner does not know which one it has.

use std::time::Duration;

use anyhow::Result;

use crate::model::deployment::{Deployment, Replay};
use crate::model::effects::Commit;
use crate::model::event::InputEvent;
use crate::state::CommittedState;

/// The inputs and outputs of one deployed function, as one replica sees them. Each
/// partition has a read position: where its committed offsets say, moved on by every
/// fetch, and put back on the committed offsets by a rewind or a reset. A commit leaves
/// it alone: the next records may be read, and run, before the previous run commits.
pub trait Source: Send {
    /// The partitions this replica runs now, ready to fetch from. With Kafka this
    /// follows the consumer group's assignment, and restores the state of partitions
    /// that just arrived.
    fn partitions(&mut self) -> Result<Vec<u32>>;

    /// Waits at most `timeout` for new records.
    fn wait(&mut self, timeout: Duration);

    /// Up to `max` records of `partition` from its read position, merged in timestamp
    /// order across co-partitioned inputs; moves the read position past them.
    fn fetch(&mut self, partition: u32, max: usize) -> Result<Vec<InputEvent>>;

    /// The committed state of `partition` and its stream time.
    fn state(&mut self, partition: u32) -> Result<(Box<dyn CommittedState>, i64)>;

    /// Commits runs of batches of several partitions, atomically.
    fn commit(&mut self, commits: Vec<Commit<'_>>) -> Result<()>;

    /// Puts `partition`'s read position back on its committed offsets.
    fn rewind(&mut self, partition: u32);

    /// Forgets what was fetched or cached since the last commit, after a failure. An
    /// error means this source cannot go on and must be opened again.
    fn reset(&mut self) -> Result<()>;

    /// Carries out `replay`, made with version `version`, on `partition` unless the
    /// partition carried it out already: in one commit, its committed offsets move to
    /// where the replay says, its state (values, timers, stream time) is dropped when the
    /// replay says, and the replay is recorded as done. Reads go on from the new offsets.
    fn replay(&mut self, partition: u32, version: u32, replay: &Replay) -> Result<()>;

    /// How much a commit covers at most: events per partition, and time since the pass
    /// began. Larger commits spread their fixed cost (an fsync, a Kafka transaction's
    /// round trips, a state key written many times) over more events, and add that much
    /// latency. Only a backlog fills them: a pass takes what is there, so at low load
    /// commits stay small and quick.
    fn commit_every(&self) -> CommitEvery {
        CommitEvery {
            events: 20_000,
            after: Duration::from_millis(100),
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

/// Opens sources: the log behind a replica, as its runners see it.
pub trait Sources: Send + Sync {
    /// The source of `deployment`'s inputs.
    fn source(&self, deployment: &Deployment) -> Result<Box<dyn Source>>;

    /// Largest record the log accepts, in bytes.
    fn max_record_bytes(&self) -> usize;
}
