//! A replica: the log (through its [`Backend`]), the engine, the registry and one runner
//! per deployed function, put together for `fnctl serve`, and kept in line with the
//! registry as deployments come and go (`deploy.rs`). The admin API calls into it; what
//! it reports is `status.rs`, and the committed state it reads `state.rs`.

mod deploy;
pub mod state;
mod status;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use sha2::{Digest as _, Sha256};

use self::status::Rates;
pub use self::status::{FunctionStatus, ReplayProgress, RunningVersion, VersionInfo};
use crate::log::{Backend, Mode, Opener};
use crate::logbook::LogBook;
use crate::metrics::Metrics;
use crate::model::clock::now_ms;
use crate::registry::Registry;
use crate::runner::{RunnerContext, RunnerHandle, Workers};
use crate::sandbox::{Engine, MAX_INSTANCES};
use crate::schema::registry::SchemaRegistry;

/// A running replica.
pub struct Replica {
    /// This replica's id, unique among the replicas of a cluster.
    pub id: String,
    log: Arc<dyn Backend>,
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
    workers: Arc<Workers>,
    schema_registry: Option<Arc<SchemaRegistry>>,
    ready: AtomicBool,
}

/// How a replica runs, beside its log.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Instances alive at once across all functions.
    pub max_instances: u32,
    /// Threads that run partitions, shared by all functions.
    pub workers: usize,
    /// The schema registry of inputs in its formats, when there is one.
    pub schema_registry: Option<Arc<SchemaRegistry>>,
    /// Bytes of committed state values each partition's runner keeps in memory at most
    /// (0: none).
    pub state_cache_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_instances: MAX_INSTANCES,
            workers: default_workers(),
            schema_registry: None,
            state_cache_bytes: crate::state::cache::CACHE_BYTES,
        }
    }
}

/// One worker per core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// How often the replica starts runners for deployments it learnt of.
const RECONCILE_EVERY: Duration = Duration::from_millis(500);

/// How often the log's housekeeping (retention) runs.
const MAINTAIN_EVERY: Duration = Duration::from_secs(30);

impl Replica {
    /// Opens the data directory (creating it), connects to the log of `mode`, and starts
    /// a runner per deployed function. `admin` is the admin API's address, announced to
    /// the other replicas of a cluster.
    pub fn open(data_dir: &Path, mode: Mode, admin: &str) -> Result<Arc<Replica>> {
        Replica::open_with(data_dir, mode, admin, &Settings::default())
    }

    /// Opens a replica as [`Replica::open`] does, with `settings`.
    pub fn open_with(
        data_dir: &Path,
        mode: Mode,
        admin: &str,
        settings: &Settings,
    ) -> Result<Arc<Replica>> {
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
        let engine = Engine::with_pool(Some(cache), settings.max_instances)?;
        let metrics = Metrics::new();
        let opener = Opener {
            dir: &dir,
            replica: &id,
            admin,
            metrics: &metrics,
            state_cache_bytes: settings.state_cache_bytes,
        };
        let log = crate::log::open(mode, &opener)?;
        let registry = Registry::open(log.registry_store())?;
        let replica = Arc::new(Replica {
            id,
            log,
            engine,
            registry,
            metrics,
            logs: Arc::new(LogBook::default()),
            rates: Rates::default(),
            runners: Mutex::new(BTreeMap::new()),
            workers: Workers::start(settings.workers)?,
            schema_registry: settings.schema_registry.clone(),
            ready: AtomicBool::new(false),
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

    /// The log behind the replica.
    pub fn log(&self) -> &dyn Backend {
        self.log.as_ref()
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

    /// Whether the replica is ready: every deployed function has its runner, no
    /// partition's state is being restored, and the store takes writes. If not, why.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.ready.load(Ordering::Acquire) {
            return Err("starting".to_owned());
        }
        if let Some(trouble) = self.log.trouble() {
            return Err(format!("the store cannot be written: {}", trouble.reason));
        }
        match self.log.restoring() {
            0 => Ok(()),
            n => Err(format!("restoring the state of {n} partitions")),
        }
    }

    fn context(&self) -> RunnerContext {
        RunnerContext {
            sources: self.log.clone(),
            engine: self.engine.clone(),
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            logs: self.logs.clone(),
            workers: self.workers.clone(),
            schema_registry: self.schema_registry.clone(),
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

    /// The host failure that stops `name` now, if one does, and the batches such
    /// failures abandoned so far.
    fn health(&self, name: &str) -> (Option<String>, u64) {
        self.runners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .map_or((None, 0), |r| {
                (r.health().failing(), r.health().abandoned())
            })
    }

    /// Replicas of the cluster heard from recently (this one only, on the embedded log).
    pub fn replicas(&self) -> Vec<String> {
        self.log.replicas()
    }

    /// Stops every runner (their partitions go to other replicas) and leaves the cluster.
    pub fn shutdown(&self) {
        self.ready.store(false, Ordering::Release);
        let runners = std::mem::take(&mut *self.runners.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, runner) in runners {
            runner.stop();
        }
        self.workers.shutdown();
        self.log.shutdown();
    }
}

/// Keeps runners in line with the registry while the replica lives, samples what
/// functions handle for their rates, and runs the log's housekeeping.
fn reconcile_loop(replica: Weak<Replica>) {
    let mut maintained = Instant::now();
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
        replica.sample_rates();
        if replica.log.trouble().is_some() {
            replica.log.recover();
        }
        if maintained.elapsed() >= MAINTAIN_EVERY {
            maintained = Instant::now();
            if let Err(err) = replica.log.maintain(now_ms()) {
                tracing::warn!("retention failed: {err:#}");
            }
        }
    }
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
    let digest = Sha256::digest(
        [
            nanos.to_be_bytes(),
            u128::from(std::process::id()).to_be_bytes(),
        ]
        .concat(),
    );
    let id = format!("r{}", hex::encode(&digest[..6]));
    dir.write(FILE, &id).context("writing the replica id")?;
    Ok(id)
}
