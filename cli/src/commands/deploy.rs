//! `fnctl deploy`: uploads a component and deploys it under a name.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;

use super::{Globals, parse_key_value};
use crate::output::{self, Format};
use streamfn_host::model::deployment::{DeploySpec, StartFrom};
use streamfn_host::model::format::{Format as ValueFormat, SubjectNaming};
use streamfn_host::model::limits::Limits;
use streamfn_host::sandbox::sha256_hex;

/// Deploy a function. Deploying a name that exists creates its next version, swapped in
/// between two batches: nothing is lost or handled twice. Rolling back is deploying an
/// older file.
#[derive(Debug, Args)]
pub struct Deploy {
    /// The function's component (a .wasm file built for wasm32-wasip2).
    file: PathBuf,
    /// Function name; also its consumer group and the owner of its state.
    #[arg(long)]
    name: String,
    /// Input topic (repeat for co-partitioned inputs, which must have equal partition counts).
    #[arg(long = "input", required_unless_present = "input_pattern")]
    inputs: Vec<String>,
    /// A regular expression of further input topics, matching whole names (e.g.
    /// 'logs-.*'): every topic it matches, now or once created (taken in within
    /// seconds), with the partition count of the first one it matches at the deploy.
    #[arg(long, value_name = "REGEX")]
    input_pattern: Option<String>,
    /// Topic the function may emit to (repeat); created when missing.
    #[arg(long = "output")]
    outputs: Vec<String>,
    /// Dead-letter topic [default: NAME-dlq].
    #[arg(long)]
    dlq: Option<String>,
    /// Fuel one event may burn, roughly its wasm instructions [default: 50000000]. A Rust
    /// handler needs thousands per event; JavaScript and Python ones a few hundred
    /// thousand.
    #[arg(long)]
    fuel: Option<u64>,
    /// Memory an instance may grow to, in MiB (1 to 1024) [default: 256].
    #[arg(long)]
    memory: Option<u32>,
    /// Deadline of one call into the function, in milliseconds [default: 5000].
    #[arg(long)]
    timeout: Option<u64>,
    /// Most events per call [default: 500].
    #[arg(long)]
    batch: Option<u32>,
    /// Most records one event may emit [default: 100].
    #[arg(long)]
    max_outputs: Option<u32>,
    /// Most bytes one event may emit [default: 1048576].
    #[arg(long)]
    max_output_bytes: Option<u64>,
    /// Most bytes of one state value [default: 1048576].
    #[arg(long)]
    max_state_value_bytes: Option<u64>,
    /// Most bytes of state (keys and values) one event may write [default: 4194304].
    #[arg(long)]
    max_state_bytes: Option<u64>,
    /// Most bytes of state (keys and values) one partition may hold [default: 1073741824].
    #[arg(long)]
    max_partition_state_bytes: Option<u64>,
    /// Redeliveries of an event that asks for a retry before it is dead-lettered [default: 3].
    #[arg(long)]
    max_retries: Option<u32>,
    /// Configuration the function reads (repeat).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    config: Vec<(String, String)>,
    /// Where a function without committed offsets starts.
    #[arg(long, value_enum, default_value_t = StartArg::Earliest, conflicts_with = "from_time")]
    from: StartArg,
    /// Start a function without committed offsets at the first record of each input
    /// partition at or after this time: RFC 3339 in UTC (2026-01-01T00:00:00Z) or
    /// milliseconds since the Unix epoch.
    #[arg(long, value_name = "TIME", value_parser = super::parse_time)]
    from_time: Option<i64>,
    /// Format of an input topic's values (repeat): avro, json-schema or protobuf
    /// (decoded to JSON through the schema registry of `fnctl serve --schema-registry`),
    /// json (checked) or raw [default: raw]; TOPIC may be the --input-pattern, for the
    /// topics it matches. A value that does not decode is dead-lettered as decode-error.
    #[arg(long = "input-format", value_name = "TOPIC=FORMAT", value_parser = parse_key_value)]
    input_formats: Vec<(String, String)>,
    /// Format of an output topic's values (repeat): avro, json-schema or protobuf (the
    /// function's JSON encoded with the schema of --output-schema, else with the latest
    /// schema of subject TOPIC-value), json (checked) or raw [default: raw]. An event
    /// whose output does not fit fails as encode-error.
    #[arg(long = "output-format", value_name = "TOPIC=FORMAT", value_parser = parse_key_value)]
    output_formats: Vec<(String, String)>,
    /// The schema an output topic's values are written with (repeat): an Avro .avsc, a
    /// JSON Schema .json or a Protobuf .proto file, which also sets the topic's format.
    /// The deploy registers it under subject TOPIC-value, and is refused, changing
    /// nothing, when the subject's compatibility rules refuse it.
    #[arg(long = "output-schema", value_name = "TOPIC=FILE", value_parser = parse_key_value)]
    output_schemas: Vec<(String, String)>,
    /// How the registry subjects of output values are named: topic (TOPIC-value),
    /// record (the record's full name, which needs --output-schema) or topic-record
    /// (TOPIC-RECORD), as Confluent's serializers' subject name strategies.
    #[arg(long, value_enum, default_value_t = NamingArg::Topic)]
    subject_naming: NamingArg,
    /// Run the new version as a canary on this share of the partitions (whole ones, at
    /// least one), the running version keeping the others, until `fnctl promote` or
    /// `fnctl rollback`.
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=99))]
    canary: Option<u8>,
    /// End the canary by itself when more than this share of its events fail (0.05 is
    /// 5%), judged on each replica once it has handled 100 events there.
    #[arg(long, value_name = "RATE", requires = "canary")]
    canary_max_failure_rate: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum NamingArg {
    /// TOPIC-value (TopicNameStrategy).
    Topic,
    /// The record's full name (RecordNameStrategy).
    Record,
    /// TOPIC-RECORD (TopicRecordNameStrategy).
    TopicRecord,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StartArg {
    /// The oldest record kept.
    Earliest,
    /// Records produced after the deploy.
    Latest,
}

impl Deploy {
    fn limits(&self) -> Limits {
        let defaults = Limits::default();
        Limits {
            fuel_per_event: self.fuel.unwrap_or(defaults.fuel_per_event),
            memory_mib: self.memory.unwrap_or(defaults.memory_mib),
            timeout_ms: self.timeout.unwrap_or(defaults.timeout_ms),
            max_outputs_per_event: self.max_outputs.unwrap_or(defaults.max_outputs_per_event),
            max_output_bytes_per_event: self
                .max_output_bytes
                .unwrap_or(defaults.max_output_bytes_per_event),
            max_state_value_bytes: self
                .max_state_value_bytes
                .unwrap_or(defaults.max_state_value_bytes),
            max_state_bytes_per_event: self
                .max_state_bytes
                .unwrap_or(defaults.max_state_bytes_per_event),
            max_partition_state_bytes: self
                .max_partition_state_bytes
                .unwrap_or(defaults.max_partition_state_bytes),
            max_batch: self.batch.unwrap_or(defaults.max_batch),
            max_retries: self.max_retries.unwrap_or(defaults.max_retries),
            retry_backoff_ms: defaults.retry_backoff_ms,
        }
    }

    /// The formats given with `flag`, by topic; the replica checks that each names one
    /// of the deployment's topics.
    fn formats(flag: &str, given: &[(String, String)]) -> Result<BTreeMap<String, ValueFormat>> {
        let mut formats = BTreeMap::new();
        for (topic, format) in given {
            let format: ValueFormat = format
                .parse()
                .map_err(|e| anyhow::anyhow!("{flag} {topic}: {e}"))?;
            formats.insert(topic.clone(), format);
        }
        Ok(formats)
    }

    /// The schemas of `--output-schema`, by topic, read from their files; each sets its
    /// topic's format in `formats`, which must not say otherwise.
    fn output_schemas(
        &self,
        formats: &mut BTreeMap<String, ValueFormat>,
    ) -> Result<BTreeMap<String, String>> {
        let mut schemas = BTreeMap::new();
        for (topic, file) in &self.output_schemas {
            anyhow::ensure!(
                self.outputs.contains(topic),
                "--output-schema names {topic}, which is not one of the --output topics"
            );
            let format = crate::schemas::format_of_file(std::path::Path::new(file))?;
            let given = *formats.entry(topic.clone()).or_insert(format);
            anyhow::ensure!(
                given == format,
                "--output-schema {topic}={file} is {format}, and --output-format says {given}"
            );
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the schema {file}"))?;
            schemas.insert(topic.clone(), text);
        }
        Ok(schemas)
    }

    /// Runs the command.
    pub fn run(self, globals: &Globals) -> Result<()> {
        let input_formats = Self::formats("--input-format", &self.input_formats)?;
        let mut output_formats = Self::formats("--output-format", &self.output_formats)?;
        let output_schemas = self.output_schemas(&mut output_formats)?;
        let bytes = std::fs::read(&self.file)
            .with_context(|| format!("cannot read {}", self.file.display()))?;
        let limits = self.limits();
        limits.validate()?;
        let client = globals.client()?;
        let sha256 = sha256_hex(&bytes);
        let progress = crate::progress::spinner(format!(
            "uploading {} ({:.1} MB) for checking and compiling",
            self.file.display(),
            bytes.len() as f64 / 1e6
        ));
        let uploaded = client.upload(&sha256, &bytes);
        progress.finish_and_clear();
        uploaded.with_context(|| format!("{} was not accepted", self.file.display()))?;
        let spec = DeploySpec {
            name: self.name,
            component: sha256,
            inputs: self.inputs,
            input_pattern: self.input_pattern,
            partitions: None,
            outputs: self.outputs,
            dlq: self.dlq,
            config: self.config.into_iter().collect(),
            limits,
            start: match (self.from_time, self.from) {
                (Some(time_ms), _) => StartFrom::Time(time_ms),
                (None, StartArg::Earliest) => StartFrom::Earliest,
                (None, StartArg::Latest) => StartFrom::Latest,
            },
            input_formats,
            output_formats,
            output_schemas,
            subject_naming: match self.subject_naming {
                NamingArg::Topic => SubjectNaming::Topic,
                NamingArg::Record => SubjectNaming::Record,
                NamingArg::TopicRecord => SubjectNaming::TopicRecord,
            },
        };
        let deployment = match self.canary {
            Some(percent) => client.deploy_canary(&spec, percent, self.canary_max_failure_rate)?,
            None => client.deploy(&spec)?,
        };
        match globals.format {
            Format::Json => output::json(&deployment),
            Format::Text => {
                let spec = &deployment.spec;
                let mut inputs = spec.inputs.clone();
                inputs.extend(
                    spec.input_pattern
                        .iter()
                        .map(|p| format!("every topic matching {p:?}")),
                );
                println!(
                    "deployed {} version {} (sha256 {})\n  inputs: {}\n  outputs: {}\n  dead letters: {}",
                    spec.name,
                    deployment.version,
                    &spec.component[..12],
                    inputs.join(", "),
                    if spec.outputs.is_empty() {
                        "none".to_owned()
                    } else {
                        spec.outputs.join(", ")
                    },
                    spec.dlq_topic()
                );
                if let Some(canary) = &deployment.canary {
                    println!(
                        "  canary on partitions {} ({}%); version {} runs the others: `fnctl promote {}` or `fnctl rollback {}`",
                        output::partitions(&canary.partitions),
                        canary.percent,
                        canary.base,
                        spec.name,
                        spec.name
                    );
                }
                Ok(())
            }
        }
    }
}
