//! Apache Kafka as the log behind a replica: one consumer group per function, a
//! transactional producer per function and replica fenced with the group's metadata
//! (KIP-447), state in a local store that caches a compacted changelog topic (and keeps
//! standby copies of partitions other replicas run, when asked), deployments
//! and components in compacted internal topics, and an announcement of who runs what.
//! Topics and records are Kafka's own: `fnctl` reads and writes them with plain Kafka
//! clients (`client.rs`), not through a replica.

mod assignment;
mod buffers;
mod changelog;
pub mod client;
mod cluster;
mod commit;
mod denied;
pub mod membership;
mod records;
pub mod registry;
mod replay;
mod source;
mod standby;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context as _, Result};

use self::changelog::Pending;
pub use self::changelog::changelog_topic;
pub use self::cluster::{KafkaCluster, KafkaOptions, MAX_MESSAGE_BYTES, REQUEST_TIMEOUT};
use self::membership::Membership;
pub use self::records::{record_of, send_record};
use self::registry::KafkaRegistryStore;
use self::source::KafkaSource;
use self::standby::{Copies, Standby};
use super::{
    Backend, Fetched, Idempotence, LogError, NewTopic, Opener, PartitionStatus, Restore, StateAt,
    StorageUse, TopicInfo, Trouble,
};
use crate::log::embedded::{EmbeddedLog, LogConfig};
use crate::metrics::Metrics;
use crate::model::clock::now_ms;
use crate::model::deployment::{DeploySpec, Deployment};
use crate::model::record::Record;
use crate::registry::RegistryStore;
use crate::runner::{Source, Sources};

/// Largest record functions may produce on Kafka, unless `message.max.bytes` says.
const MAX_RECORD_BYTES: usize = 1 << 20;

/// A replica's side of a Kafka cluster.
pub struct KafkaBackend {
    cluster: Arc<KafkaCluster>,
    /// The local store: state of the partitions run here, and components.
    local: Arc<EmbeddedLog>,
    replica: String,
    membership: Arc<Membership>,
    registry: Arc<KafkaRegistryStore>,
    metrics: Arc<Metrics>,
    /// Partitions whose state is being restored.
    restoring: Arc<Restoring>,
    /// Which partitions run here and which copies are being written.
    copies: Arc<Copies>,
    /// The standby copies kept here, when the replica keeps any.
    standby: Option<Standby>,
    /// Bytes each partition's cache of committed state holds at most.
    state_cache_bytes: usize,
}

/// The function partitions whose state this replica is restoring from their changelogs,
/// and how far each has come.
#[derive(Debug, Default)]
struct Restoring(std::sync::Mutex<BTreeMap<(String, u32), Restore>>);

/// How often a restore under way says how far it has come.
const RESTORE_REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

impl Restoring {
    /// Counts `function`'s `partition` as restoring while `restore` runs, which tells
    /// the progress function it is given how far it has come (what it read, and the most
    /// it will), which is logged every so often.
    fn during<T>(
        &self,
        function: &str,
        partition: u32,
        restore: impl FnOnce(&mut dyn FnMut(&Pending, u64)) -> T,
    ) -> T {
        let key = (function.to_owned(), partition);
        let started = std::time::Instant::now();
        self.lock().insert(
            key.clone(),
            Restore {
                partition,
                records: 0,
                of: 0,
                bytes: 0,
                started_ms: now_ms(),
            },
        );
        let mut reported = started;
        let mut progress = |pending: &Pending, of: u64| {
            if let Some(restore) = self.lock().get_mut(&key) {
                (restore.records, restore.bytes, restore.of) = (pending.records, pending.bytes, of);
            }
            if reported.elapsed() >= RESTORE_REPORT_EVERY {
                reported = std::time::Instant::now();
                let seconds = started.elapsed().as_secs_f64();
                tracing::info!(
                    function,
                    partition,
                    records = pending.records,
                    of,
                    mb = pending.bytes as f64 / 1e6,
                    mb_per_s = pending.bytes as f64 / 1e6 / seconds,
                    "restoring state: {:.0}% of the changelog read",
                    100.0 * pending.records as f64 / of.max(1) as f64
                );
            }
        };
        let result = restore(&mut progress);
        self.lock().remove(&key);
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, u32), Restore>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn contains(&self, function: &str, partition: u32) -> bool {
        self.lock().contains_key(&(function.to_owned(), partition))
    }

    /// The restores of `function` under way.
    fn of(&self, function: &str) -> Vec<Restore> {
        self.lock()
            .iter()
            .filter(|((f, _), _)| f == function)
            .map(|(_, restore)| restore.clone())
            .collect()
    }
}

impl KafkaBackend {
    /// Connects, opens the local store in the data directory, and joins the replicas.
    pub fn open(opener: &Opener<'_>, options: KafkaOptions) -> Result<Self> {
        let cache = LogConfig {
            only_copy: false,
            ..LogConfig::default()
        };
        let local = Arc::new(EmbeddedLog::open(opener.dir, cache)?);
        let cluster = KafkaCluster::connect(options)?;
        let membership = Membership::start(&cluster, opener.replica, opener.admin)?;
        let registry = KafkaRegistryStore::open(cluster.clone(), local.clone())?;
        let copies = Arc::new(Copies::default());
        let standby = match cluster.options.standby_replicas {
            0 => None,
            replicas => Some(Standby::start(
                cluster.clone(),
                local.clone(),
                membership.clone(),
                copies.clone(),
                opener.metrics.clone(),
                opener.replica,
                replicas as usize,
            )?),
        };
        Ok(KafkaBackend {
            cluster,
            local,
            replica: opener.replica.to_owned(),
            membership,
            registry,
            metrics: opener.metrics.clone(),
            restoring: Arc::default(),
            copies,
            standby,
            state_cache_bytes: opener.state_cache_bytes,
        })
    }

    /// Where records are, for the routes a replica on Kafka does not serve.
    fn elsewhere(&self) -> LogError {
        LogError::Elsewhere(format!(
            "this replica runs on Kafka at {0}: use `fnctl topics|produce|consume --brokers {0}`",
            self.cluster.options.brokers
        ))
    }
}

impl Sources for KafkaBackend {
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

impl Backend for KafkaBackend {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    fn topics(&self) -> Result<Vec<TopicInfo>, LogError> {
        Err(self.elsewhere())
    }

    fn topic(&self, _name: &str) -> Result<TopicInfo, LogError> {
        Err(self.elsewhere())
    }

    fn create_topic(&self, _topic: &NewTopic) -> Result<TopicInfo, LogError> {
        Err(self.elsewhere())
    }

    fn append(
        &self,
        _topic: &str,
        _records: Vec<(Option<u32>, Record)>,
        _idempotence: Option<Idempotence<'_>>,
    ) -> Result<Vec<(u32, u64)>, LogError> {
        Err(self.elsewhere())
    }

    fn read(
        &self,
        _topic: &str,
        _partition: u32,
        _from: u64,
        _max: usize,
    ) -> Result<Fetched, LogError> {
        Err(self.elsewhere())
    }

    fn partitions(&self, topic: &str) -> Result<u32> {
        self.cluster.require_partitions(topic)
    }

    fn topic_partitions(&self) -> Result<Vec<(String, u32)>> {
        self.cluster.topics()
    }

    fn prepare(&self, spec: &DeploySpec, partitions: u32) -> Result<()> {
        for output in spec.written_topics() {
            self.cluster
                .ensure_topic(&output, partitions, &[])
                .with_context(|| format!("preparing output topic {output}"))?;
        }
        // Where a new function starts is the consumer's offset reset.
        self.cluster
            .ensure_topic(
                &changelog_topic(&spec.name),
                partitions,
                &[("cleanup.policy", "compact")],
            )
            .context("preparing the state changelog topic")?;
        Ok(())
    }

    fn partition_status(&self, deployment: &Deployment) -> Result<Vec<PartitionStatus>> {
        let name = &deployment.spec.name;
        let mut partitions = Vec::new();
        for input in &self.inputs_of(&deployment.spec)? {
            let count = self.cluster.require_partitions(input)?;
            let committed = match self.cluster.group_offsets(name, input, count) {
                Ok(committed) => committed,
                // The function's own failure names the ACL it lacks; its partitions
                // still show what is on them.
                Err(err) if denied::is_denied(&err) => {
                    tracing::debug!(function = %name, "no committed offsets: {err:#}");
                    vec![None; count as usize]
                }
                Err(err) => return Err(err),
            };
            for (partition, committed) in committed.into_iter().enumerate() {
                let partition = partition as u32;
                let owner = self
                    .membership
                    .owner(name, partition)
                    .unwrap_or_else(|| crate::log::NO_OWNER.to_owned());
                partitions.push(PartitionStatus::new(
                    input,
                    partition,
                    self.cluster.watermarks(input, partition)?,
                    committed,
                    owner,
                ));
            }
        }
        Ok(partitions)
    }

    fn state_entries(&self, function: &str, partition: u32) -> Result<u64> {
        self.local.state_len(function, partition)
    }

    fn state_bytes(&self, function: &str, partition: u32) -> Result<u64> {
        self.local.state_bytes(function, partition)
    }

    fn replayed(&self, function: &str, partition: u32) -> Result<Option<u32>> {
        self.local.replayed(function, partition)
    }

    fn restoring(&self) -> usize {
        self.restoring.len()
    }

    fn restores(&self, function: &str) -> Vec<Restore> {
        self.restoring.of(function)
    }

    fn standbys(&self, function: &str) -> Vec<(u32, u64)> {
        self.standby
            .as_ref()
            .map_or_else(Vec::new, |standby| standby.of(function))
    }

    fn state_at(&self, function: &str, partition: u32) -> Result<StateAt> {
        if self.restoring.contains(function, partition) {
            return Ok(StateAt::Unavailable(format!(
                "partition {partition} of {function} is restoring its state from {} here",
                changelog_topic(function)
            )));
        }
        match self.membership.owner(function, partition) {
            Some(owner) if owner == self.replica => Ok(StateAt::Here(
                self.local.partition_state(function, partition)?,
            )),
            Some(owner) => match self
                .membership
                .live()
                .into_iter()
                .find(|a| a.replica == owner)
            {
                Some(announcement) => Ok(StateAt::Elsewhere {
                    replica: owner,
                    admin: announcement.admin,
                }),
                None => Ok(StateAt::Unavailable(format!(
                    "replica {owner}, which runs partition {partition} of {function}, is not heard from"
                ))),
            },
            None => Ok(StateAt::Unavailable(format!(
                "no replica runs partition {partition} of {function} now (its group is rebalancing, or restoring it)"
            ))),
        }
    }

    fn replicas(&self) -> Vec<String> {
        self.membership
            .live()
            .into_iter()
            .map(|a| a.replica)
            .collect()
    }

    fn registry_store(&self) -> Arc<dyn RegistryStore> {
        self.registry.clone()
    }

    fn maintain(&self, _now_ms: i64) -> Result<()> {
        // The brokers keep their own retention, and the local store has no topics.
        Ok(())
    }

    fn trouble(&self) -> Option<Trouble> {
        self.local.trouble()
    }

    fn recover(&self) -> bool {
        self.local.recover()
    }

    fn storage(&self) -> Result<StorageUse> {
        let (store_bytes, free_bytes) = self.local.usage()?;
        Ok(StorageUse {
            store_bytes,
            free_bytes,
            io_errors: self.local.io_errors(),
        })
    }

    fn shutdown(&self) {
        if let Some(standby) = &self.standby {
            standby.stop();
        }
        self.registry.stop();
        self.membership.stop();
    }
}
