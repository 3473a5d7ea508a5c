//! What a deployment is: a function's name, component (by sha256), topics (named, or
//! matched by a pattern) and their value formats, config and limits, each version of it,
//! and where a new function starts. The registry keeps them; this module only says what
//! they are.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::format::{Format, SubjectNaming};
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
    /// From the first record of each input partition at or after this time
    /// (milliseconds since the Unix epoch).
    Time(i64),
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
    #[serde(default)]
    pub inputs: Vec<String>,
    /// A regular expression (matching whole names) of further input topics: every topic
    /// that matches, now or once created, with the function's partition count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_pattern: Option<String>,
    /// The partition count of the function's inputs, as the deploy found it; a topic
    /// the pattern matches is read only when it has as many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
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
    /// Formats of input topics' values, by topic; the pattern itself names the format of
    /// the topics it matches; raw for a topic not named.
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
    /// How the registry subjects of output values are named.
    #[serde(default, skip_serializing_if = "SubjectNaming::is_default")]
    pub subject_naming: SubjectNaming,
}

/// The topic that keeps a copy of `function`'s state, where the log needs one.
pub fn changelog_topic(function: &str) -> String {
    format!("{function}-changelog")
}

impl DeploySpec {
    /// A deployment of `component` (its sha256) as `name`, reading `inputs`, with
    /// defaults for everything else: no outputs, config or formats, default limits, from
    /// the earliest records.
    pub fn new(name: &str, component: &str, inputs: &[&str]) -> DeploySpec {
        DeploySpec {
            name: name.to_owned(),
            component: component.to_owned(),
            inputs: inputs.iter().map(|t| (*t).to_owned()).collect(),
            input_pattern: None,
            partitions: None,
            outputs: Vec::new(),
            dlq: None,
            config: BTreeMap::new(),
            limits: Limits::default(),
            start: StartFrom::Earliest,
            input_formats: BTreeMap::new(),
            output_formats: BTreeMap::new(),
            output_schemas: BTreeMap::new(),
            subject_naming: SubjectNaming::Topic,
        }
    }

    /// The input pattern, compiled to match whole topic names.
    pub fn input_regex(&self) -> Result<Option<Regex>> {
        self.input_pattern
            .as_deref()
            .map(|pattern| {
                Regex::new(&format!("^(?:{pattern})$")).with_context(|| {
                    format!("--input-pattern {pattern:?} is not a regular expression")
                })
            })
            .transpose()
    }

    /// The function's inputs among `topics` (every topic of the log, with its partition
    /// count): the named ones, then those the pattern matches that have the function's
    /// partition count, in name order. A topic the function writes, its changelog and
    /// internal topics (`_...`) are never inputs, whatever the pattern.
    pub fn inputs_among(&self, topics: &[(String, u32)]) -> Result<Vec<String>> {
        let mut inputs = self.inputs.clone();
        let Some(pattern) = self.input_regex()? else {
            return Ok(inputs);
        };
        let own = self.written_topics();
        let changelog = changelog_topic(&self.name);
        let mut matched: Vec<&String> = topics
            .iter()
            .filter(|(name, partitions)| {
                pattern.is_match(name)
                    && self.partitions.is_none_or(|p| p == *partitions)
                    && !name.starts_with('_')
                    && *name != changelog
                    && !own.contains(name)
                    && !inputs.contains(name)
            })
            .map(|(name, _)| name)
            .collect();
        matched.sort();
        inputs.extend(matched.into_iter().cloned());
        Ok(inputs)
    }

    /// The format of the topics the input pattern matches: the one `input_formats` gives
    /// the pattern itself.
    pub fn pattern_format(&self) -> Format {
        self.input_pattern
            .as_ref()
            .and_then(|pattern| self.input_formats.get(pattern))
            .copied()
            .unwrap_or_default()
    }

    /// Whether `other` reads the same inputs, so that a source of one serves the other.
    pub fn same_inputs(&self, other: &DeploySpec) -> bool {
        self.inputs == other.inputs
            && self.input_pattern == other.input_pattern
            && self.partitions == other.partitions
    }

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Version number, from 1.
    pub version: u32,
    /// When it was deployed, milliseconds since the Unix epoch.
    pub deployed_at_ms: i64,
    /// What was deployed.
    pub spec: DeploySpec,
    /// The replay this version was made for: each partition moves its inputs back (and
    /// maybe clears its state) once, as this version starts on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<Replay>,
    /// While this version is a canary: the partitions it runs, the rest running the
    /// version it was deployed beside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
    /// Why the version was made, when not by a user's deploy (a canary that ended by
    /// itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// A canary: a new version on whole partitions (so each partition's state stays with
/// one version), beside the version that runs the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Canary {
    /// The version the other partitions run.
    pub base: u32,
    /// The share of partitions asked for, in percent.
    pub percent: u8,
    /// The partitions the canary runs.
    pub partitions: Vec<u32>,
    /// Failed events per event on a replica above which the canary ends by itself, if
    /// set, once it has handled [`Canary::JUDGED_AFTER`] events there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failure_rate: Option<f64>,
}

impl Canary {
    /// Events a canary handles on a replica before its failure rate is judged.
    pub const JUDGED_AFTER: u64 = 100;

    /// The partitions `percent` of `partitions` comes to: the first ones, at least one
    /// and, short of 100 percent, never all.
    pub fn partitions_for(percent: u8, partitions: u32) -> Vec<u32> {
        let share = (u64::from(partitions) * u64::from(percent)).div_ceil(100) as u32;
        let most = if percent >= 100 {
            partitions
        } else {
            partitions.saturating_sub(1)
        };
        (0..share.clamp(1, most.max(1))).collect()
    }

    /// Whether the canary runs `partition`.
    pub fn runs(&self, partition: u32) -> bool {
        self.partitions.contains(&partition)
    }
}

/// Where a replay moves a function's inputs back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplayFrom {
    /// The oldest record each input partition keeps.
    Earliest,
    /// The first record of each input partition at or after this time (milliseconds
    /// since the Unix epoch), as Kafka's offsets-for-times finds it.
    Time(i64),
    /// These offsets, by topic and partition; an input partition not named keeps its
    /// committed offset.
    Offsets(Vec<(String, u32, u64)>),
}

impl ReplayFrom {
    /// Where this moves `topic`'s `partition`, which holds the offsets `low..high`, or
    /// `None` for an input it leaves where it is. `at_time` finds the first offset at or
    /// after a time.
    pub fn target(
        &self,
        topic: &str,
        partition: u32,
        (low, high): (u64, u64),
        at_time: impl FnOnce(i64) -> Result<u64>,
    ) -> Result<Option<u64>> {
        Ok(Some(match self {
            ReplayFrom::Earliest => low,
            ReplayFrom::Time(time_ms) => at_time(*time_ms)?,
            ReplayFrom::Offsets(given) => {
                match given.iter().find(|(t, p, _)| t == topic && *p == partition) {
                    Some((_, _, offset)) => (*offset).clamp(low, high),
                    None => return Ok(None),
                }
            }
        }))
    }
}

/// A replay: the inputs moved back, the state kept or cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    /// Where the inputs go back to.
    pub from: ReplayFrom,
    /// Whether the state (values, timers, stream time) starts empty again.
    pub reset_state: bool,
    /// Where each input partition ended when the replay was asked for (topic, partition,
    /// next offset): what the replay reads again, for its progress.
    #[serde(default)]
    pub until: Vec<(String, u32, u64)>,
}

/// All versions of a function.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Versions, oldest first.
    pub versions: Vec<Deployment>,
    /// Whether the latest version runs (false after an undeploy).
    pub active: bool,
    /// Changes made to the history in all, so that of two copies the later one wins.
    #[serde(default)]
    pub changes: u64,
}

impl History {
    /// The running version.
    pub fn current(&self) -> Option<&Deployment> {
        self.versions.last().filter(|_| self.active)
    }

    /// The version `version`.
    pub fn version(&self, version: u32) -> Option<&Deployment> {
        self.versions.iter().find(|d| d.version == version)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(inputs: &[&str], pattern: Option<&str>, partitions: Option<u32>) -> DeploySpec {
        DeploySpec {
            input_pattern: pattern.map(str::to_owned),
            partitions,
            outputs: vec!["logs-out".to_owned()],
            ..DeploySpec::new("f", "", inputs)
        }
    }

    #[test]
    fn a_pattern_matches_whole_names_of_the_functions_partition_count_and_never_its_own_topics() {
        let topics: Vec<(String, u32)> = [
            ("logs-web", 4),
            ("logs-api", 4),
            ("logs-big", 8),
            ("my-logs-web", 4),
            ("logs-out", 4),
            ("f-changelog", 4),
            ("f-dlq", 4),
            ("_logs-internal", 4),
            ("orders", 4),
        ]
        .iter()
        .map(|(n, p)| ((*n).to_owned(), *p))
        .collect();
        let spec = spec(&["orders"], Some("logs-.*|f-.*"), Some(4));
        assert_eq!(
            spec.inputs_among(&topics).expect("a pattern"),
            ["orders", "logs-api", "logs-web"]
        );
        let plain = super::tests::spec(&["orders"], None, None);
        assert_eq!(plain.inputs_among(&topics).expect("no pattern"), ["orders"]);
    }

    #[test]
    fn a_canary_takes_whole_partitions_at_least_one_and_not_all_short_of_every_one() {
        assert_eq!(Canary::partitions_for(25, 8), [0, 1]);
        assert_eq!(Canary::partitions_for(30, 8), [0, 1, 2]);
        assert_eq!(Canary::partitions_for(1, 8), [0]);
        assert_eq!(Canary::partitions_for(99, 8), [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(Canary::partitions_for(100, 8), (0..8).collect::<Vec<_>>());
        assert_eq!(Canary::partitions_for(50, 2), [0]);
    }

    #[test]
    fn a_pattern_that_is_no_regular_expression_is_refused() {
        let err = spec(&[], Some("logs-("), None)
            .input_regex()
            .expect_err("unbalanced");
        assert!(err.to_string().contains("--input-pattern"), "{err}");
    }
}
