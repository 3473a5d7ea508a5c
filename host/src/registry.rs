//! Deployments of a replica: every version of each function, which one is active, and
//! the components they name. Versions are numbered per function and components are
//! content-addressed, so a rollback is a deploy of an older sha256. Where histories and
//! components are kept (the embedded store, Kafka's internal topics) is the store's
//! business, behind [`RegistryStore`].

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, Weak};

use anyhow::{Context as _, Result};

use crate::model::deployment::{DeploySpec, Deployment, History, Replay};

/// Where deployments and components are kept.
pub trait RegistryStore: Send + Sync {
    /// Every function's history.
    fn load(&self) -> Result<Vec<(String, History)>>;
    /// Stores `name`'s history.
    fn save(&self, name: &str, history: &History) -> Result<()>;
    /// Stores a component under its sha256.
    fn put_artifact(&self, sha256: &str, bytes: &[u8]) -> Result<()>;
    /// The component with `sha256`, if it has arrived.
    fn artifact(&self, sha256: &str) -> Result<Option<Vec<u8>>>;
    /// Hands changes other replicas make to `registry` from now on, where the store is
    /// shared with them.
    fn follow(&self, registry: Weak<Registry>) -> Result<()> {
        let _ = registry;
        Ok(())
    }
}

/// The registry of a replica.
pub struct Registry {
    store: Arc<dyn RegistryStore>,
    histories: RwLock<BTreeMap<String, History>>,
}

impl Registry {
    /// Loads every deployment from `store`, and follows the changes other replicas make
    /// to it.
    pub fn open(store: Arc<dyn RegistryStore>) -> Result<Arc<Registry>> {
        let histories = store.load()?.into_iter().collect();
        let registry = Arc::new(Registry {
            store,
            histories: RwLock::new(histories),
        });
        registry.store.follow(Arc::downgrade(&registry))?;
        Ok(registry)
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
            replay: None,
        };
        history.versions.push(deployment.clone());
        history.active = true;
        self.store.save(&deployment.spec.name, &history)?;
        histories.insert(deployment.spec.name.clone(), history);
        Ok(deployment)
    }

    /// Records a new version of running `name`, the same as the running one but for
    /// `replay`, which each partition carries out as the version starts on it.
    pub fn replay(&self, name: &str, replay: Replay, now_ms: i64) -> Result<Deployment> {
        let mut histories = self.histories.write().unwrap_or_else(|p| p.into_inner());
        let mut history = histories
            .get(name)
            .filter(|h| h.active)
            .cloned()
            .with_context(|| format!("no function named {name:?} is deployed"))?;
        let current = history
            .versions
            .last()
            .cloned()
            .context("a deployment has versions")?;
        let deployment = Deployment {
            version: current.version + 1,
            deployed_at_ms: now_ms,
            spec: current.spec,
            replay: Some(replay),
        };
        history.versions.push(deployment.clone());
        self.store.save(name, &history)?;
        histories.insert(name.to_owned(), history);
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
