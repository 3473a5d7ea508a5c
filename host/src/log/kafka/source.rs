//! Kafka as a function's source: one consumer group per function (co-partitioned
//! assignment by the broker's range assignor), records buffered per input partition until
//! they are committed, co-partitioned inputs held back a moment so a join does not run
//! ahead of one side, and state restored from the changelog when a partition arrives.
//! Commits are in `commit.rs`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientContext, Message};

use super::assignment::Assignment;
use super::buffers::{Buffers, MAX_BUFFERED};
use super::changelog::{Changelog, changelog_topic};
use super::cluster::{KafkaCluster, REQUEST_TIMEOUT};
use super::denied::{Resource, code_of, explain};
use super::membership::Assignments;
use super::records::{BaseProducer, Deliveries, record_of};
use super::standby::Copies;
use super::{KafkaBackend, Restoring};
use crate::log::Backend as _;
use crate::log::embedded::EmbeddedLog;
use crate::log::merge_from;
use crate::metrics::{Metrics, NameLabels};
use crate::model::deployment::{DeploySpec, Deployment, Replay, StartFrom};
use crate::model::effects::{Commit, Effects};
use crate::model::event::{InputEvent, Positions};
use crate::runner::{CommitEvery, Source};
use crate::state::CommittedState;
use crate::state::cache::StateCache;

/// Longest a partition waits for records of one co-partitioned input that the broker
/// has but this replica has not fetched yet.
const MAX_INPUT_IDLE: Duration = Duration::from_secs(2);

/// How long an input partition's end, as asked of the broker, is taken as current.
const END_FRESH_FOR: Duration = Duration::from_millis(500);

/// How often a function with an input pattern looks for topics that came to match it.
const MATCH_EVERY: Duration = Duration::from_secs(2);

/// Kafka transactions abort on their own after this long without a commit, so a replica
/// that died mid-transaction holds its partitions' outputs (and the group's offsets)
/// back at most this long. A transaction only spans the sending of one commit's records.
const TRANSACTION_TIMEOUT_MS: &str = "5000";

/// A change of the consumer's assignment, recorded during a poll.
enum Change {
    Assigned(Vec<(String, u32)>),
    Revoked(Vec<(String, u32)>),
}

/// Records assignment changes for the source to act on after the poll returns, when no
/// batch is under way.
pub(super) struct Rebalances(Arc<Mutex<Vec<Change>>>);

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let list = |tpl: &TopicPartitionList| {
            tpl.elements()
                .iter()
                .map(|e| (e.topic().to_owned(), e.partition() as u32))
                .collect::<Vec<_>>()
        };
        let change = match rebalance {
            Rebalance::Assign(tpl) => Change::Assigned(list(tpl)),
            Rebalance::Revoke(tpl) => Change::Revoked(list(tpl)),
            Rebalance::Error(err) => {
                tracing::warn!("consumer group rebalance failed: {err}");
                return;
            }
        };
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(change);
    }
}

/// One function on Kafka, as this replica runs it.
pub(super) struct KafkaSource {
    pub(super) cluster: Arc<KafkaCluster>,
    pub(super) local: Arc<EmbeddedLog>,
    pub(super) function: String,
    spec: DeploySpec,
    pub(super) inputs: Vec<String>,
    /// When the input pattern was last matched against the cluster's topics.
    matched_at: Instant,
    pub(super) changelog: String,
    pub(super) exactly_once: bool,
    start: StartFrom,
    pub(super) consumer: BaseConsumer<Rebalances>,
    changes: Arc<Mutex<Vec<Change>>>,
    metrics: Arc<Metrics>,
    restoring: Arc<Restoring>,
    copies: Arc<Copies>,
    pub(super) producer: BaseProducer,
    announced: Arc<Assignments>,
    pub(super) assignment: Assignment,
    /// Committed positions of the partitions that run here.
    pub(super) positions: BTreeMap<u32, Positions>,
    /// Where each partition reads next, when it has read past its committed positions.
    pub(super) cursors: BTreeMap<u32, Positions>,
    pub(super) buffers: Buffers,
    pub(super) caches: BTreeMap<u32, StateCache>,
    /// Bytes each partition's cache holds at most.
    pub(super) cache_bytes: usize,
    /// Since when a partition waits for one of its co-partitioned inputs.
    waiting: BTreeMap<u32, Instant>,
    /// Input partitions' ends as last asked of the broker, and when.
    known_ends: BTreeMap<(String, u32), (Instant, u64)>,
    /// Why the transactional producer cannot go on, once it cannot.
    pub(super) broken: Option<String>,
    /// What Kafka's authorizer refused the consumer, once it did.
    denied: Option<String>,
}

impl KafkaSource {
    pub(super) fn open(backend: &KafkaBackend, deployment: &Deployment) -> Result<KafkaSource> {
        let spec = &deployment.spec;
        let options = &backend.cluster.options;
        let changes = Arc::new(Mutex::new(Vec::new()));
        let reset = match spec.start {
            // A start at a time skips what the consumer reads before the time's offsets.
            StartFrom::Earliest | StartFrom::Time(_) => "earliest",
            StartFrom::Latest => "latest",
        };
        let consumer: BaseConsumer<Rebalances> = options
            .config(&[
                ("group.id", spec.name.as_str()),
                ("group.protocol", "consumer"),
                ("group.remote.assignor", "range"),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("isolation.level", "read_committed"),
                ("auto.offset.reset", reset),
                ("enable.partition.eof", "false"),
                // A partition resumed once its buffer drained joins the next fetch, after
                // the one in flight returns: a shorter broker wait bounds that stall.
                ("fetch.wait.max.ms", "100"),
                // Once its queue of fetched records is full, librdkafka waits this long
                // before it looks at the partition again: by default a second, in which a
                // replica under a backlog ran dry, about once a second. Pausing a
                // partition throws its queue away, so the replica's own buffers bound
                // memory, not this wait.
                ("fetch.queue.backoff.ms", "10"),
            ])
            .create_with_context(Rebalances(changes.clone()))
            .context("configuring the function's consumer")?;
        let inputs = backend.inputs_of(spec)?;
        subscribe(&consumer, &inputs)?;

        let exactly_once = options.exactly_once;
        let transactional_id = format!("streamfn-{}-{}", spec.name, backend.replica);
        let mut settings = vec![
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "5"),
            ("partitioner", "murmur2_random"),
        ];
        if exactly_once {
            settings.push(("transactional.id", transactional_id.as_str()));
            settings.push(("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS));
        }
        let producer: BaseProducer = options
            .config(&settings)
            .create_with_context(Deliveries::default())
            .context("configuring the function's producer")?;
        if exactly_once {
            producer
                .init_transactions(REQUEST_TIMEOUT * 2)
                .map_err(|e| {
                    let denied = code_of(&e).and_then(|code| {
                        explain(code, "WRITE", Resource::TransactionalId(&transactional_id))
                    });
                    let reason = denied.unwrap_or_else(|| e.to_string());
                    anyhow!(
                        "cannot start Kafka transactions for {}: {reason}",
                        spec.name
                    )
                })?;
        }
        Ok(KafkaSource {
            cluster: backend.cluster.clone(),
            local: backend.local.clone(),
            function: spec.name.clone(),
            spec: spec.clone(),
            inputs: inputs.clone(),
            matched_at: Instant::now(),
            changelog: changelog_topic(&spec.name),
            exactly_once,
            start: spec.start,
            consumer,
            changes,
            metrics: backend.metrics.clone(),
            restoring: backend.restoring.clone(),
            copies: backend.copies.clone(),
            producer,
            announced: backend.membership.assignments.clone(),
            assignment: Assignment::new(inputs),
            positions: BTreeMap::new(),
            cursors: BTreeMap::new(),
            buffers: Buffers::default(),
            caches: BTreeMap::new(),
            cache_bytes: backend.state_cache_bytes,
            waiting: BTreeMap::new(),
            known_ends: BTreeMap::new(),
            broken: None,
            denied: None,
        })
    }

    /// Takes in the topics that came to match the input pattern since it last looked:
    /// the consumer subscribes to them too, and a partition reads them from then on.
    fn match_inputs(&mut self) -> Result<()> {
        if self.spec.input_pattern.is_none() || self.matched_at.elapsed() < MATCH_EVERY {
            return Ok(());
        }
        self.matched_at = Instant::now();
        let inputs = self.spec.inputs_among(&self.cluster.topics()?)?;
        if inputs == self.inputs {
            return Ok(());
        }
        for topic in inputs.iter().filter(|t| !self.inputs.contains(t)) {
            tracing::info!(function = %self.function, %topic, "a new input topic matches");
        }
        subscribe(&self.consumer, &inputs)?;
        self.assignment.set_inputs(inputs.clone());
        self.inputs = inputs;
        Ok(())
    }

    /// Moves the committed offsets of drained partitions past what the consumer skipped
    /// without handing it over (the markers of the transactions that wrote the inputs,
    /// aborted records), so that a function with nothing left to do shows no lag, as
    /// Kafka Streams' commits on its interval do. A commit that fails is left to the next
    /// wait.
    fn commit_skipped(&mut self) {
        let Ok(consumed) = self.consumer.position() else {
            return;
        };
        let mut idle = Vec::new();
        for (&partition, committed) in &self.positions {
            let read_ahead = self.cursors.get(&partition).is_some_and(|c| c != committed);
            let mut skipped = false;
            for (topic, next) in committed {
                if self.buffers.has_from(topic, partition, *next) {
                    skipped = false;
                    break;
                }
                let fetched = consumed
                    .find_partition(topic, partition as i32)
                    .and_then(|e| e.offset().to_raw())
                    .unwrap_or(-1);
                skipped |= fetched > *next as i64;
            }
            if skipped && !read_ahead {
                idle.push(partition);
            }
        }
        if idle.is_empty() {
            return;
        }
        let nothing = Effects::default();
        let function = self.function.clone();
        let mut commits = Vec::with_capacity(idle.len());
        for partition in idle {
            match self.local.stream_time(&function, partition) {
                Ok(stream_time_ms) => commits.push(Commit {
                    group: &function,
                    partition,
                    offsets: Vec::new(),
                    stream_time_ms,
                    effects: &nothing,
                    state_growth: None,
                }),
                Err(err) => tracing::warn!(%function, partition, "no stream time: {err:#}"),
            }
        }
        if let Err(err) = self.commit_runs(commits) {
            tracing::warn!(function = %self.function, "committing past skipped records: {err:#}");
        }
    }

    fn changelog(&self) -> Changelog<'_> {
        Changelog {
            cluster: &self.cluster,
            local: &self.local,
            function: &self.function,
        }
    }

    /// Polls the consumer for up to `timeout` and buffers what arrives. Partitions whose
    /// buffers drained since the last poll resume first: a wait with them still paused
    /// would last its whole timeout, with nothing to run meanwhile.
    fn poll(&mut self, timeout: Duration) {
        self.throttle();
        let mut wait = timeout;
        for _ in 0..10_000 {
            let Some(result) = self.consumer.poll(wait) else {
                break;
            };
            wait = Duration::ZERO;
            match result {
                // Records arrive only for assigned partitions, possibly before this
                // source has taken the assignment in, so none is turned away here.
                Ok(message) => self.buffers.push(
                    message.topic(),
                    message.partition() as u32,
                    message.offset() as u64,
                    record_of(&message),
                ),
                Err(err) => self.consumer_error(&err),
            }
        }
        self.throttle();
    }

    /// Takes in an error the consumer reported: a refusal of the authorizer stops the
    /// function until it is granted what it needs; the consumer retries anything else.
    fn consumer_error(&mut self, err: &KafkaError) {
        tracing::warn!(function = %self.function, "consumer: {err}");
        let denied = code_of(err).and_then(|code| match code {
            RDKafkaErrorCode::GroupAuthorizationFailed => {
                explain(code, "READ", Resource::Group(&self.function))
            }
            _ => explain(code, "READ", Resource::Topics(&self.inputs)),
        });
        if let Some(denied) = denied {
            if code_of(err) == Some(RDKafkaErrorCode::GroupAuthorizationFailed) {
                self.cluster.set_group_denied(&self.function, Some(&denied));
            }
            self.denied = Some(denied);
        }
    }

    /// Pauses fetching for partitions with a full buffer, resumes drained ones.
    fn throttle(&mut self) {
        let throttle = self.buffers.throttle();
        let list = |keys: &[(String, u32)]| {
            let mut list = TopicPartitionList::new();
            for (topic, partition) in keys {
                list.add_partition(topic, *partition as i32);
            }
            list
        };
        if !throttle.pause.is_empty() {
            let _ = self.consumer.pause(&list(&throttle.pause));
        }
        if !throttle.resume.is_empty() {
            let _ = self.consumer.resume(&list(&throttle.resume));
        }
    }

    /// Acts on assignment changes: restores partitions that became whole, drops revoked ones.
    fn apply_changes(&mut self) -> Result<()> {
        let changes = std::mem::take(&mut *self.changes.lock().unwrap_or_else(|p| p.into_inner()));
        for change in changes {
            match change {
                Change::Assigned(list) => self.assignment.assign(list),
                Change::Revoked(list) => {
                    for (topic, partition) in &list {
                        self.buffers.forget(topic, *partition);
                    }
                    for partition in self.assignment.revoke(list) {
                        self.release(partition);
                    }
                }
            }
        }
        for partition in self.assignment.whole() {
            // A standby copy written meanwhile is finished first; none is written after.
            self.copies.run(&self.function, partition);
            self.restore(partition)?;
            self.positions
                .insert(partition, self.committed_positions(partition)?);
            self.assignment.run(partition);
            tracing::info!(function = %self.function, partition, "partition assigned");
        }
        self.announced
            .set(&self.function, self.assignment.running().clone());
        Ok(())
    }

    /// Whether co-partitioned inputs can be merged in timestamp order: an input with
    /// nothing buffered but records on the broker holds the partition back for a moment,
    /// as Kafka Streams' `max.task.idle.ms` does, so a join does not run ahead of one side.
    fn inputs_ready(&mut self, partition: u32, positions: &Positions) -> Result<bool> {
        if self.inputs.len() < 2 {
            return Ok(true);
        }
        for topic in self.inputs.clone() {
            let position = positions.get(&topic).copied().unwrap_or(0);
            if self.buffers.has_from(&topic, partition, position) {
                continue;
            }
            let high = self.high_watermark(&topic, partition)?;
            if high <= position {
                continue;
            }
            let since = *self.waiting.entry(partition).or_insert_with(Instant::now);
            if since.elapsed() < MAX_INPUT_IDLE {
                return Ok(false);
            }
        }
        self.waiting.remove(&partition);
        Ok(true)
    }

    /// The end of an input partition, asked of the broker at most every so often: an
    /// input that stays empty must not cost a round trip per batch.
    fn high_watermark(&mut self, topic: &str, partition: u32) -> Result<u64> {
        let key = (topic.to_owned(), partition);
        if let Some((at, high)) = self.known_ends.get(&key)
            && at.elapsed() < END_FRESH_FOR
        {
            return Ok(*high);
        }
        let (_, high) = self.cluster.watermarks(topic, partition)?;
        self.known_ends.insert(key, (Instant::now(), high));
        Ok(high)
    }

    /// Gives up `partition`: a checkpoint lets the next assignment here restore less.
    fn release(&mut self, partition: u32) {
        self.caches.remove(&partition);
        self.positions.remove(&partition);
        self.cursors.remove(&partition);
        self.changelog().checkpoint(partition);
        self.copies.give_up(&self.function, partition);
        tracing::info!(function = %self.function, partition, "partition revoked");
    }

    /// The group's committed positions of `partition`, or where the consumer will start.
    fn committed_positions(&self, partition: u32) -> Result<Positions> {
        let mut list = TopicPartitionList::new();
        for topic in &self.inputs {
            list.add_partition(topic, partition as i32);
        }
        let committed = self
            .consumer
            .committed_offsets(list, REQUEST_TIMEOUT)
            .with_context(|| {
                format!(
                    "reading the group's committed offsets of partition {partition} of {} \
                     (the broker holds them back while a transaction that commits offsets \
                     for the group is open; `kafka-transactions.sh find-hanging` lists one \
                     that never ends)",
                    self.inputs.join(", ")
                )
            })?;
        let mut positions = Positions::new();
        for topic in &self.inputs {
            let offset = committed
                .find_partition(topic, partition as i32)
                .map(|e| e.offset());
            let start = match offset {
                Some(Offset::Offset(o)) if o >= 0 => o as u64,
                // No commit yet: the consumer starts where the deployment says.
                _ => {
                    let (low, high) = self.cluster.watermarks(topic, partition)?;
                    match self.start {
                        StartFrom::Earliest => low,
                        StartFrom::Latest => high,
                        // The consumer reads from the earliest; what comes before is skipped.
                        StartFrom::Time(time_ms) => {
                            self.offset_for_time(topic, partition, time_ms, high)?
                        }
                    }
                }
            };
            positions.insert(topic.clone(), start);
        }
        Ok(positions)
    }

    /// Brings the local copy of `partition`'s state up to the end of its changelog,
    /// counted as restoring while it runs.
    fn restore(&mut self, partition: u32) -> Result<()> {
        let started = Instant::now();
        let restoring = self.restoring.clone();
        let result = restoring.during(&self.function, partition, |progress| {
            self.changelog().restore(partition, progress)
        });
        let Some((records, bytes)) = result? else {
            return Ok(());
        };
        let labels = NameLabels {
            function: self.function.clone(),
        };
        self.metrics.restores.get_or_create(&labels).inc();
        self.metrics
            .restored_records
            .get_or_create(&labels)
            .inc_by(records);
        self.metrics
            .restored_bytes
            .get_or_create(&labels)
            .inc_by(bytes);
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            function = %self.function,
            partition,
            records,
            mb = bytes as f64 / 1e6,
            seconds,
            mb_per_s = bytes as f64 / 1e6 / seconds,
            "state restored"
        );
        Ok(())
    }

    /// Where `partition` reads next.
    fn cursor(&self, partition: u32) -> Result<Positions> {
        self.cursors
            .get(&partition)
            .or_else(|| self.positions.get(&partition))
            .cloned()
            .with_context(|| format!("partition {partition} is not assigned here"))
    }
}

/// Subscribes `consumer` to `inputs`.
fn subscribe(consumer: &BaseConsumer<Rebalances>, inputs: &[String]) -> Result<()> {
    let topics: Vec<&str> = inputs.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .context("subscribing to the inputs")
}

impl Source for KafkaSource {
    fn partitions(&mut self) -> Result<Vec<u32>> {
        self.match_inputs()?;
        self.poll(Duration::ZERO);
        if let Some(denied) = &self.denied {
            bail!("{denied}");
        }
        self.apply_changes()?;
        if !self.assignment.running().is_empty() {
            self.cluster.set_group_denied(&self.function, None);
        }
        Ok(self.assignment.running().iter().copied().collect())
    }

    fn wait(&mut self, timeout: Duration) {
        self.commit_skipped();
        self.poll(timeout);
    }

    fn fetch(&mut self, partition: u32, max: usize) -> Result<Vec<InputEvent>> {
        // Take in what has arrived since, so a run of batches is not cut short by an
        // empty buffer while records wait in the consumer.
        self.poll(Duration::ZERO);
        let mut cursor = self.cursor(partition)?;
        if !self.inputs_ready(partition, &cursor)? {
            return Ok(Vec::new());
        }
        let inputs = self
            .inputs
            .iter()
            .map(|topic| {
                let from = cursor.get(topic).copied().unwrap_or(0);
                (
                    topic.clone(),
                    self.buffers.from(topic, partition, from, max),
                )
            })
            .collect();
        let events = merge_from(inputs, max, &mut cursor);
        self.cursors.insert(partition, cursor);
        Ok(events)
    }

    fn state(&mut self, partition: u32) -> Result<(Box<dyn CommittedState>, i64)> {
        let cache = self
            .caches
            .entry(partition)
            .or_insert_with(|| StateCache::new(self.cache_bytes));
        let state = cache.over(self.local.partition_state(&self.function, partition)?);
        Ok((state, self.local.stream_time(&self.function, partition)?))
    }

    fn commit(&mut self, commits: Vec<Commit<'_>>) -> Result<()> {
        if let Some(lost) = commits.iter().find(|c| !self.assignment.runs(c.partition)) {
            bail!("partition {} was revoked before its commit", lost.partition);
        }
        self.commit_runs(commits)
    }

    fn rewind(&mut self, partition: u32) {
        self.cursors.remove(&partition);
    }

    /// Under a backlog, up to a second of batches or half a buffer's worth of records
    /// ([`MAX_BUFFERED`]) per commit: each commit writes a changelog record, a local
    /// store entry and a cache entry per key it changed, so a state of many keys, each
    /// changed a few times in a second, is written once for the second. Without a
    /// backlog a pass commits what arrived.
    fn commit_every(&self) -> CommitEvery {
        CommitEvery {
            events: MAX_BUFFERED / 2,
            after: Duration::from_secs(1),
        }
    }

    fn replay(&mut self, partition: u32, version: u32, replay: &Replay) -> Result<()> {
        self.replay_partition(partition, version, replay)
    }

    fn reset(&mut self) -> Result<()> {
        self.caches.clear();
        self.cursors.clear();
        match &self.broken {
            Some(reason) => bail!("the function's transactional producer cannot go on: {reason}"),
            None => Ok(()),
        }
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        for partition in self.assignment.release_all() {
            self.release(partition);
        }
        self.announced.remove(&self.function);
        self.consumer.unsubscribe();
    }
}
