//! The embedded log as a source: every partition is this replica's, records come from the
//! log's tables, and a commit is one storage transaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::{Backend, Commit, Positions, Source, merge_by_timestamp};
use crate::dispatch::InputEvent;
use crate::embedded::{EmbeddedLog, TopicMeta};
use crate::registry::Deployment;
use crate::state::{CommittedState, StateCache};

/// The embedded log, shared by every function of a replica.
pub struct EmbeddedBackend {
    log: Arc<EmbeddedLog>,
}

impl EmbeddedBackend {
    /// A backend over `log`.
    pub fn new(log: Arc<EmbeddedLog>) -> Self {
        EmbeddedBackend { log }
    }
}

impl Backend for EmbeddedBackend {
    fn source(&self, deployment: &Deployment) -> Result<Box<dyn Source>> {
        let inputs = deployment
            .spec
            .inputs
            .iter()
            .map(|t| self.log.require_topic(t))
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(EmbeddedSource {
            log: self.log.clone(),
            function: deployment.spec.name.clone(),
            inputs,
            caches: BTreeMap::new(),
            generation: 0,
        }))
    }

    fn max_record_bytes(&self) -> usize {
        self.log.config().max_record_bytes
    }
}

/// One function's view of the embedded log.
struct EmbeddedSource {
    log: Arc<EmbeddedLog>,
    function: String,
    inputs: Vec<TopicMeta>,
    caches: BTreeMap<u32, StateCache>,
    generation: u64,
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

    fn positions(&mut self, partition: u32) -> Result<Positions> {
        let mut positions = Positions::new();
        for topic in &self.inputs {
            let next = self
                .log
                .committed(&self.function, topic, partition)?
                .unwrap_or(0);
            positions.insert(topic.name.clone(), next);
        }
        Ok(positions)
    }

    fn fetch(
        &mut self,
        partition: u32,
        positions: &Positions,
        max: usize,
    ) -> Result<Vec<InputEvent>> {
        let mut inputs = Vec::with_capacity(self.inputs.len());
        for topic in &self.inputs {
            let from = positions.get(&topic.name).copied().unwrap_or(0);
            let fetched = self.log.fetch(topic, partition, from, max)?;
            inputs.push((topic.name.clone(), fetched.records));
        }
        Ok(merge_by_timestamp(inputs, max))
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
        }
        result
    }

    fn reset(&mut self) {
        self.caches.clear();
    }
}
