//! What users ask a replica to change: components uploaded, functions deployed (checked
//! before anything changes: the component fits the contract, the limits are usable, the
//! inputs exist and are co-partitioned) and undeployed.

use anyhow::{Context as _, Result, bail, ensure};

use super::Replica;
use crate::model::clock::now_ms;
use crate::model::deployment::{Canary, DeploySpec, Deployment, Replay, ReplayFrom, validate_name};
use crate::sandbox::sha256_hex;
use crate::schema::output_subject;

impl Replica {
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
        self.deploy_as(spec, None)
    }

    /// Deploys a new version of `spec.name` as a canary on `percent` of its partitions
    /// (whole ones), beside the running version, which keeps the others; it ends by
    /// itself when its failure rate passes `max_failure_rate`, if given.
    pub fn deploy_canary(
        &self,
        spec: DeploySpec,
        percent: u8,
        max_failure_rate: Option<f64>,
    ) -> Result<Deployment> {
        self.deploy_as(spec, Some((percent, max_failure_rate)))
    }

    /// Deploys `spec`, as a canary when `canary` gives its share and failure bound.
    fn deploy_as(
        &self,
        mut spec: DeploySpec,
        canary: Option<(u8, Option<f64>)>,
    ) -> Result<Deployment> {
        validate_name(&spec.name)?;
        spec.limits.validate()?;
        ensure!(
            !spec.inputs.is_empty() || spec.input_pattern.is_some(),
            "a function needs at least one --input topic or an --input-pattern"
        );
        spec.input_regex()?;
        let named_inputs: Vec<String> = spec
            .inputs
            .iter()
            .chain(&spec.input_pattern)
            .cloned()
            .collect();
        for (side, formats, topics) in [
            ("input", &spec.input_formats, &named_inputs),
            ("output", &spec.output_formats, &spec.outputs),
        ] {
            for (topic, format) in formats {
                ensure!(
                    topics.contains(topic),
                    "{topic} has an {side} format but is not an {side} (those: {})",
                    topics.join(", ")
                );
                ensure!(
                    !format.needs_registry() || self.schema_registry.is_some(),
                    "{side} {topic} is {format}, and this replica has no schema registry: start it with `fnctl serve --schema-registry URL`"
                );
            }
        }
        for topic in spec.output_schemas.keys() {
            let format = spec.output_formats.get(topic).copied().unwrap_or_default();
            ensure!(
                format.needs_registry(),
                "output {topic} has a schema, and its format is {format}: give it --output-format {topic}=avro|json-schema|protobuf"
            );
        }
        for (topic, format) in spec
            .output_formats
            .iter()
            .filter(|(_, f)| f.needs_registry())
        {
            let text = spec.output_schemas.get(topic).map(String::as_str);
            output_subject(spec.subject_naming, topic, *format, text)?;
        }
        let bytes = self
            .registry
            .artifact(&spec.component)?
            .with_context(|| format!("no component with sha256 {} was uploaded", spec.component))?;
        self.engine.load(&bytes)?;
        let partitions = self.input_partitions(&spec)?;
        spec.partitions = Some(partitions);
        let canary = canary
            .map(|(percent, bound)| self.canary_of(&spec, partitions, percent, bound))
            .transpose()?;
        self.register_output_schemas(&spec)?;
        self.log.prepare(&spec, partitions)?;
        let deployment = self.registry.deploy(spec, canary, now_ms())?;
        self.ensure_runner(&deployment.spec.name)?;
        Ok(deployment)
    }

    /// The canary `spec` makes on `percent` of its `partitions`, after checking that it
    /// can run beside the running version.
    fn canary_of(
        &self,
        spec: &DeploySpec,
        partitions: u32,
        percent: u8,
        max_failure_rate: Option<f64>,
    ) -> Result<Canary> {
        let name = &spec.name;
        let base = self.registry.current(name).with_context(|| {
            format!("a canary runs beside a running version, and {name} runs none: deploy it without --canary first")
        })?;
        ensure!(
            base.canary.is_none(),
            "version {} of {name} is a canary already: `fnctl promote {name}` or `fnctl rollback {name}` first",
            base.version
        );
        ensure!(
            (1..=99).contains(&percent),
            "--canary is a share of the partitions from 1 to 99 percent, not {percent}"
        );
        ensure!(
            partitions >= 2,
            "a canary runs on whole partitions, so that each partition's state stays with one version, and {name} has one: give its inputs more partitions"
        );
        ensure!(
            base.spec.same_inputs(spec),
            "a canary reads the inputs version {} of {name} reads, so the partitions can move between them",
            base.version
        );
        if let Some(rate) = max_failure_rate {
            ensure!(
                rate > 0.0 && rate <= 1.0,
                "--canary-max-failure-rate is failed events per event, above 0 and at most 1, not {rate}"
            );
        }
        Ok(Canary {
            base: base.version,
            percent,
            partitions: Canary::partitions_for(percent, partitions),
            max_failure_rate,
        })
    }

    /// Makes the canary of `name` its only version.
    pub fn promote(&self, name: &str) -> Result<Deployment> {
        let current = self
            .registry
            .current(name)
            .with_context(|| format!("no function named {name:?} is deployed"))?;
        let deployment = self.registry.promote(name, current.version)?;
        tracing::info!(function = %name, version = deployment.version, "canary promoted");
        Ok(deployment)
    }

    /// The partition count the inputs of `spec` share: that of its named inputs, which
    /// must agree, else that of the first topic its pattern matches, which one must.
    fn input_partitions(&self, spec: &DeploySpec) -> Result<u32> {
        let mut partitions = None;
        for input in &spec.inputs {
            let count = self.log.partitions(input)?;
            match partitions {
                None => partitions = Some(count),
                Some(p) if p != count => bail!(
                    "input topics must be co-partitioned: {input} has {count} partitions, {} has {p}",
                    spec.inputs[0]
                ),
                Some(_) => {}
            }
        }
        if let Some(partitions) = partitions {
            return Ok(partitions);
        }
        let pattern = spec.input_pattern.as_deref().unwrap_or_default();
        let matched = spec.inputs_among(&self.log.topic_partitions()?)?;
        let first = matched.first().with_context(|| {
            format!(
                "no topic matches --input-pattern {pattern:?} yet: create one first (`fnctl topics create NAME --partitions N`); those created later are read as they come"
            )
        })?;
        self.log.partitions(first)
    }

    /// Registers the schemas `spec` writes its outputs with, each under its topic's
    /// value subject, unless the subject's compatibility rules refuse it.
    fn register_output_schemas(&self, spec: &DeploySpec) -> Result<()> {
        let Some(registry) = &self.schema_registry else {
            return Ok(());
        };
        for (topic, text) in &spec.output_schemas {
            let format = spec.output_formats.get(topic).copied().unwrap_or_default();
            let subject = output_subject(spec.subject_naming, topic, format, Some(text))?;
            let id = registry.register(&subject, format, text)?;
            tracing::info!(function = %spec.name, %subject, id, "output schema registered");
        }
        Ok(())
    }

    /// Deploys version `to` of `name` again, as its next version, from the component the
    /// registry kept: by default the version before the running one. The runner swaps it
    /// in between two batches, as it does a deploy.
    pub fn rollback(&self, name: &str, to: Option<u32>) -> Result<Deployment> {
        if let Some(current) = self.registry.current(name).filter(|d| d.canary.is_some())
            && to.is_none()
            && let Some(ended) = self
                .registry
                .end_canary(name, current.version, None, now_ms())?
        {
            tracing::info!(function = %name, canary = current.version, version = ended.version, "canary rolled back");
            return Ok(ended);
        }
        let history = self
            .registry
            .history(name)
            .with_context(|| format!("no function named {name:?} was deployed"))?;
        let numbers: Vec<String> = history
            .versions
            .iter()
            .map(|d| d.version.to_string())
            .collect();
        let target =
            match to {
                Some(version) => history.versions.iter().find(|d| d.version == version),
                None => {
                    let current = history.current().map(|d| d.version);
                    history.versions.iter().rev().find(|d| {
                        Some(d.version) != current && current.is_none_or(|c| d.version < c)
                    })
                }
            };
        let target = target.with_context(|| match to {
            Some(version) => format!(
                "{name} has no version {version} (it has {})",
                numbers.join(", ")
            ),
            None => format!("{name} has no version before the running one to roll back to"),
        })?;
        tracing::info!(function = %name, to = target.version, "rolling back");
        self.deploy(target.spec.clone())
    }

    /// Replays `name`'s inputs as `replay` says, from a new version of it that each
    /// partition carries the replay out with, at a batch boundary, once.
    pub fn replay(&self, name: &str, mut replay: Replay) -> Result<Deployment> {
        let deployment = self
            .registry
            .current(name)
            .with_context(|| format!("no function named {name:?} is deployed"))?;
        if let ReplayFrom::Offsets(given) = &replay.from {
            ensure!(
                !given.is_empty(),
                "a replay from offsets names at least one"
            );
            let inputs = self.log.inputs_of(&deployment.spec)?;
            for (topic, partition, _) in given {
                ensure!(
                    inputs.contains(topic),
                    "{topic} is not an input of {name} (those: {})",
                    inputs.join(", ")
                );
                let partitions = self.log.partitions(topic)?;
                ensure!(
                    *partition < partitions,
                    "{topic} has partitions 0 to {}, not {partition}",
                    partitions.saturating_sub(1)
                );
            }
        }
        replay.until = self
            .log
            .partition_status(&deployment)?
            .into_iter()
            .map(|p| (p.topic, p.partition, p.end))
            .collect();
        let deployment = self.registry.replay(name, replay, now_ms())?;
        tracing::info!(function = %name, version = deployment.version, "replay asked for");
        self.ensure_runner(name)?;
        Ok(deployment)
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
}
