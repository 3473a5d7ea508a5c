//! Runs one deployed function: a thread that, partition by partition, takes what is new
//! on the inputs from the function's source, hands it to the dispatcher and commits the
//! result with the input positions (`pass.rs`). It swaps in a new version between
//! batches (`activation.rs`) and holds back an event that asked for a retry until its
//! backoff has passed (`retry.rs`). What a log must give it is `source.rs`.

mod activation;
mod pass;
pub mod retry;
pub mod source;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use self::activation::Active;
use self::retry::RetryHold;
pub use self::source::{CommitEvery, Source, Sources};
use crate::logbook::LogBook;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::sandbox::Engine;

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
}

/// A running function's thread.
pub struct RunnerHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RunnerHandle {
    /// Starts running `name`.
    pub fn start(context: RunnerContext, name: String) -> Result<RunnerHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fn-{name}"))
            .spawn(move || Runner::new(context, name, flag).run())
            .context("starting a runner thread")?;
        Ok(RunnerHandle {
            stop,
            thread: Some(thread),
        })
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
}

/// Longest wait for new records before checking for a new version or a stop.
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// Pause after a host failure before the batch runs again.
const FAILURE_PAUSE: Duration = Duration::from_millis(500);

impl Runner {
    fn new(context: RunnerContext, name: String, stop: Arc<AtomicBool>) -> Self {
        Runner {
            context,
            name,
            stop,
            active: None,
            hold: RetryHold::default(),
        }
    }

    fn run(mut self) {
        tracing::info!(function = %self.name, "runner started");
        while !self.stop.load(Ordering::Relaxed) {
            let Some(deployment) = self.context.registry.current(&self.name) else {
                tracing::info!(function = %self.name, "undeployed; runner stops");
                return;
            };
            if self.active.as_ref().map(|a| a.deployment.version) != Some(deployment.version) {
                let previous = self.active.take();
                match self.activate(deployment, previous) {
                    Ok(active) => {
                        tracing::info!(function = %self.name, version = active.deployment.version, "version active");
                        self.active = Some(active);
                    }
                    Err(err) => {
                        tracing::error!(function = %self.name, "cannot load the function: {err:#}");
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                }
            }
            match self.pass() {
                Ok(true) => {}
                Ok(false) => self.idle(),
                Err(err) => {
                    tracing::error!(function = %self.name, "batch abandoned, will run again: {err:#}");
                    self.recover();
                    std::thread::sleep(FAILURE_PAUSE);
                }
            }
        }
    }

    /// Waits for new records, or for the first held event's backoff to pass.
    fn idle(&mut self) {
        let wait = self
            .hold
            .next_release(Instant::now())
            .map_or(IDLE_WAIT, |d| d.min(IDLE_WAIT));
        if let Some(active) = self.active.as_mut() {
            active.source.wait(wait);
        }
    }

    /// After a host failure: a fresh instance, and the source back at its committed
    /// positions. Only a source that cannot go on is opened again (on Kafka, that means
    /// rejoining the consumer group).
    fn recover(&mut self) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        active.dispatcher.discard();
        if let Err(err) = active.source.reset() {
            tracing::warn!(function = %self.name, "opening the function's source again: {err:#}");
            self.active = None;
        }
    }
}

#[cfg(test)]
mod tests;
