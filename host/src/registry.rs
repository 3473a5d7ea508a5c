//! Deployments: what each function is (component sha256, topics, config, limits), every
//! version it has had, and which one is active. Versions are numbered per function and
//! the component is content-addressed, so a rollback is a deploy of an older sha256.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::embedded::EmbeddedLog;
use crate::limits::Limits;

/// Where deployments and components are kept: the embedded store, or Kafka's compacted
/// internal topics.
pub trait RegistryStore: Send + Sync {
    /// Every function's history.
    fn load(&self) -> Result<Vec<(String, History)>>;
    /// Stores `name`'s history.
    fn save(&self, name: &str, history: &History) -> Result<()>;
    /// Stores a component under its sha256.
    fn put_artifact(&self, sha256: &str, bytes: &[u8]) -> Result<()>;
    /// The component with `sha256`, if it has arrived.
    fn artifact(&self, sha256: &str) -> Result<Option<Vec<u8>>>;
}

impl RegistryStore for EmbeddedLog {
    fn load(&self) -> Result<Vec<(String, History)>> {
        self.deployments()?
            .into_iter()
            .map(|(name, doc)| {
                let history = serde_json::from_slice(&doc)
                    .with_context(|| format!("reading deployment {name}"))?;
                Ok((name, history))
            })
            .collect()
    }

    fn save(&self, name: &str, history: &History) -> Result<()> {
        self.put_deployment(name, &serde_json::to_vec(history)?)
    }

    fn put_artifact(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        EmbeddedLog::put_artifact(self, sha256, bytes)
    }

    fn artifact(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        EmbeddedLog::artifact(self, sha256)
    }
}

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
}

impl DeploySpec {
    /// The dead-letter topic.
    pub fn dlq_topic(&self) -> String {
        self.dlq
            .clone()
            .unwrap_or_else(|| format!("{}-dlq", self.name))
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

/// The registry of a replica.
pub struct Registry {
    store: Arc<dyn RegistryStore>,
    histories: RwLock<BTreeMap<String, History>>,
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

impl Registry {
    /// Loads every deployment from `store`.
    pub fn load(store: Arc<dyn RegistryStore>) -> Result<Registry> {
        let histories = store.load()?.into_iter().collect();
        Ok(Registry {
            store,
            histories: RwLock::new(histories),
        })
    }

    /// Takes in a history another replica stored, unless this one knows a newer one.
    pub fn apply(&self, name: &str, history: History) {
        let mut histories = self.histories.write().unwrap_or_else(|p| p.into_inner());
        let known = histories.get(name);
        let newer = known.is_none_or(|k| {
            (history.versions.len(), !history.active) >= (k.versions.len(), !k.active)
        });
        if newer {
            histories.insert(name.to_owned(), history);
        }
    }

    /// Stores a component.
    pub fn put_artifact(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        self.store.put_artifact(sha256, bytes)
    }

    /// The component with `sha256`.
    pub fn artifact(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        self.store.artifact(sha256)
    }

    /// Records a new version of `spec.name` and makes it the running one.
    pub fn deploy(&self, spec: DeploySpec, now_ms: i64) -> Result<Deployment> {
        let mut histories = self.histories.write().unwrap_or_else(|p| p.into_inner());
        let mut history = histories.get(&spec.name).cloned().unwrap_or_default();
        let version = history.versions.last().map_or(1, |d| d.version + 1);
        let deployment = Deployment {
            version,
            deployed_at_ms: now_ms,
            spec,
        };
        history.versions.push(deployment.clone());
        history.active = true;
        self.store.save(&deployment.spec.name, &history)?;
        histories.insert(deployment.spec.name.clone(), history);
        Ok(deployment)
    }

    /// Stops `name`; its offsets, state and history stay.
    pub fn undeploy(&self, name: &str) -> Result<Deployment> {
        let mut histories = self.histories.write().unwrap_or_else(|p| p.into_inner());
        let history = histories
            .get_mut(name)
            .filter(|h| h.active)
            .with_context(|| format!("no function named {name:?} is deployed"))?;
        history.active = false;
        let last = history
            .versions
            .last()
            .cloned()
            .context("a deployment has versions")?;
        self.store.save(name, history)?;
        Ok(last)
    }

    /// The running version of `name`.
    pub fn current(&self, name: &str) -> Option<Deployment> {
        self.histories
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .and_then(|h| h.current().cloned())
    }

    /// The history of `name`.
    pub fn history(&self, name: &str) -> Option<History> {
        self.histories
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The running version of every function.
    pub fn active(&self) -> Vec<Deployment> {
        self.histories
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter_map(|h| h.current().cloned())
            .collect()
    }
}
