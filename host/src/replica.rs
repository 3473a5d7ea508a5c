//! A replica: the embedded log, the engine, the registry and one runner per deployed
//! function, put together for `fnctl serve`. The admin API calls into it; it validates
//! what users ask for before anything changes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, bail, ensure};
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use serde::{Deserialize, Serialize};

use crate::embedded::{Commit, EmbeddedLog, LogConfig, PartitionExtent};
use crate::engine::{Engine, sha256_hex};
use crate::failure::FailureKind;
use crate::metrics::Metrics;
use crate::registry::{DeploySpec, Deployment, Registry, StartFrom, validate_name};
use crate::runner::{RunnerContext, RunnerHandle};

/// A running replica.
pub struct Replica {
    /// The log and store.
    pub log: Arc<EmbeddedLog>,
    /// The wasm engine.
    pub engine: Arc<Engine>,
    /// Deployments.
    pub registry: Arc<Registry>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    runners: Mutex<BTreeMap<String, RunnerHandle>>,
    ready: AtomicBool,
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
    /// Failures by kind.
    pub failures: BTreeMap<FailureKind, u64>,
    /// State entries held.
    pub state_entries: u64,
}

/// Name this replica reports as partition owner.
const REPLICA_NAME: &str = "embedded";

impl Replica {
    /// Opens the data directory (creating it) and starts a runner per deployed function.
    pub fn open(data_dir: &Path, log_config: LogConfig) -> Result<Arc<Replica>> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
        let dir = Dir::open_ambient_dir(data_dir, ambient_authority())
            .with_context(|| format!("opening the data directory {}", data_dir.display()))?;
        dir.create_dir_all("compiled")
            .context("creating the compiled-component cache")?;
        let cache = dir
            .open_dir("compiled")
            .context("opening the compiled-component cache")?;
        let log = Arc::new(EmbeddedLog::open(&dir, log_config)?);
        let engine = Engine::new(Some(cache))?;
        let registry = Arc::new(Registry::load(log.clone())?);
        let replica = Arc::new(Replica {
            log,
            engine,
            registry,
            metrics: Metrics::new(),
            runners: Mutex::new(BTreeMap::new()),
            ready: AtomicBool::new(false),
        });
        for deployment in replica.registry.active() {
            replica.ensure_runner(&deployment.spec.name)?;
        }
        replica.ready.store(true, Ordering::Release);
        Ok(replica)
    }

    /// Whether every deployed function has its runner.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn context(&self) -> RunnerContext {
        RunnerContext {
            log: self.log.clone(),
            engine: self.engine.clone(),
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
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
        self.log.put_artifact(&sha256, bytes)?;
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
            .log
            .artifact(&spec.component)?
            .with_context(|| format!("no component with sha256 {} was uploaded", spec.component))?;
        self.engine.load(&bytes)?;
        let mut partitions = None;
        for input in &spec.inputs {
            let topic = self.log.require_topic(input)?;
            match partitions {
                None => partitions = Some(topic.partitions),
                Some(p) if p != topic.partitions => bail!(
                    "input topics must be co-partitioned: {} has {} partitions, {} has {p}",
                    input,
                    topic.partitions,
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
            self.log
                .ensure_topic(output, partitions)
                .with_context(|| format!("preparing output topic {output}"))?;
        }
        if spec.start == StartFrom::Latest {
            self.start_at_end(&spec)?;
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
                self.log.commit(Commit {
                    group: &spec.name,
                    partition,
                    offsets: vec![(input.clone(), extent.end)],
                    stream_time_ms: self.log.stream_time(&spec.name, partition)?,
                    effects: &Default::default(),
                })?;
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
        let mut partitions = Vec::new();
        let mut state_entries = 0;
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
                    owner: REPLICA_NAME.to_owned(),
                });
            }
        }
        if let Some(first) = deployment.spec.inputs.first() {
            let topic = self.log.require_topic(first)?;
            for partition in 0..topic.partitions {
                state_entries += self.log.state_len(name, partition)?;
            }
        }
        Ok(FunctionStatus {
            lag: partitions.iter().map(|p| p.lag).sum(),
            partitions,
            records_in: Metrics::total(&self.metrics.records_in, name, versions.clone()),
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

    /// Stops every runner.
    pub fn shutdown(&self) {
        self.ready.store(false, Ordering::Release);
        let runners = std::mem::take(&mut *self.runners.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, runner) in runners {
            runner.stop();
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
