//! The embedded log as a function's source: every partition is this replica's, records
//! come from the log's tables, and a commit is one storage transaction. A function with
//! an input pattern takes in the topics that come to match it as they are created.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::records::MAX_RESERVED;
use super::store::EmbeddedLog;
use super::tables::TopicMeta;
use crate::log::merge_from;
use crate::model::deployment::{DeploySpec, Replay, StartFrom};
use crate::model::effects::Commit;
use crate::model::event::{InputEvent, Positions};
use crate::runner::Source;
use crate::state::CommittedState;
use crate::state::cache::StateCache;

/// How often a function with an input pattern looks for topics that came to match it.
const MATCH_EVERY: Duration = Duration::from_secs(1);

/// One function's view of the embedded log.
pub(super) struct EmbeddedSource {
    log: Arc<EmbeddedLog>,
    spec: DeploySpec,
    inputs: Vec<TopicMeta>,
    /// When the input pattern was last matched against the topics.
    matched_at: Instant,
    caches: BTreeMap<u32, StateCache>,
    /// Bytes each partition's cache holds at most.
    cache_bytes: usize,
    /// Committed positions of the partitions read so far; only this source commits them.
    committed: BTreeMap<u32, Positions>,
    /// Where each partition reads next.
    cursors: BTreeMap<u32, Positions>,
    generation: u64,
}

impl EmbeddedSource {
    pub(super) fn new(log: Arc<EmbeddedLog>, spec: DeploySpec, cache_bytes: usize) -> Result<Self> {
        let mut source = EmbeddedSource {
            log,
            spec,
            inputs: Vec::new(),
            matched_at: Instant::now(),
            caches: BTreeMap::new(),
            cache_bytes,
            committed: BTreeMap::new(),
            cursors: BTreeMap::new(),
            generation: 0,
        };
        source.match_inputs()?;
        Ok(source)
    }

    /// The cache of `partition`'s committed state.
    fn cache(&mut self, partition: u32) -> &StateCache {
        let bytes = self.cache_bytes;
        self.caches
            .entry(partition)
            .or_insert_with(|| StateCache::new(bytes))
    }

    /// Takes the function's inputs as they are now: its named topics and those its
    /// pattern matches.
    fn match_inputs(&mut self) -> Result<()> {
        let topics: Vec<(String, u32)> = self
            .log
            .topics()
            .into_iter()
            .map(|meta| (meta.name, meta.partitions))
            .collect();
        for name in self.spec.inputs_among(&topics)? {
            if self.inputs.iter().any(|t| t.name == name) {
                continue;
            }
            if !self.inputs.is_empty() {
                tracing::info!(function = %self.spec.name, topic = %name, "a new input topic matches");
            }
            self.inputs.push(self.log.require_topic(&name)?);
        }
        self.matched_at = Instant::now();
        Ok(())
    }

    /// Where `topic`'s `partition` starts when the function has no commit there: where
    /// the deployment says, for a topic read the first time, as a Kafka consumer's offset
    /// reset does (a topic the input pattern matches later too).
    fn start_of(
        log: &EmbeddedLog,
        spec: &DeploySpec,
        topic: &TopicMeta,
        partition: u32,
    ) -> Result<u64> {
        Ok(match spec.start {
            StartFrom::Earliest => 0,
            StartFrom::Latest => log
                .extents(topic)?
                .get(partition as usize)
                .map_or(0, |e| e.end),
            StartFrom::Time(time_ms) => log.offset_for_time(topic, partition, time_ms)?,
        })
    }

    /// Where `partition` reads next, from its committed offsets the first time.
    fn cursor(&mut self, partition: u32) -> Result<&mut Positions> {
        let committed = self.committed.entry(partition).or_default();
        for topic in &self.inputs {
            if committed.contains_key(&topic.name) {
                continue;
            }
            let next = match self.log.committed(&self.spec.name, topic, partition)? {
                Some(next) => next,
                None => Self::start_of(&self.log, &self.spec, topic, partition)?,
            };
            committed.insert(topic.name.clone(), next);
        }
        let committed = &self.committed[&partition];
        let cursor = self
            .cursors
            .entry(partition)
            .or_insert_with(|| committed.clone());
        for (topic, next) in committed {
            cursor.entry(topic.clone()).or_insert(*next);
        }
        Ok(cursor)
    }
}

impl Source for EmbeddedSource {
    fn partitions(&mut self) -> Result<Vec<u32>> {
        if self.spec.input_pattern.is_some() && self.matched_at.elapsed() >= MATCH_EVERY {
            self.match_inputs()?;
        }
        // Appends after this point wake `wait`; earlier ones are fetched by this pass.
        self.generation = self.log.append_generation();
        let count = self
            .spec
            .partitions
            .or_else(|| self.inputs.first().map(|t| t.partitions))
            .unwrap_or(0);
        Ok((0..count).collect())
    }

    fn wait(&mut self, timeout: Duration) {
        self.log.wait_for_append(self.generation, timeout);
    }

    fn fetch(&mut self, partition: u32, max: usize) -> Result<Vec<InputEvent>> {
        if let [topic] = self.inputs.as_slice() {
            // One input: its records are the events, in offset order, with nothing to merge.
            let topic = topic.clone();
            let from = self
                .cursor(partition)?
                .get(&topic.name)
                .copied()
                .unwrap_or(0);
            let mut events = Vec::with_capacity(max.min(MAX_RESERVED));
            let next = self
                .log
                .fetch_each(&topic, partition, from, max, |offset, record| {
                    events.push(InputEvent {
                        topic: topic.name.clone(),
                        offset,
                        record,
                    });
                })?;
            self.cursor(partition)?.insert(topic.name, next);
            return Ok(events);
        }
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
        let committed = self.log.partition_state(&self.spec.name, partition)?;
        let state = self.cache(partition).over(committed);
        Ok((state, self.log.stream_time(&self.spec.name, partition)?))
    }

    fn commit(&mut self, commits: Vec<Commit<'_>>) -> Result<()> {
        let result = self.log.commit(&commits);
        for commit in &commits {
            let cache = self.cache(commit.partition);
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

    fn replay(&mut self, partition: u32, version: u32, replay: &Replay) -> Result<()> {
        let name = self.spec.name.clone();
        if self.log.replayed(&name, partition)? >= Some(version) {
            return Ok(());
        }
        let mut offsets = Vec::new();
        for topic in &self.inputs {
            let extent = self.log.extents(topic)?.get(partition as usize).copied();
            let (start, end) = extent.map_or((0, 0), |e| (e.start, e.end));
            let at_time = |time_ms| self.log.offset_for_time(topic, partition, time_ms);
            let Some(target) = replay
                .from
                .target(&topic.name, partition, (start, end), at_time)?
            else {
                continue;
            };
            offsets.push((topic, target));
        }
        self.log.replay_partition(
            &name,
            partition,
            &offsets,
            replay.reset_state,
            version,
            true,
        )?;
        tracing::info!(function = %name, partition, version, "replay carried out");
        self.caches.remove(&partition);
        self.committed.remove(&partition);
        self.cursors.remove(&partition);
        Ok(())
    }
}
