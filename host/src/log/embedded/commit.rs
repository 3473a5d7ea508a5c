//! One batch's commit: output records, state changes (through the state journal), timer
//! changes, input offsets and stream time, in a single durable transaction, and the
//! offsets and stream time it leaves for the next batch. This is what makes processing on
//! the embedded log exactly-once: after a crash either all of a batch is there or none of
//! it.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use redb::ReadableDatabase;

use super::batch::Appends;
use super::journal::{Done, StateTables};
use super::store::EmbeddedLog;
use super::tables::{
    JOURNAL, JOURNAL_FOLDS, JOURNAL_HEADS, OFFSETS, PARTITIONS, RECORDS, STATE, STATE_BYTES,
    STREAM_TIME, TIMER_KEYS, TIMERS, TopicMeta,
};
use crate::model::effects::{Commit, Output};
use crate::model::partitioner::partition_for;

/// The outputs and offsets of `commit` that go to this log's topics: all of them when the
/// commit is the log's `own`, none of a copy's.
fn logged<'c>(commit: &'c Commit<'_>, own: bool) -> (&'c [Output], &'c [(String, u64)]) {
    match own {
        true => (&commit.effects.outputs, &commit.offsets),
        false => (&[], &[]),
    }
}

impl EmbeddedLog {
    /// Commits runs of batches atomically and durably.
    pub fn commit(&self, commits: &[Commit<'_>]) -> Result<()> {
        self.write(commits, true)
    }

    /// Applies commits that are durable elsewhere (Kafka's changelog) to the local copy
    /// of the state: their state, timers and stream time, atomically but not synced to
    /// disk (a later checkpoint makes them durable); their outputs and offsets are
    /// Kafka's, and left out.
    pub fn cache_commit(&self, commits: &[Commit<'_>]) -> Result<()> {
        self.write(commits, false)
    }

    /// Writes `commits`: durably with their outputs and offsets when they are the log's
    /// `own`, else only their state, timers and stream time, not synced.
    fn write(&self, commits: &[Commit<'_>], own: bool) -> Result<()> {
        let durability = match own {
            true => redb::Durability::Immediate,
            false => redb::Durability::None,
        };
        let has_outputs = commits.iter().any(|c| !logged(c, own).0.is_empty());
        // Topics are looked up before the write transaction starts: creating a topic
        // takes the topic lock and then the writer, so nothing may do the reverse.
        let mut topics: BTreeMap<&str, TopicMeta> = BTreeMap::new();
        for commit in commits {
            let (outputs, offsets) = logged(commit, own);
            for name in outputs
                .iter()
                .map(|o| o.topic.as_str())
                .chain(offsets.iter().map(|(t, _)| t.as_str()))
            {
                if !topics.contains_key(name) {
                    topics.insert(
                        name,
                        self.require_topic(name).context("committing a batch")?,
                    );
                }
            }
        }
        let mut done = Done::default();
        self.guard("committing a batch", |db| {
            let mut txn = db.begin_write()?;
            txn.set_durability(durability)?;
            {
                let mut extents = txn.open_table(PARTITIONS)?;
                let mut rows = txn.open_table(RECORDS)?;
                let mut appends = Appends::default();
                let mut state_tables = StateTables {
                    state: txn.open_table(STATE)?,
                    sizes: txn.open_table(STATE_BYTES)?,
                    rows: txn.open_table(JOURNAL)?,
                    heads: txn.open_table(JOURNAL_HEADS)?,
                    folds: txn.open_table(JOURNAL_FOLDS)?,
                };
                let mut timers = txn.open_table(TIMERS)?;
                let mut timer_keys = txn.open_table(TIMER_KEYS)?;
                let mut committed = txn.open_table(OFFSETS)?;
                let mut stream_times = txn.open_table(STREAM_TIME)?;
                for commit in commits {
                    let Commit {
                        group,
                        partition,
                        stream_time_ms,
                        effects,
                        state_growth,
                        ..
                    } = commit;
                    let (group, partition) = (*group, *partition);
                    let (outputs, offsets) = logged(commit, own);
                    for output in outputs {
                        let topic = &topics[output.topic.as_str()];
                        let p = partition_for(
                            output.record.key.as_deref(),
                            topic.partitions,
                            output.fallback_partition,
                        );
                        appends.push(&extents, &mut rows, topic.id, p, &output.record)?;
                    }
                    if !effects.state.is_empty() {
                        self.journals.commit(
                            &mut state_tables,
                            group,
                            partition,
                            &effects.state,
                            *state_growth,
                            &mut done,
                        )?;
                    }
                    for (key, at) in &effects.timers {
                        let previous = timer_keys
                            .remove((group, partition, key.as_slice()))?
                            .map(|v| v.value());
                        if let Some(previous) = previous {
                            timers.remove((group, partition, previous, key.as_slice()))?;
                        }
                        if let Some(at) = at {
                            timers.insert((group, partition, *at, key.as_slice()), ())?;
                            timer_keys.insert((group, partition, key.as_slice()), *at)?;
                        }
                    }
                    for (topic, next) in offsets {
                        committed.insert((group, topics[topic.as_str()].id, partition), *next)?;
                    }
                    stream_times.insert((group, partition), *stream_time_ms)?;
                }
                appends.finish(&mut extents, &mut rows)?;
            }
            txn.commit()?;
            Ok(())
        })?;
        self.journals.committed(done);
        if has_outputs {
            self.signal_append();
        }
        Ok(())
    }
}

impl EmbeddedLog {
    /// The committed next offset of `group` on `topic`'s `partition`.
    pub fn committed(&self, group: &str, topic: &TopicMeta, partition: u32) -> Result<Option<u64>> {
        self.guard("reading committed offsets", |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(OFFSETS)?;
            Ok(table.get((group, topic.id, partition))?.map(|v| v.value()))
        })
    }

    /// Stream time of `function`'s `partition` (the minimum `i64` before any event).
    pub fn stream_time(&self, function: &str, partition: u32) -> Result<i64> {
        self.guard("reading stream time", |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(STREAM_TIME)?;
            Ok(table
                .get((function, partition))?
                .map_or(i64::MIN, |v| v.value()))
        })
    }
}
