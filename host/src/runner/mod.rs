//! Runs one deployed function: a thread that takes what is new on each partition of the
//! inputs from the function's source, has the replica's workers (`workers.rs`) run the
//! partitions through dispatchers at the same time, and commits the result with the
//! input positions (`pass.rs`). It swaps in a new version between batches, runs a
//! canary beside the version it was deployed beside (`activation.rs`), ends a canary
//! that fails too often (`canary.rs`), and holds back an event that asked for a retry
//! until its backoff has passed (`retry.rs`). What a log must give it is `source.rs`.

mod activation;
mod canary;
mod pass;
pub mod retry;
pub mod source;
pub mod workers;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use self::activation::Active;
use self::pass::{Appetite, InFlight};
use self::retry::RetryHold;
pub use self::source::{CommitEvery, Source, Sources};
pub use self::workers::Workers;
use crate::logbook::LogBook;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::sandbox::Engine;
use crate::schema::registry::SchemaRegistry;

/// What every runner of a replica shares.
#[derive(Clone)]
pub struct RunnerContext {
    /// Where functions' inputs and outputs live.
    pub sources: Arc<dyn Sources>,
    /// The wasm engine.
    pub engine: Arc<Engine>,
    /// Deployments.
    pub registry: Arc<Registry>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Guest log lines.
    pub logs: Arc<LogBook>,
    /// The threads that run partitions.
    pub workers: Arc<Workers>,
    /// The schema registry of inputs in its formats, when there is one.
    pub schema_registry: Option<Arc<SchemaRegistry>>,
}

/// A running function's thread.
pub struct RunnerHandle {
    stop: Arc<AtomicBool>,
    health: Arc<Health>,
    thread: Option<JoinHandle<()>>,
}

/// Whether a function runs: the host failure that stops it now, if one does, and how
/// many batches host failures abandoned.
#[derive(Debug, Default)]
pub struct Health {
    failing: std::sync::Mutex<Option<String>>,
    abandoned: std::sync::atomic::AtomicU64,
}

impl Health {
    /// The failure that stops the function now, if one does.
    pub fn failing(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Batches abandoned to host failures so far.
    pub fn abandoned(&self) -> u64 {
        self.abandoned.load(Ordering::Relaxed)
    }

    fn fail(&self, reason: String) {
        self.abandoned.fetch_add(1, Ordering::Relaxed);
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
    }

    fn recover(&self) {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        if failing.is_some() {
            *failing = None;
        }
    }
}

impl RunnerHandle {
    /// Starts running `name`.
    pub fn start(context: RunnerContext, name: String) -> Result<RunnerHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let health = Arc::new(Health::default());
        let mut runner = Runner::new(context, name.clone(), stop.clone());
        runner.health = health.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fn-{name}"))
            .stack_size(RUNNER_STACK)
            .spawn(move || runner.run())
            .context("starting a runner thread")?;
        Ok(RunnerHandle {
            stop,
            health,
            thread: Some(thread),
        })
    }

    /// Whether the function runs.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Whether the thread has ended (the function was undeployed).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops the runner after its current batch and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Runner {
    context: RunnerContext,
    name: String,
    stop: Arc<AtomicBool>,
    active: Option<Active>,
    hold: RetryHold,
    health: Arc<Health>,
    /// Since when the function has had nothing to do.
    idle_since: Option<Instant>,
    appetite: Appetite,
    /// Passes in a row that failed.
    failed_passes: u32,
    /// The last pass, while it waits for its commit.
    in_flight: Option<InFlight>,
    /// Per partition, records its last run read but left for the next.
    carry: std::collections::HashMap<u32, Vec<crate::model::event::InputEvent>>,
    /// Partitions that stopped at a retry: they read again from their commit, once it
    /// is done.
    rewind: std::collections::BTreeSet<u32>,
    /// Partitions whose last run left records unrun: they read nothing ahead.
    lagging: std::collections::BTreeSet<u32>,
}

/// Stack of a runner thread: the guest runs on the workers, so the runner's needs
/// little, and a replica may run a thousand.
const RUNNER_STACK: usize = 512 * 1024;

/// How long an idle function keeps its instance before giving the slot back.
const INSTANCE_IDLE: Duration = Duration::from_secs(1);

/// Longest wait for new records before checking for a new version or a stop.
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// Pause after a host failure before the batch runs again.
const FAILURE_PAUSE: Duration = Duration::from_millis(500);

/// Failed passes in a row after which the source is opened again rather than reset: a
/// client that a reset does not heal (on Kafka, one left stuck by a broker restart) is
/// replaced, at the price of rejoining the consumer group.
const REOPEN_AFTER: u32 = 3;

impl Runner {
    fn new(context: RunnerContext, name: String, stop: Arc<AtomicBool>) -> Self {
        Runner {
            context,
            name,
            stop,
            active: None,
            hold: RetryHold::default(),
            health: Arc::new(Health::default()),
            idle_since: None,
            appetite: Appetite::default(),
            failed_passes: 0,
            in_flight: None,
            carry: Default::default(),
            rewind: Default::default(),
            lagging: Default::default(),
        }
    }

    fn run(mut self) {
        tracing::info!(function = %self.name, "runner started");
        while !self.stop.load(Ordering::Relaxed) {
            let Some(deployment) = self.context.registry.current(&self.name) else {
                tracing::info!(function = %self.name, "undeployed; runner stops");
                self.finish();
                return;
            };
            if self.active.as_ref().map(Active::deployment) != Some(&deployment) {
                // The version that ran the last pass commits it before it goes.
                if let Err(err) = self.settle() {
                    self.failed(err);
                    continue;
                }
                let previous = self.active.take();
                match self.activate(deployment, previous) {
                    Ok(active) => {
                        tracing::info!(function = %self.name, version = active.deployment().version, canary = active.base.is_some(), "version active");
                        self.active = Some(active);
                    }
                    Err(err) => {
                        tracing::error!(function = %self.name, "cannot load the function: {err:#}");
                        self.health
                            .fail(format!("cannot load the function: {err:#}"));
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                }
            }
            match self.pass() {
                Ok(worked) => {
                    self.failed_passes = 0;
                    self.health.recover();
                    if worked {
                        self.idle_since = None;
                        self.judge_canary();
                    } else {
                        self.idle();
                    }
                }
                Err(err) => self.failed(err),
            }
        }
        self.finish();
    }

    /// After a pass or commit failed: the work since the last commit is dropped, to run
    /// again from there.
    fn failed(&mut self, err: anyhow::Error) {
        tracing::error!(function = %self.name, "batch abandoned, will run again: {err:#}");
        self.health.fail(format!("{err:#}"));
        self.failed_passes += 1;
        self.recover();
        std::thread::sleep(FAILURE_PAUSE);
    }

    /// Commits what the last pass ran before the runner stops.
    fn finish(&mut self) {
        if let Err(err) = self.settle() {
            tracing::warn!(function = %self.name, "the last runs are not committed and will run again: {err:#}");
        }
    }

    /// Waits for new records, or for the first held event's backoff to pass; gives the
    /// instance back once idle for long.
    fn idle(&mut self) {
        let now = Instant::now();
        let since = *self.idle_since.get_or_insert(now);
        let wait = self
            .hold
            .next_release(now)
            .map_or(IDLE_WAIT, |d| d.min(IDLE_WAIT));
        if let Some(active) = self.active.as_mut() {
            if now.duration_since(since) >= INSTANCE_IDLE {
                active.discard();
            }
            active.source.wait(wait);
        }
    }

    /// After a host failure: a fresh instance, and the source back at its committed
    /// positions. Only a source that cannot go on, or that failed again and again, is
    /// opened again (on Kafka, that means rejoining the consumer group).
    fn recover(&mut self) {
        self.in_flight = None;
        self.carry.clear();
        self.rewind.clear();
        self.lagging.clear();
        let Some(active) = self.active.as_mut() else {
            return;
        };
        active.discard();
        if self.failed_passes >= REOPEN_AFTER {
            tracing::warn!(function = %self.name, failed = self.failed_passes, "the function's source fails pass after pass; opening it again");
            self.failed_passes = 0;
            self.active = None;
            return;
        }
        if let Err(err) = active.source.reset() {
            tracing::warn!(function = %self.name, "opening the function's source again: {err:#}");
            self.active = None;
        }
    }
}

#[cfg(test)]
mod tests;
