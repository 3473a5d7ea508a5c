//! The embedded log as a function's source: every partition is this replica's, records
//! come from the log's tables, and a commit is one storage transaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::store::EmbeddedLog;
use super::tables::TopicMeta;
use crate::log::merge_from;
use crate::model::effects::Commit;
use crate::model::event::{InputEvent, Positions};
use crate::runner::Source;
use crate::state::CommittedState;
use crate::state::cache::StateCache;

/// One function's view of the embedded log.
pub(super) struct EmbeddedSource {
    log: Arc<EmbeddedLog>,
    function: String,
    inputs: Vec<TopicMeta>,
    caches: BTreeMap<u32, StateCache>,
    /// Committed positions of the partitions read so far; only this source commits them.
    committed: BTreeMap<u32, Positions>,
    /// Where each partition reads next.
    cursors: BTreeMap<u32, Positions>,
    generation: u64,
}

impl EmbeddedSource {
    pub(super) fn new(log: Arc<EmbeddedLog>, function: String, inputs: Vec<TopicMeta>) -> Self {
        EmbeddedSource {
            log,
            function,
            inputs,
            caches: BTreeMap::new(),
            committed: BTreeMap::new(),
            cursors: BTreeMap::new(),
            generation: 0,
        }
    }

    /// Where `partition` reads next, from its committed offsets the first time.
    fn cursor(&mut self, partition: u32) -> Result<&mut Positions> {
        if !self.committed.contains_key(&partition) {
            let mut positions = Positions::new();
            for topic in &self.inputs {
                let next = self
                    .log
                    .committed(&self.function, topic, partition)?
                    .unwrap_or(0);
                positions.insert(topic.name.clone(), next);
            }
            self.committed.insert(partition, positions);
        }
        let committed = &self.committed[&partition];
        Ok(self
            .cursors
            .entry(partition)
            .or_insert_with(|| committed.clone()))
    }
}

impl Source for EmbeddedSource {
    fn partitions(&mut self) -> Result<Vec<u32>> {
        // Appends after this point wake `wait`; earlier ones are fetched by this pass.
        self.generation = self.log.append_generation();
        Ok((0..self.inputs.first().map_or(0, |t| t.partitions)).collect())
    }

    fn wait(&mut self, timeout: Duration) {
        self.log.wait_for_append(self.generation, timeout);
    }

    fn fetch(&mut self, partition: u32, max: usize) -> Result<Vec<InputEvent>> {
        let cursor = self.cursor(partition)?.clone();
        let mut inputs = Vec::with_capacity(self.inputs.len());
        for topic in &self.inputs {
            let from = cursor.get(&topic.name).copied().unwrap_or(0);
            let fetched = self.log.fetch(topic, partition, from, max)?;
            inputs.push((topic.name.clone(), fetched.records));
        }
        Ok(merge_from(inputs, max, self.cursor(partition)?))
    }

    fn state(&mut self, partition: u32) -> Result<(Box<dyn CommittedState>, i64)> {
        let cache = self.caches.entry(partition).or_default();
        let state = cache.over(self.log.partition_state(&self.function, partition)?);
        Ok((state, self.log.stream_time(&self.function, partition)?))
    }

    fn commit(&mut self, commits: Vec<Commit<'_>>) -> Result<()> {
        let result = self.log.commit(&commits);
        for commit in &commits {
            let cache = self.caches.entry(commit.partition).or_default();
            match &result {
                Ok(()) => cache.apply(&commit.effects.state),
                Err(_) => cache.clear(),
            }
            if result.is_ok()
                && let Some(committed) = self.committed.get_mut(&commit.partition)
            {
                committed.extend(commit.offsets.iter().cloned());
            }
        }
        result
    }

    fn rewind(&mut self, partition: u32) {
        self.cursors.remove(&partition);
    }

    fn reset(&mut self) -> Result<()> {
        self.caches.clear();
        self.cursors.clear();
        // A commit that failed may have been written after all: read the offsets again.
        self.committed.clear();
        Ok(())
    }
}
