//! Deployments of a replica: every version of each function, which one is active, and
//! the components they name. Versions are numbered per function and components are
//! content-addressed, so a rollback is a deploy of an older sha256. Where histories and
//! components are kept (the embedded store, Kafka's internal topics) is the store's
//! business, behind [`RegistryStore`].

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, Weak};

use anyhow::{Context as _, Result, ensure};

use crate::model::deployment::{Canary, DeploySpec, Deployment, History, Replay};

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
            (history.changes, history.versions.len(), !history.active)
                >= (k.changes, k.versions.len(), !k.active)
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

    /// Changes `name`'s history (a new one when it has none) with `change`, and stores
    /// it, unless `change` fails.
    fn change<T>(&self, name: &str, change: impl FnOnce(&mut History) -> Result<T>) -> Result<T> {
        let mut histories = self.histories.write().unwrap_or_else(|p| p.into_inner());
        let mut history = histories.get(name).cloned().unwrap_or_default();
        let changed = change(&mut history)?;
        history.changes += 1;
        self.store.save(name, &history)?;
        histories.insert(name.to_owned(), history);
        Ok(changed)
    }

    /// Records a new version of `spec.name`, a canary of the running one when `canary`
    /// says so, and makes it the running one.
    pub fn deploy(
        &self,
        spec: DeploySpec,
        canary: Option<Canary>,
        now_ms: i64,
    ) -> Result<Deployment> {
        self.change(&spec.name.clone(), |history| {
            let deployment = Deployment {
                version: history.versions.last().map_or(1, |d| d.version + 1),
                deployed_at_ms: now_ms,
                spec,
                replay: None,
                canary,
                cause: None,
            };
            history.versions.push(deployment.clone());
            history.active = true;
            Ok(deployment)
        })
    }

    /// Records a new version of running `name`, the same as the running one but for
    /// `replay`, which each partition carries out as the version starts on it.
    pub fn replay(&self, name: &str, replay: Replay, now_ms: i64) -> Result<Deployment> {
        self.change(name, |history| {
            let current = running(name, history)?;
            ensure!(
                current.canary.is_none(),
                "version {} of {name} is a canary: `fnctl promote {name}` or `fnctl rollback {name}` first",
                current.version
            );
            let deployment = Deployment {
                version: current.version + 1,
                deployed_at_ms: now_ms,
                spec: current.spec.clone(),
                replay: Some(replay),
                canary: None,
                cause: None,
            };
            history.versions.push(deployment.clone());
            Ok(deployment)
        })
    }

    /// Makes the canary `version` of `name` the version of every partition.
    pub fn promote(&self, name: &str, version: u32) -> Result<Deployment> {
        self.change(name, |history| {
            let current = running(name, history)?;
            ensure!(
                current.version == version && current.canary.is_some(),
                "version {version} of {name} is not a running canary (version {} runs{})",
                current.version,
                if current.canary.is_some() {
                    ", a canary"
                } else {
                    ""
                }
            );
            let current = history
                .versions
                .last_mut()
                .context("a deployment has versions")?;
            current.canary = None;
            Ok(current.clone())
        })
    }

    /// Ends the canary `version` of `name`: its base version runs every partition
    /// again, as a new version, made for `cause` when not by a user. Ends nothing when
    /// `version` is no running canary any more.
    pub fn end_canary(
        &self,
        name: &str,
        version: u32,
        cause: Option<String>,
        now_ms: i64,
    ) -> Result<Option<Deployment>> {
        let runs = self.current(name);
        if runs.is_none_or(|d| d.version != version || d.canary.is_none()) {
            return Ok(None);
        }
        self.change(name, |history| {
            let current = running(name, history)?;
            let Some(canary) = current
                .canary
                .as_ref()
                .filter(|_| current.version == version)
            else {
                return Ok(None);
            };
            let base = history.version(canary.base).with_context(|| {
                format!("the canary's base version {} is not recorded", canary.base)
            })?;
            let deployment = Deployment {
                version: current.version + 1,
                deployed_at_ms: now_ms,
                spec: base.spec.clone(),
                replay: None,
                canary: None,
                cause,
            };
            history.versions.push(deployment.clone());
            Ok(Some(deployment))
        })
    }

    /// Stops `name`; its offsets, state and history stay.
    pub fn undeploy(&self, name: &str) -> Result<Deployment> {
        self.change(name, |history| {
            let last = running(name, history)?.clone();
            history.active = false;
            Ok(last)
        })
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

/// The running version of `history`, which is `name`'s.
fn running<'a>(name: &str, history: &'a History) -> Result<&'a Deployment> {
    history
        .current()
        .with_context(|| format!("no function named {name:?} is deployed"))
}
