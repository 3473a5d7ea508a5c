//! Loading a version of the function: its component from the registry, a dispatcher with
//! the deployment's configuration, limits and value formats, and a source for its inputs,
//! kept from the version it replaces when the inputs are the same (with Kafka, that keeps
//! the consumer group's assignment). While a version is a canary, the version it was
//! deployed beside stays loaded for the partitions the canary does not run.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::{Context as _, Result};

use super::{Runner, Source};
use crate::dispatch::{DeadLetterTopic, Dispatcher};
use crate::logbook::LogBook;
use crate::metrics::FunctionLabels;
use crate::model::deployment::Deployment;
use crate::sandbox::bindings::streamfn::function::log::Level;
use crate::sandbox::{InstanceConfig, LogLine, LogSink};
use crate::schema::{Decoder, Encoder};

/// One loaded version of the function: what makes its dispatchers.
pub(super) struct Loaded {
    pub(super) deployment: Deployment,
    /// Makes the dispatchers; never runs a batch itself.
    pub(super) template: Dispatcher,
    /// Dispatchers between jobs, each keeping its instance: one per partition the last
    /// pass ran at the same time.
    pub(super) spare: Vec<Dispatcher>,
    pub(super) dead_letters: DeadLetterTopic,
}

impl Loaded {
    /// A dispatcher for one partition's job.
    pub(super) fn dispatcher(&mut self) -> Dispatcher {
        self.spare.pop().unwrap_or_else(|| self.template.sibling())
    }

    /// Drops every live instance: the next jobs make fresh ones.
    fn discard(&mut self) {
        for dispatcher in &mut self.spare {
            dispatcher.discard();
        }
    }
}

/// The function as it runs: its running version, the version a canary runs beside,
/// and the source of their inputs.
pub(super) struct Active {
    /// The running version (while it is a canary, on its partitions only).
    pub(super) current: Loaded,
    /// The version the partitions a canary does not run keep running.
    pub(super) base: Option<Loaded>,
    pub(super) source: Box<dyn Source>,
    /// Partitions that carried out the running version's replay, when it has one.
    pub(super) replayed: BTreeSet<u32>,
}

impl Active {
    /// The running version.
    pub(super) fn deployment(&self) -> &Deployment {
        &self.current.deployment
    }

    /// The version that runs `partition`.
    pub(super) fn runs(&mut self, partition: u32) -> &mut Loaded {
        match (&self.current.deployment.canary, &mut self.base) {
            (Some(canary), Some(base)) if !canary.runs(partition) => base,
            _ => &mut self.current,
        }
    }

    /// Takes a dispatcher of `version` back after its job.
    pub(super) fn give_back(&mut self, version: u32, dispatcher: Dispatcher) {
        let loaded = match &mut self.base {
            Some(base) if base.deployment.version == version => base,
            _ => &mut self.current,
        };
        if loaded.deployment.version == version {
            loaded.spare.push(dispatcher);
        }
    }

    /// Drops every live instance: the next jobs make fresh ones.
    pub(super) fn discard(&mut self) {
        self.current.discard();
        if let Some(base) = &mut self.base {
            base.discard();
        }
    }

    /// The loaded versions, to be loaded again only where they changed.
    fn into_parts(self) -> (Vec<Loaded>, Box<dyn Source>, BTreeSet<u32>) {
        let mut loaded = vec![self.current];
        loaded.extend(self.base);
        (loaded, self.source, self.replayed)
    }
}

impl Runner {
    /// Makes `deployment` the running version (and loads the version its canary runs
    /// beside), keeping what `previous` loaded of the same versions, and its source when
    /// the inputs are the same.
    pub(super) fn activate(
        &self,
        deployment: Deployment,
        previous: Option<Active>,
    ) -> Result<Active> {
        let (mut loaded, source, replayed) = match previous {
            Some(previous) => {
                let (loaded, source, replayed) = previous.into_parts();
                let same_inputs = loaded[0].deployment.spec.same_inputs(&deployment.spec);
                let replayed = if loaded[0].deployment.version == deployment.version {
                    replayed
                } else {
                    BTreeSet::new()
                };
                (loaded, same_inputs.then_some(source), replayed)
            }
            None => (Vec::new(), None, BTreeSet::new()),
        };
        let mut take = |version: u32| {
            loaded
                .iter()
                .position(|l| l.deployment.version == version)
                .map(|i| loaded.swap_remove(i))
        };
        let base = match &deployment.canary {
            Some(canary) => Some(match take(canary.base) {
                Some(base) => base,
                None => {
                    let history = self
                        .context
                        .registry
                        .history(&deployment.spec.name)
                        .context("a canary's function has a history")?;
                    let base = history.version(canary.base).with_context(|| {
                        format!("the canary's base version {} is not recorded", canary.base)
                    })?;
                    self.load(base.clone())?
                }
            }),
            None => None,
        };
        let current = match take(deployment.version) {
            Some(mut current) => {
                current.deployment = deployment;
                current
            }
            None => self.load(deployment)?,
        };
        let source = match source {
            Some(source) => source,
            None => self.context.sources.source(&current.deployment)?,
        };
        Ok(Active {
            current,
            base,
            source,
            replayed,
        })
    }

    /// Loads `deployment`: its component from the registry, and a dispatcher with its
    /// configuration, limits and value formats.
    fn load(&self, deployment: Deployment) -> Result<Loaded> {
        let spec = &deployment.spec;
        let bytes = self
            .context
            .registry
            .artifact(&spec.component)?
            .with_context(|| format!("component {} is not in the registry yet", spec.component))?;
        let component = self.context.engine.load(&bytes)?;
        let dlq = spec.dlq_topic();
        let outputs = spec
            .outputs
            .iter()
            .filter(|t| **t != dlq)
            .cloned()
            .collect();
        let encoder = Arc::new(Encoder::new(
            spec.output_formats.clone(),
            spec.output_schemas.clone(),
            spec.subject_naming,
            self.context.schema_registry.clone(),
        )?);
        let config = InstanceConfig {
            function: Arc::from(spec.name.as_str()),
            version: deployment.version,
            config: Arc::new(spec.config.clone()),
            outputs: Arc::new(outputs),
            encoder: encoder.clone(),
            limits: spec.limits.clone(),
            max_record_bytes: self.context.sources.max_record_bytes(),
            log: guest_log_sink(
                spec.name.clone(),
                deployment.version,
                self.context.logs.clone(),
            ),
        };
        self.context.metrics.declare(&spec.name, deployment.version);
        let instances = self
            .context
            .metrics
            .instances
            .get_or_create(&FunctionLabels {
                function: spec.name.clone(),
                version: deployment.version.to_string(),
            })
            .clone();
        let decoder = Decoder::new(
            spec.input_formats.clone(),
            spec.pattern_format(),
            self.context.schema_registry.clone(),
        );
        let template =
            Dispatcher::sandboxed(self.context.engine.clone(), component, config, instances)
                .with_formats(Arc::new(decoder), encoder);
        let dead_letters = DeadLetterTopic {
            topic: dlq,
            function: spec.name.clone(),
            version: deployment.version,
        };
        Ok(Loaded {
            deployment,
            template,
            spare: Vec::new(),
            dead_letters,
        })
    }
}

/// Sends a function's log lines to the host's log and to the replica's log book.
fn guest_log_sink(function: String, version: u32, book: Arc<LogBook>) -> LogSink {
    Arc::new(move |line: LogLine| {
        let (partition, offsets) = (line.partition, line.offsets);
        let message = &line.message;
        match line.level {
            Level::Debug => {
                tracing::debug!(target: "guest", %function, version, partition, ?offsets, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "guest", %function, version, partition, ?offsets, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "guest", %function, version, partition, ?offsets, "{message}")
            }
            Level::Error => {
                tracing::error!(target: "guest", %function, version, partition, ?offsets, "{message}")
            }
        }
        book.push(&function, version, line);
    })
}
