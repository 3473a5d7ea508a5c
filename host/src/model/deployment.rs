//! What a deployment is: a function's name, component (by sha256), topics and their value
//! formats, config and limits, each version of it, and where a new function starts. The
//! registry keeps them; this module only says what they are.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::format::Format;
use super::limits::Limits;

/// Where a new function starts reading its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartFrom {
    /// From the oldest record kept.
    #[default]
    Earliest,
    /// From records produced after the deploy.
    Latest,
}

/// What a user asks to deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySpec {
    /// Function name: its consumer group and the owner of its state.
    pub name: String,
    /// Hex sha256 of a component uploaded before.
    pub component: String,
    /// Input topics; with more than one they must have the same partition count.
    pub inputs: Vec<String>,
    /// Topics the function may emit to; created when missing.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Dead-letter topic; `<name>-dlq` when not given.
    #[serde(default)]
    pub dlq: Option<String>,
    /// Configuration the function reads through the `config` import.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Limits; defaults for those not given.
    #[serde(default)]
    pub limits: Limits,
    /// Where to start when the function has no committed offsets yet.
    #[serde(default)]
    pub start: StartFrom,
    /// Formats of input topics' values, by topic; raw for a topic not named.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub input_formats: BTreeMap<String, Format>,
    /// Formats of output topics' values, by topic; raw for a topic not named.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub output_formats: BTreeMap<String, Format>,
    /// Schemas (their text, of the topic's format) that output topics' values are
    /// written with, by topic: registered under the topic's value subject at deploy,
    /// if the subject's compatibility rules allow; an output of a registry format not
    /// named here is written with its subject's latest schema.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub output_schemas: BTreeMap<String, String>,
}

impl DeploySpec {
    /// The dead-letter topic.
    pub fn dlq_topic(&self) -> String {
        self.dlq
            .clone()
            .unwrap_or_else(|| format!("{}-dlq", self.name))
    }

    /// The topics the function writes that it does not read: its outputs and its
    /// dead-letter topic, which a deploy creates when missing.
    pub fn written_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = Vec::new();
        for topic in self.outputs.iter().cloned().chain([self.dlq_topic()]) {
            if !self.inputs.contains(&topic) && !topics.contains(&topic) {
                topics.push(topic);
            }
        }
        topics
    }
}

/// One version of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// Version number, from 1.
    pub version: u32,
    /// When it was deployed, milliseconds since the Unix epoch.
    pub deployed_at_ms: i64,
    /// What was deployed.
    pub spec: DeploySpec,
}

/// All versions of a function.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Versions, oldest first.
    pub versions: Vec<Deployment>,
    /// Whether the latest version runs (false after an undeploy).
    pub active: bool,
}

impl History {
    /// The running version.
    pub fn current(&self) -> Option<&Deployment> {
        self.versions.last().filter(|_| self.active)
    }
}

/// Checks a function name: it becomes part of topic names and state keys.
pub fn validate_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    anyhow::ensure!(
        valid,
        "invalid function name {name:?}: use 1 to 200 of the characters a-z A-Z 0-9 . _ -"
    );
    Ok(())
}
