//! A replica: the log (embedded, or Kafka with a local store for state), the engine, the
//! registry and one runner per deployed function, put together for `fnctl serve`. The
//! admin API calls into it; it validates what users ask for before anything changes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use serde::{Deserialize, Serialize};

use crate::embedded::{EmbeddedLog, LogConfig, PartitionExtent};
use crate::engine::{Engine, sha256_hex};
use crate::failure::FailureKind;
use crate::kafka::membership::Membership;
use crate::kafka::registry::KafkaRegistryStore;
use crate::kafka::{KafkaCluster, KafkaOptions};
use crate::logbook::LogBook;
use crate::metrics::{Metrics, NameLabels, PartitionLabels};
use crate::registry::{DeploySpec, Deployment, Registry, RegistryStore, StartFrom, validate_name};
use crate::runner::{RunnerContext, RunnerHandle};
use crate::source::embedded::EmbeddedBackend;
use crate::source::kafka::{KafkaBackend, changelog_topic};
use crate::source::{Backend, Commit};

/// Where a replica's topics live.
pub enum Mode {
    /// The embedded log in the data directory.
    Embedded(LogConfig),
    /// A Kafka cluster; the data directory keeps a local copy of state.
    Kafka(KafkaOptions),
}

/// The Kafka side of a replica.
struct KafkaParts {
    cluster: Arc<KafkaCluster>,
    membership: Arc<Membership>,
    registry: Arc<KafkaRegistryStore>,
}

/// A running replica.
pub struct Replica {
    /// The embedded log, or on Kafka the local store of state and components.
    pub log: Arc<EmbeddedLog>,
    /// This replica's id, unique among the replicas of a cluster.
    pub id: String,
    backend: Arc<dyn Backend>,
    kafka: Option<KafkaParts>,
    /// The wasm engine.
    pub engine: Arc<Engine>,
    /// Deployments.
    pub registry: Arc<Registry>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Guest log lines.
    pub logs: Arc<LogBook>,
    rates: Rates,
    runners: Mutex<BTreeMap<String, RunnerHandle>>,
    ready: AtomicBool,
    /// Partitions whose state is being restored.
    restoring: Arc<AtomicUsize>,
}

/// A partition of a function as `status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionStatus {
    /// Input topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Next offset the function will read.
    pub committed: u64,
    /// Next offset the topic will write.
    pub end: u64,
    /// Records not yet handled.
    pub lag: u64,
    /// The replica that owns it.
    pub owner: String,
}

/// A function as `status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionStatus {
    /// The running version.
    pub deployment: Deployment,
    /// Per input partition.
    pub partitions: Vec<PartitionStatus>,
    /// Total lag.
    pub lag: u64,
    /// Records handed to the function since this replica started.
    pub records_in: u64,
    /// Records it wrote to outputs.
    pub records_out: u64,
    /// Records dead-lettered.
    pub dead_letters: u64,
    /// Records handled per second over the last minute, on this replica.
    pub rate: f64,
    /// Average fuel burnt per record.
    pub fuel_per_event: f64,
    /// Failures by kind.
    pub failures: BTreeMap<FailureKind, u64>,
    /// State entries held.
    pub state_entries: u64,
}

/// How often the replica starts runners for deployments it learnt of.
const RECONCILE_EVERY: Duration = Duration::from_millis(500);

impl Replica {
    /// Opens the data directory (creating it), connects to the log of `mode`, and starts
    /// a runner per deployed function. `admin` is the admin API's address, announced to
    /// the other replicas on Kafka.
    pub fn open(data_dir: &Path, mode: Mode, admin: &str) -> Result<Arc<Replica>> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
        let dir = Dir::open_ambient_dir(data_dir, ambient_authority())
            .with_context(|| format!("opening the data directory {}", data_dir.display()))?;
        dir.create_dir_all("compiled")
            .context("creating the compiled-component cache")?;
        let cache = dir
            .open_dir("compiled")
            .context("opening the compiled-component cache")?;
        let id = replica_id(&dir)?;
        let engine = Engine::new(Some(cache))?;
        let metrics = Metrics::new();
        let restoring = Arc::new(AtomicUsize::new(0));
        let (log, backend, kafka, store): (_, Arc<dyn Backend>, _, Arc<dyn RegistryStore>) =
            match mode {
                Mode::Embedded(config) => {
                    let log = Arc::new(EmbeddedLog::open(&dir, config)?);
                    (
                        log.clone(),
                        Arc::new(EmbeddedBackend::new(log.clone())),
                        None,
                        log,
                    )
                }
                Mode::Kafka(options) => {
                    let log = Arc::new(EmbeddedLog::open(&dir, LogConfig::default())?);
                    let cluster = KafkaCluster::connect(options)?;
                    let membership = Membership::start(&cluster, &id, admin)?;
                    let registry = KafkaRegistryStore::open(cluster.clone(), log.clone())?;
                    let backend = KafkaBackend::new(
                        cluster.clone(),
                        log.clone(),
                        id.clone(),
                        membership.assignments.clone(),
                        metrics.clone(),
                        restoring.clone(),
                    );
                    let parts = KafkaParts {
                        cluster,
                        membership,
                        registry: registry.clone(),
                    };
                    (log, Arc::new(backend), Some(parts), registry)
                }
            };
        let registry = Arc::new(Registry::load(store)?);
        if let Some(kafka) = &kafka {
            kafka.registry.watch(Arc::downgrade(&registry))?;
        }
        let replica = Arc::new(Replica {
            log,
            id,
            backend,
            kafka,
            engine,
            registry,
            metrics,
            logs: Arc::new(LogBook::default()),
            rates: Rates::default(),
            runners: Mutex::new(BTreeMap::new()),
            ready: AtomicBool::new(false),
            restoring,
        });
        replica.reconcile()?;
        replica.ready.store(true, Ordering::Release);
        let weak = Arc::downgrade(&replica);
        std::thread::Builder::new()
            .name("reconcile".into())
            .spawn(move || reconcile_loop(weak))
            .context("starting the reconciler")?;
        Ok(replica)
    }

    /// Starts a runner for every deployed function that has none (deployments arrive from
    /// other replicas on Kafka) and forgets runners that ended.
    fn reconcile(&self) -> Result<()> {
        for deployment in self.registry.active() {
            self.ensure_runner(&deployment.spec.name)?;
        }
        self.runners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, runner| !runner.is_finished());
        Ok(())
    }

    /// Whether every deployed function has its runner and no partition's state is
    /// being restored.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && self.restoring.load(Ordering::Acquire) == 0
    }

    fn context(&self) -> RunnerContext {
        RunnerContext {
            backend: self.backend.clone(),
            engine: self.engine.clone(),
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            logs: self.logs.clone(),
        }
    }

    fn ensure_runner(&self, name: &str) -> Result<()> {
        let mut runners = self.runners.lock().unwrap_or_else(|p| p.into_inner());
        if runners.get(name).is_some_and(|r| !r.is_finished()) {
            return Ok(());
        }
        let handle = RunnerHandle::start(self.context(), name.to_owned())?;
        runners.insert(name.to_owned(), handle);
        Ok(())
    }

    /// Checks `bytes` is a component of the Streamfn world and stores it. Returns its
    /// sha256.
    pub fn upload(&self, bytes: &[u8], expected_sha256: Option<&str>) -> Result<String> {
        let sha256 = sha256_hex(bytes);
        if let Some(expected) = expected_sha256 {
            ensure!(
                expected == sha256,
                "the upload's sha256 is {sha256}, not {expected}: the file changed or was cut short"
            );
        }
        self.engine.load(bytes)?;
        self.registry.put_artifact(&sha256, bytes)?;
        Ok(sha256)
    }

    /// Deploys a new version of `spec.name` after checking that it can run.
    pub fn deploy(&self, spec: DeploySpec) -> Result<Deployment> {
        validate_name(&spec.name)?;
        spec.limits.validate()?;
        ensure!(
            !spec.inputs.is_empty(),
            "a function needs at least one --input topic"
        );
        let bytes = self
            .registry
            .artifact(&spec.component)?
            .with_context(|| format!("no component with sha256 {} was uploaded", spec.component))?;
        self.engine.load(&bytes)?;
        let mut partitions = None;
        for input in &spec.inputs {
            let count = match &self.kafka {
                Some(kafka) => kafka.cluster.require_partitions(input)?,
                None => self.log.require_topic(input)?.partitions,
            };
            match partitions {
                None => partitions = Some(count),
                Some(p) if p != count => bail!(
                    "input topics must be co-partitioned: {input} has {count} partitions, {} has {p}",
                    spec.inputs[0]
                ),
                Some(_) => {}
            }
        }
        let partitions = partitions.unwrap_or(1);
        for output in spec
            .outputs
            .iter()
            .chain(std::iter::once(&spec.dlq_topic()))
        {
            if spec.inputs.contains(output) {
                continue;
            }
            match &self.kafka {
                Some(kafka) => kafka
                    .cluster
                    .ensure_topic(output, partitions, &[])
                    .map(|_| ()),
                None => self.log.ensure_topic(output, partitions).map(|_| ()),
            }
            .with_context(|| format!("preparing output topic {output}"))?;
        }
        match &self.kafka {
            Some(kafka) => {
                let changelog = changelog_topic(&spec.name);
                kafka
                    .cluster
                    .ensure_topic(&changelog, partitions, &[("cleanup.policy", "compact")])
                    .context("preparing the state changelog topic")?;
            }
            // On Kafka the consumer's offset reset does this.
            None if spec.start == StartFrom::Latest => self.start_at_end(&spec)?,
            None => {}
        }
        let deployment = self.registry.deploy(spec, now_ms())?;
        self.ensure_runner(&deployment.spec.name)?;
        Ok(deployment)
    }

    /// Commits the inputs' end offsets for a function that has none, so it starts there.
    fn start_at_end(&self, spec: &DeploySpec) -> Result<()> {
        for input in &spec.inputs {
            let topic = self.log.require_topic(input)?;
            for (partition, extent) in self.log.extents(&topic)?.into_iter().enumerate() {
                let partition = partition as u32;
                if self.log.committed(&spec.name, &topic, partition)?.is_some() {
                    continue;
                }
                self.log.commit(&[Commit {
                    group: &spec.name,
                    partition,
                    offsets: vec![(input.clone(), extent.end)],
                    stream_time_ms: self.log.stream_time(&spec.name, partition)?,
                    effects: &Default::default(),
                }])?;
            }
        }
        Ok(())
    }

    /// Stops `name` after its current batch.
    pub fn undeploy(&self, name: &str) -> Result<Deployment> {
        let deployment = self.registry.undeploy(name)?;
        let handle = self
            .runners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        if let Some(handle) = handle {
            handle.stop();
        }
        Ok(deployment)
    }

    /// The status of `name`.
    pub fn status(&self, name: &str) -> Result<FunctionStatus> {
        let deployment = self
            .registry
            .current(name)
            .with_context(|| format!("no function named {name:?} is deployed"))?;
        let history = self.registry.history(name).unwrap_or_default();
        let versions: Vec<u32> = history.versions.iter().map(|d| d.version).collect();
        let partitions = match &self.kafka {
            Some(kafka) => kafka_partitions(kafka, &deployment)?,
            None => self.embedded_partitions(&deployment)?,
        };
        let mut owned: Vec<u32> = partitions
            .iter()
            .filter(|p| p.owner == self.id)
            .map(|p| p.partition)
            .collect();
        owned.dedup();
        let mut state_entries = 0;
        for partition in owned {
            state_entries += self.log.state_len(name, partition)?;
        }
        let records_in = Metrics::total(&self.metrics.records_in, name, versions.clone());
        let fuel = Metrics::total(&self.metrics.fuel, name, versions.clone());
        Ok(FunctionStatus {
            lag: partitions.iter().map(|p| p.lag).sum(),
            partitions,
            rate: self.rates.rate(name),
            fuel_per_event: if records_in == 0 {
                0.0
            } else {
                fuel as f64 / records_in as f64
            },
            records_in,
            records_out: Metrics::total(&self.metrics.records_out, name, versions.clone()),
            dead_letters: Metrics::total(&self.metrics.dead_letters, name, versions.clone()),
            failures: self
                .metrics
                .failures_of(name, versions)
                .into_iter()
                .collect(),
            state_entries,
            deployment,
        })
    }

    fn embedded_partitions(&self, deployment: &Deployment) -> Result<Vec<PartitionStatus>> {
        let name = &deployment.spec.name;
        let mut partitions = Vec::new();
        for input in &deployment.spec.inputs {
            let topic = self.log.require_topic(input)?;
            for (partition, PartitionExtent { start, end, .. }) in
                self.log.extents(&topic)?.into_iter().enumerate()
            {
                let partition = partition as u32;
                let committed = self
                    .log
                    .committed(name, &topic, partition)?
                    .unwrap_or(start)
                    .max(start);
                partitions.push(PartitionStatus {
                    topic: input.clone(),
                    partition,
                    committed,
                    end,
                    lag: end.saturating_sub(committed),
                    owner: self.id.clone(),
                });
            }
        }
        Ok(partitions)
    }

    /// Sets the gauges that are read off the log rather than counted: lag, committed
    /// offsets, assigned partitions and state entries of what this replica runs.
    pub fn refresh_gauges(&self) {
        let metrics = &self.metrics;
        metrics.consumer_lag.clear();
        metrics.committed_offset.clear();
        metrics.assigned_partitions.clear();
        metrics.state_entries.clear();
        for deployment in self.registry.active() {
            let name = &deployment.spec.name;
            let status = match self.status(name) {
                Ok(status) => status,
                Err(err) => {
                    tracing::debug!(function = %name, "no status for metrics: {err:#}");
                    continue;
                }
            };
            let mut owned = std::collections::BTreeSet::new();
            for p in status.partitions.iter().filter(|p| p.owner == self.id) {
                let labels = PartitionLabels {
                    function: name.clone(),
                    topic: p.topic.clone(),
                    partition: p.partition.to_string(),
                };
                metrics
                    .consumer_lag
                    .get_or_create(&labels)
                    .set(p.lag as i64);
                metrics
                    .committed_offset
                    .get_or_create(&labels)
                    .set(p.committed as i64);
                owned.insert(p.partition);
            }
            let labels = NameLabels {
                function: name.clone(),
            };
            metrics
                .assigned_partitions
                .get_or_create(&labels)
                .set(owned.len() as i64);
            metrics
                .state_entries
                .get_or_create(&labels)
                .set(status.state_entries as i64);
        }
    }

    /// The Kafka cluster, when the replica runs on one.
    pub fn kafka(&self) -> Option<&Arc<KafkaCluster>> {
        self.kafka.as_ref().map(|k| &k.cluster)
    }

    /// Replicas of the cluster heard from recently (this one only, on the embedded log).
    pub fn replicas(&self) -> Vec<String> {
        match &self.kafka {
            Some(kafka) => kafka
                .membership
                .live()
                .into_iter()
                .map(|a| a.replica)
                .collect(),
            None => vec![self.id.clone()],
        }
    }

    /// Stops every runner (their partitions go to other replicas) and leaves the cluster.
    pub fn shutdown(&self) {
        self.ready.store(false, Ordering::Release);
        let runners = std::mem::take(&mut *self.runners.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, runner) in runners {
            runner.stop();
        }
        if let Some(kafka) = &self.kafka {
            kafka.registry.stop();
            kafka.membership.stop();
        }
    }
}

/// Keeps runners in line with the registry while the replica lives, and samples what
/// functions handle for their rates.
fn reconcile_loop(replica: Weak<Replica>) {
    loop {
        std::thread::sleep(RECONCILE_EVERY);
        let Some(replica) = replica.upgrade() else {
            return;
        };
        if !replica.ready.load(Ordering::Acquire) {
            return;
        }
        if let Err(err) = replica.reconcile() {
            tracing::warn!("cannot start a runner: {err:#}");
        }
        for deployment in replica.registry.active() {
            let name = &deployment.spec.name;
            let versions = replica
                .registry
                .history(name)
                .map(|h| h.versions.iter().map(|d| d.version).collect::<Vec<_>>())
                .unwrap_or_default();
            replica.rates.sample(
                name,
                Metrics::total(&replica.metrics.records_in, name, versions),
            );
        }
    }
}

/// Samples of each function's records-in counter, for its rate over the last minute.
#[derive(Default)]
struct Rates(Mutex<BTreeMap<String, std::collections::VecDeque<(std::time::Instant, u64)>>>);

/// How far back a rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(60);

impl Rates {
    fn sample(&self, function: &str, total: u64) {
        let now = std::time::Instant::now();
        let mut samples = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let kept = samples.entry(function.to_owned()).or_default();
        kept.push_back((now, total));
        while kept
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            kept.pop_front();
        }
    }

    /// Records per second between the oldest and newest sample.
    fn rate(&self, function: &str) -> f64 {
        let samples = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(kept) = samples.get(function) else {
            return 0.0;
        };
        match (kept.front(), kept.back()) {
            (Some((t0, v0)), Some((t1, v1))) if t1 > t0 => {
                v1.saturating_sub(*v0) as f64 / t1.duration_since(*t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// Committed offsets, ends and owners of a function's partitions on Kafka.
fn kafka_partitions(kafka: &KafkaParts, deployment: &Deployment) -> Result<Vec<PartitionStatus>> {
    let name = &deployment.spec.name;
    let mut partitions = Vec::new();
    for input in &deployment.spec.inputs {
        let count = kafka.cluster.require_partitions(input)?;
        let committed = kafka.cluster.group_offsets(name, input, count)?;
        for (partition, committed) in committed.into_iter().enumerate() {
            let partition = partition as u32;
            let (start, end) = kafka.cluster.watermarks(input, partition)?;
            let committed = committed.unwrap_or(start).max(start);
            partitions.push(PartitionStatus {
                topic: input.clone(),
                partition,
                committed,
                end,
                lag: end.saturating_sub(committed),
                owner: kafka
                    .membership
                    .owner(name, partition)
                    .unwrap_or_else(|| "-".to_owned()),
            });
        }
    }
    Ok(partitions)
}

/// This replica's id, made once and kept in the data directory: a restarted replica
/// keeps its transactional ids and so fences its own unfinished transactions.
fn replica_id(dir: &Dir) -> Result<String> {
    const FILE: &str = "replica-id";
    if let Ok(id) = dir.read_to_string(FILE) {
        let id = id.trim().to_owned();
        if !id.is_empty() {
            return Ok(id);
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&(nanos, std::process::id()), &mut hasher);
    let id = format!(
        "r{:012x}",
        std::hash::Hasher::finish(&hasher) & 0xffff_ffff_ffff
    );
    dir.write(FILE, &id).context("writing the replica id")?;
    Ok(id)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
