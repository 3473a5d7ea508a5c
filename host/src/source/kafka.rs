//! Kafka as a source: one consumer group per function (co-partitioned assignment by the
//! broker's range assignor), a transactional producer per function and replica fenced
//! with the group's metadata (KIP-447), and state kept in a local store that caches a
//! compacted changelog topic. A commit is one Kafka transaction holding the output
//! records, the changelog records and the input offsets; at-least-once mode flushes the
//! records and then commits the offsets instead.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientContext, Message};

use super::{Backend, Commit, CommitEvery, Positions, Source, merge_by_timestamp};
use crate::dispatch::InputEvent;
use crate::effects::Effects;
use crate::embedded::EmbeddedLog;
use crate::kafka::membership::Assignments;
use crate::kafka::{KafkaCluster, REQUEST_TIMEOUT, flush, record_of, send_record};
use crate::metrics::{Metrics, NameLabels};
use crate::partitioner::partition_for;
use crate::record::Record;
use crate::registry::{Deployment, StartFrom};
use crate::state::{CommittedState, StateCache};

/// Largest record functions may produce on Kafka, unless `message.max.bytes` says.
const MAX_RECORD_BYTES: usize = 1 << 20;

/// Longest a partition waits for records of one co-partitioned input that the broker
/// has but this replica has not fetched yet.
const MAX_INPUT_IDLE: Duration = Duration::from_secs(2);

/// How long an input partition's end, as asked of the broker, is taken as current.
const END_FRESH_FOR: Duration = Duration::from_millis(500);

/// Records buffered per input partition before fetching from Kafka pauses.
const MAX_BUFFERED: usize = 20_000;

/// Kafka transactions abort on their own after this long without a commit, so a replica
/// that died mid-transaction holds its partitions' outputs (and the group's offsets)
/// back at most this long. A transaction only spans the sending of one commit's records.
const TRANSACTION_TIMEOUT_MS: &str = "5000";

/// The changelog topic of `function`'s state.
pub fn changelog_topic(function: &str) -> String {
    format!("{function}-changelog")
}

/// Changelog keys start with the kind of entry they hold.
const STATE_ENTRY: u8 = 0;
const TIMER_ENTRY: u8 = 1;
const STREAM_TIME_ENTRY: u8 = 2;

/// Functions' sources on one Kafka cluster.
pub struct KafkaBackend {
    cluster: Arc<KafkaCluster>,
    local: Arc<EmbeddedLog>,
    replica: String,
    assignments: Arc<Assignments>,
    metrics: Arc<Metrics>,
    restoring: Arc<AtomicUsize>,
}

impl KafkaBackend {
    /// A backend for replica `replica`, keeping local copies of state in `local`,
    /// announcing assignments in `assignments`, and counting partitions being restored
    /// in `restoring`.
    pub fn new(
        cluster: Arc<KafkaCluster>,
        local: Arc<EmbeddedLog>,
        replica: String,
        assignments: Arc<Assignments>,
        metrics: Arc<Metrics>,
        restoring: Arc<AtomicUsize>,
    ) -> Self {
        KafkaBackend {
            cluster,
            local,
            replica,
            assignments,
            metrics,
            restoring,
        }
    }
}

impl Backend for KafkaBackend {
    fn source(&self, deployment: &Deployment) -> Result<Box<dyn Source>> {
        Ok(Box::new(KafkaSource::open(self, deployment)?))
    }

    fn max_record_bytes(&self) -> usize {
        self.cluster
            .options
            .properties
            .iter()
            .find(|(k, _)| k == "message.max.bytes")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(MAX_RECORD_BYTES)
    }
}

/// A change of the consumer's assignment, recorded during a poll.
enum Change {
    Assigned(Vec<(String, u32)>),
    Revoked(Vec<(String, u32)>),
}

/// Records assignment changes for the source to act on after the poll returns, when no
/// batch is under way.
struct Rebalances(Arc<Mutex<Vec<Change>>>);

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
struct KafkaSource {
    cluster: Arc<KafkaCluster>,
    local: Arc<EmbeddedLog>,
    function: String,
    inputs: Vec<String>,
    changelog: String,
    exactly_once: bool,
    start: StartFrom,
    consumer: BaseConsumer<Rebalances>,
    changes: Arc<Mutex<Vec<Change>>>,
    metrics: Arc<Metrics>,
    restoring: Arc<AtomicUsize>,
    producer: BaseProducer,
    assignments: Arc<Assignments>,
    /// Input topic partitions the group gave this replica.
    assigned: BTreeSet<(String, u32)>,
    /// Partition numbers whose every input is assigned and whose state is restored.
    owned: BTreeSet<u32>,
    /// Committed positions of owned partitions.
    positions: BTreeMap<u32, Positions>,
    /// Records fetched from Kafka and not yet committed, per input topic partition.
    buffers: BTreeMap<(String, u32), VecDeque<(u64, Record)>>,
    paused: BTreeSet<(String, u32)>,
    caches: BTreeMap<u32, StateCache>,
    /// Since when a partition waits for one of its co-partitioned inputs.
    waiting: BTreeMap<u32, Instant>,
    /// Input partitions' ends as last asked of the broker, and when.
    known_ends: BTreeMap<(String, u32), (Instant, u64)>,
}

impl KafkaSource {
    fn open(backend: &KafkaBackend, deployment: &Deployment) -> Result<KafkaSource> {
        let spec = &deployment.spec;
        let options = &backend.cluster.options;
        let changes = Arc::new(Mutex::new(Vec::new()));
        let reset = match spec.start {
            StartFrom::Earliest => "earliest",
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
            ])
            .create_with_context(Rebalances(changes.clone()))
            .context("configuring the function's consumer")?;
        let topics: Vec<&str> = spec.inputs.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .context("subscribing to the inputs")?;

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
            .create()
            .context("configuring the function's producer")?;
        if exactly_once {
            producer
                .init_transactions(REQUEST_TIMEOUT * 2)
                .map_err(|e| anyhow!("cannot start Kafka transactions for {}: {e}", spec.name))?;
        }
        Ok(KafkaSource {
            cluster: backend.cluster.clone(),
            local: backend.local.clone(),
            function: spec.name.clone(),
            inputs: spec.inputs.clone(),
            changelog: changelog_topic(&spec.name),
            exactly_once,
            start: spec.start,
            consumer,
            changes,
            metrics: backend.metrics.clone(),
            restoring: backend.restoring.clone(),
            producer,
            assignments: backend.assignments.clone(),
            assigned: BTreeSet::new(),
            owned: BTreeSet::new(),
            positions: BTreeMap::new(),
            buffers: BTreeMap::new(),
            paused: BTreeSet::new(),
            caches: BTreeMap::new(),
            waiting: BTreeMap::new(),
            known_ends: BTreeMap::new(),
        })
    }

    /// Polls the consumer for up to `timeout` and buffers what arrives.
    fn poll(&mut self, timeout: Duration) {
        let mut wait = timeout;
        for _ in 0..10_000 {
            let Some(result) = self.consumer.poll(wait) else {
                break;
            };
            wait = Duration::ZERO;
            match result {
                Ok(message) => buffer(&message, &mut self.buffers),
                Err(err) => tracing::warn!(function = %self.function, "consumer: {err}"),
            }
        }
        self.throttle();
    }

    /// Pauses fetching for partitions with a full buffer, resumes drained ones.
    fn throttle(&mut self) {
        let mut pause = TopicPartitionList::new();
        let mut resume = TopicPartitionList::new();
        for (key, buffer) in &self.buffers {
            let paused = self.paused.contains(key);
            if !paused && buffer.len() >= MAX_BUFFERED {
                pause.add_partition(&key.0, key.1 as i32);
            } else if paused && buffer.len() < MAX_BUFFERED / 4 {
                resume.add_partition(&key.0, key.1 as i32);
            }
        }
        for e in pause.elements() {
            self.paused
                .insert((e.topic().to_owned(), e.partition() as u32));
        }
        for e in resume.elements() {
            self.paused
                .remove(&(e.topic().to_owned(), e.partition() as u32));
        }
        if pause.count() > 0 {
            let _ = self.consumer.pause(&pause);
        }
        if resume.count() > 0 {
            let _ = self.consumer.resume(&resume);
        }
    }

    /// Acts on assignment changes: restores partitions that became whole, drops revoked ones.
    fn apply_changes(&mut self) -> Result<()> {
        let changes = std::mem::take(&mut *self.changes.lock().unwrap_or_else(|p| p.into_inner()));
        for change in changes {
            match change {
                Change::Assigned(list) => self.assigned.extend(list),
                Change::Revoked(list) => {
                    for (topic, partition) in list {
                        self.assigned.remove(&(topic.clone(), partition));
                        self.buffers.remove(&(topic.clone(), partition));
                        self.paused.remove(&(topic, partition));
                        if self.owned.remove(&partition) {
                            self.release(partition);
                        }
                    }
                }
            }
        }
        let whole: Vec<u32> = self
            .assigned
            .iter()
            .map(|(_, p)| *p)
            .collect::<BTreeSet<u32>>()
            .into_iter()
            .filter(|p| !self.owned.contains(p))
            .filter(|p| {
                self.inputs
                    .iter()
                    .all(|t| self.assigned.contains(&(t.clone(), *p)))
            })
            .collect();
        for partition in whole {
            self.restore(partition)?;
            self.positions
                .insert(partition, self.committed_positions(partition)?);
            self.owned.insert(partition);
            tracing::info!(function = %self.function, partition, "partition assigned");
        }
        self.assignments.set(&self.function, self.owned.clone());
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
            let buffered = self
                .buffers
                .get(&(topic.clone(), partition))
                .is_some_and(|b| b.back().is_some_and(|(o, _)| *o >= position));
            if buffered {
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

    /// Moves positions past what the consumer skipped without handing it over
    /// (transaction markers, aborted records) when everything fetched is handled, so a
    /// drained partition shows no lag.
    fn past_markers(&self, partition: u32, offsets: Vec<(String, u64)>) -> Vec<(String, u64)> {
        let Ok(consumed) = self.consumer.position() else {
            return offsets;
        };
        offsets
            .into_iter()
            .map(|(topic, next)| {
                let drained = self
                    .buffers
                    .get(&(topic.clone(), partition))
                    .is_none_or(|b| b.back().is_none_or(|(o, _)| *o < next));
                let fetched = consumed
                    .find_partition(&topic, partition as i32)
                    .and_then(|e| e.offset().to_raw())
                    .filter(|o| *o >= 0)
                    .map_or(0, |o| o as u64);
                let next = if drained { next.max(fetched) } else { next };
                (topic, next)
            })
            .collect()
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
        if let Ok((_, high)) = self.cluster.watermarks(&self.changelog, partition) {
            let _ = self.local.put_checkpoint(&self.function, partition, high);
        }
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
            .context("reading the group's committed offsets")?;
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
                    }
                }
            };
            positions.insert(topic.clone(), start);
        }
        Ok(positions)
    }

    /// Brings the local copy of `partition`'s state up to the end of its changelog.
    fn restore(&mut self, partition: u32) -> Result<()> {
        let started = Instant::now();
        let (low, high) = self.cluster.watermarks(&self.changelog, partition)?;
        let from = match self.local.checkpoint(&self.function, partition)? {
            Some(checkpoint) if checkpoint >= low && checkpoint <= high => checkpoint,
            _ => {
                self.local.clear_state(&self.function, partition)?;
                low
            }
        };
        if from >= high {
            return Ok(());
        }
        self.restoring.fetch_add(1, Ordering::SeqCst);
        let result = self.read_changelog(partition, from, high);
        self.restoring.fetch_sub(1, Ordering::SeqCst);
        let restored = result?;
        let labels = NameLabels {
            function: self.function.clone(),
        };
        self.metrics.restores.get_or_create(&labels).inc();
        self.metrics
            .restored_records
            .get_or_create(&labels)
            .inc_by(restored);
        tracing::info!(function = %self.function, partition, restored, millis = started.elapsed().as_millis() as u64, "state restored");
        Ok(())
    }

    /// Reads `partition`'s changelog from `from` into the local store; returns how many
    /// records it read.
    fn read_changelog(&self, partition: u32, from: u64, high: u64) -> Result<u64> {
        tracing::info!(function = %self.function, partition, records = high - from, "restoring state from the changelog");
        let reader: BaseConsumer<QuietEnd> = self
            .cluster
            .options
            .config(&[
                ("enable.auto.commit", "false"),
                ("group.id", &format!("{}-restore", self.function)),
                ("isolation.level", "read_committed"),
                ("enable.partition.eof", "true"),
                // Reaching the end is the point: don't let the broker hold the last fetch.
                ("fetch.wait.max.ms", "10"),
            ])
            .create_with_context(QuietEnd)
            .context("configuring the changelog reader")?;
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(
            &self.changelog,
            partition as i32,
            Offset::Offset(from as i64),
        )?;
        reader.assign(&list)?;
        let mut pending = Effects::default();
        let mut stream_time = None;
        let mut restored = 0u64;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if Instant::now() > deadline {
                bail!("restoring {}/{partition} took too long", self.changelog);
            }
            match reader.poll(Duration::from_millis(500)) {
                None => {}
                // The end of what is committed. A transaction left open by a replica
                // that died mid-commit lies beyond it and will be aborted: its writes
                // never count, and the group refuses its offsets, so there is no need to
                // wait for it.
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                Some(Err(err)) => bail!("reading the changelog: {err}"),
                Some(Ok(message)) => {
                    restored += 1;
                    apply_changelog(&message, &mut pending, &mut stream_time);
                    if pending.state.len() + pending.timers.len() >= 10_000 {
                        self.cache_local(partition, &mut pending, stream_time)?;
                    }
                }
            }
        }
        self.cache_local(partition, &mut pending, stream_time)?;
        let reached = reader
            .position()?
            .find_partition(&self.changelog, partition as i32)
            .and_then(|e| e.offset().to_raw())
            .filter(|o| *o >= 0)
            .map_or(from, |o| o as u64);
        self.local
            .put_checkpoint(&self.function, partition, reached)?;
        Ok(restored)
    }

    /// Writes restored or committed changes into the local copy of the state.
    fn cache_local(
        &self,
        partition: u32,
        pending: &mut Effects,
        stream_time: Option<i64>,
    ) -> Result<()> {
        let stream_time_ms = match stream_time {
            Some(t) => t,
            None => self.local.stream_time(&self.function, partition)?,
        };
        self.local.cache_commit(&[Commit {
            group: &self.function,
            partition,
            offsets: Vec::new(),
            stream_time_ms,
            effects: pending,
        }])?;
        *pending = Effects::default();
        Ok(())
    }

    fn send(&self, topic: &str, partition: u32, record: &Record) -> Result<()> {
        send_record(&self.producer, topic, Some(partition), record)
    }

    /// Sends a run of batches' outputs and changelog records.
    fn send_all(&self, commit: &Commit<'_>) -> Result<()> {
        for output in &commit.effects.outputs {
            let partitions = self.cluster.require_partitions(&output.topic)?;
            let p = partition_for(
                output.record.key.as_deref(),
                partitions,
                output.fallback_partition,
            );
            self.send(&output.topic, p, &output.record)?;
        }
        let partition = commit.partition;
        let entry = |kind: u8, key: &[u8], value: Option<Vec<u8>>| Record {
            timestamp_ms: commit.stream_time_ms.max(0),
            key: Some([&[kind][..], key].concat()),
            value,
            headers: Vec::new(),
        };
        for (key, value) in &commit.effects.state {
            self.send(
                &self.changelog,
                partition,
                &entry(STATE_ENTRY, key, value.clone()),
            )?;
        }
        for (key, at) in &commit.effects.timers {
            let value = at.map(|at| at.to_be_bytes().to_vec());
            self.send(&self.changelog, partition, &entry(TIMER_ENTRY, key, value))?;
        }
        let stream_time = Some(commit.stream_time_ms.to_be_bytes().to_vec());
        self.send(
            &self.changelog,
            partition,
            &entry(STREAM_TIME_ENTRY, &[], stream_time),
        )
    }

    fn offsets(commits: &[Commit<'_>]) -> Result<TopicPartitionList> {
        let mut list = TopicPartitionList::new();
        for commit in commits {
            for (topic, next) in &commit.offsets {
                list.add_partition_offset(
                    topic,
                    commit.partition as i32,
                    Offset::Offset(*next as i64),
                )?;
            }
        }
        Ok(list)
    }

    fn commit_transaction(&self, commits: &[Commit<'_>]) -> Result<()> {
        self.producer
            .begin_transaction()
            .map_err(|e| anyhow!("beginning a transaction: {e}"))?;
        let result = commits
            .iter()
            .try_for_each(|c| self.send_all(c))
            .and_then(|()| {
                let metadata = self
                    .consumer
                    .group_metadata()
                    .context("the consumer has no group metadata")?;
                self.producer
                    .send_offsets_to_transaction(
                        &Self::offsets(commits)?,
                        &metadata,
                        REQUEST_TIMEOUT,
                    )
                    .map_err(|e| anyhow!("adding offsets to the transaction: {e}"))?;
                flush(&self.producer, REQUEST_TIMEOUT)?;
                self.producer
                    .commit_transaction(REQUEST_TIMEOUT)
                    .map_err(|e| anyhow!("committing the transaction: {e}"))
            });
        if result.is_err() {
            let _ = self.producer.abort_transaction(REQUEST_TIMEOUT);
        }
        result
    }

    fn commit_at_least_once(&self, commits: &[Commit<'_>]) -> Result<()> {
        commits.iter().try_for_each(|c| self.send_all(c))?;
        flush(&self.producer, REQUEST_TIMEOUT)?;
        self.consumer
            .commit(&Self::offsets(commits)?, CommitMode::Sync)
            .map_err(|e| anyhow!("committing offsets: {e}"))
    }
}

/// Keeps a fetched record until it is committed. Records arrive only for assigned
/// partitions, possibly before this source has taken the assignment in, so none is
/// turned away here; revoked partitions' buffers are dropped with them.
fn buffer(
    message: &BorrowedMessage<'_>,
    buffers: &mut BTreeMap<(String, u32), VecDeque<(u64, Record)>>,
) {
    let key = (message.topic().to_owned(), message.partition() as u32);
    buffers
        .entry(key)
        .or_default()
        .push_back((message.offset() as u64, record_of(message)));
}

/// The changelog reader's context: reaching the end of the partition is what it waits
/// for, not an error worth logging.
struct QuietEnd;

impl ClientContext for QuietEnd {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        let end = matches!(
            error,
            rdkafka::error::KafkaError::PartitionEOF(_)
                | rdkafka::error::KafkaError::Global(
                    rdkafka::types::RDKafkaErrorCode::PartitionEOF
                )
        );
        if !end {
            tracing::warn!("changelog reader: {error}: {reason}");
        }
    }
}

impl ConsumerContext for QuietEnd {}

/// Applies one changelog record to pending local changes.
fn apply_changelog(
    message: &BorrowedMessage<'_>,
    pending: &mut Effects,
    stream_time: &mut Option<i64>,
) {
    let Some((kind, key)) = message.key().and_then(|k| k.split_first()) else {
        return;
    };
    let value = message.payload().map(<[u8]>::to_vec);
    match *kind {
        STATE_ENTRY => {
            pending.state.insert(key.to_vec(), value);
        }
        TIMER_ENTRY => {
            let at = value
                .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
                .map(i64::from_be_bytes);
            pending.timers.insert(key.to_vec(), at);
        }
        STREAM_TIME_ENTRY => {
            if let Some(v) = value.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()) {
                *stream_time = Some(i64::from_be_bytes(v));
            }
        }
        _ => {}
    }
}

impl Source for KafkaSource {
    fn partitions(&mut self) -> Result<Vec<u32>> {
        self.poll(Duration::ZERO);
        self.apply_changes()?;
        Ok(self.owned.iter().copied().collect())
    }

    fn wait(&mut self, timeout: Duration) {
        self.poll(timeout);
    }

    fn positions(&mut self, partition: u32) -> Result<Positions> {
        self.positions
            .get(&partition)
            .cloned()
            .with_context(|| format!("partition {partition} is not assigned here"))
    }

    fn fetch(
        &mut self,
        partition: u32,
        positions: &Positions,
        max: usize,
    ) -> Result<Vec<InputEvent>> {
        // Take in what has arrived since, so a run of batches is not cut short by an
        // empty buffer while records wait in the consumer.
        self.poll(Duration::ZERO);
        if !self.inputs_ready(partition, positions)? {
            return Ok(Vec::new());
        }
        let mut inputs = Vec::with_capacity(self.inputs.len());
        for topic in &self.inputs {
            let from = positions.get(topic).copied().unwrap_or(0);
            let records: Vec<(u64, Record)> = self
                .buffers
                .get(&(topic.clone(), partition))
                .map(|b| {
                    b.iter()
                        .filter(|(o, _)| *o >= from)
                        .take(max)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            inputs.push((topic.clone(), records));
        }
        Ok(merge_by_timestamp(inputs, max))
    }

    fn state(&mut self, partition: u32) -> Result<(Box<dyn CommittedState>, i64)> {
        let cache = self.caches.entry(partition).or_default();
        let state = cache.over(self.local.partition_state(&self.function, partition)?);
        Ok((state, self.local.stream_time(&self.function, partition)?))
    }

    fn commit(&mut self, commits: Vec<Commit<'_>>) -> Result<()> {
        if let Some(lost) = commits.iter().find(|c| !self.owned.contains(&c.partition)) {
            bail!("partition {} was revoked before its commit", lost.partition);
        }
        let commits: Vec<Commit<'_>> = commits
            .into_iter()
            .map(|c| Commit {
                offsets: self.past_markers(c.partition, c.offsets),
                ..c
            })
            .collect();
        if self.exactly_once {
            self.commit_transaction(&commits)?;
        } else {
            self.commit_at_least_once(&commits)?;
        }
        let local: Vec<Effects> = commits
            .iter()
            .map(|c| Effects {
                state: c.effects.state.clone(),
                timers: c.effects.timers.clone(),
                outputs: Vec::new(),
            })
            .collect();
        let cached: Vec<Commit<'_>> = commits
            .iter()
            .zip(&local)
            .map(|(c, effects)| Commit {
                group: c.group,
                partition: c.partition,
                offsets: Vec::new(),
                stream_time_ms: c.stream_time_ms,
                effects,
            })
            .collect();
        self.local.cache_commit(&cached)?;
        for commit in &commits {
            let partition = commit.partition;
            self.caches
                .entry(partition)
                .or_default()
                .apply(&commit.effects.state);
            for (topic, next) in &commit.offsets {
                if let Some(buffer) = self.buffers.get_mut(&(topic.clone(), partition)) {
                    while buffer.front().is_some_and(|(o, _)| o < next) {
                        buffer.pop_front();
                    }
                }
            }
            self.positions
                .entry(partition)
                .or_default()
                .extend(commit.offsets.iter().cloned());
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.caches.clear();
    }

    /// A Kafka commit costs several round trips to the broker (a transaction's even more),
    /// so commits cover more than on the embedded log: every 100 ms, as Kafka Streams
    /// commits with exactly-once.
    fn commit_every(&self) -> CommitEvery {
        CommitEvery {
            events: 20_000,
            after: Duration::from_millis(100),
        }
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        for partition in std::mem::take(&mut self.owned) {
            self.release(partition);
        }
        self.assignments.remove(&self.function);
        self.consumer.unsubscribe();
    }
}
