//! Loading a version of the function: its component from the registry, a dispatcher with
//! the deployment's configuration, limits and value formats, and a source for its inputs, kept from the
//! version it replaces when the inputs are the same (with Kafka, that keeps the consumer
//! group's assignment).

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

/// The loaded version of the function.
pub(super) struct Active {
    pub(super) deployment: Deployment,
    /// Makes the dispatchers; never runs a batch itself.
    pub(super) template: Dispatcher,
    /// Dispatchers between jobs, each keeping its instance: one per partition the last
    /// pass ran at the same time.
    pub(super) spare: Vec<Dispatcher>,
    pub(super) source: Box<dyn Source>,
    pub(super) dead_letters: DeadLetterTopic,
    /// Partitions that carried out the version's replay, when it has one.
    pub(super) replayed: std::collections::BTreeSet<u32>,
}

impl Active {
    /// A dispatcher for one partition's job.
    pub(super) fn dispatcher(&mut self) -> Dispatcher {
        self.spare.pop().unwrap_or_else(|| self.template.sibling())
    }

    /// Takes a dispatcher back after its job.
    pub(super) fn give_back(&mut self, dispatcher: Dispatcher) {
        self.spare.push(dispatcher);
    }

    /// Drops every live instance: the next jobs make fresh ones.
    pub(super) fn discard(&mut self) {
        for dispatcher in &mut self.spare {
            dispatcher.discard();
        }
    }
}

impl Runner {
    /// Loads `deployment`, keeping the source of `previous` when the inputs are the same.
    pub(super) fn activate(
        &self,
        deployment: Deployment,
        previous: Option<Active>,
    ) -> Result<Active> {
        let spec = &deployment.spec;
        let bytes = self
            .context
            .registry
            .artifact(&spec.component)?
            .with_context(|| format!("component {} is not in the registry yet", spec.component))?;
        let component = self.context.engine.load(&bytes)?;
        let source = match previous {
            Some(previous) if previous.deployment.spec.same_inputs(spec) => previous.source,
            _ => self.context.sources.source(&deployment)?,
        };
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
        Ok(Active {
            deployment,
            template,
            spare: Vec::new(),
            source,
            dead_letters,
            replayed: Default::default(),
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
