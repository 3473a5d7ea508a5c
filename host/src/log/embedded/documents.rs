//! Documents the embedded store keeps beside the log: deployment histories and
//! components (the registry's store on the embedded log, and the local copy of Kafka's),
//! and the changelog checkpoints of state restored from Kafka.

use anyhow::{Context as _, Result, bail};
use redb::{ReadableDatabase, ReadableTable};

use super::frame::{self, damaged};
use super::store::EmbeddedLog;
use super::tables::{ARTIFACTS, CHECKPOINTS, DEPLOYMENTS};
use crate::model::deployment::History;
use crate::registry::RegistryStore;
use crate::sandbox::sha256_hex;

impl EmbeddedLog {
    /// Stores a deployment history document under `name`.
    pub fn put_deployment(&self, name: &str, doc: &[u8]) -> Result<()> {
        self.guard("storing a deployment", |db| {
            let txn = db.begin_write()?;
            txn.open_table(DEPLOYMENTS)?
                .insert(name, frame::seal_doc("deployment", name, doc).as_slice())?;
            txn.commit()?;
            Ok(())
        })
    }

    /// Every stored deployment document.
    pub fn deployments(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.guard("reading the deployments", |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(DEPLOYMENTS)?;
            let mut docs = Vec::new();
            for item in table.iter()? {
                let (name, stored) = item?;
                let name = name.value().to_owned();
                let doc = frame::open_doc("deployment", &name, stored.value())
                    .with_context(|| damaged(&format!("the deployment history of {name}")))?
                    .to_vec();
                docs.push((name, doc));
            }
            Ok(docs)
        })
    }

    /// Stores a component under its sha256.
    pub fn put_artifact(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        self.guard("storing a component", |db| {
            let txn = db.begin_write()?;
            txn.open_table(ARTIFACTS)?.insert(sha256, bytes)?;
            txn.commit()?;
            Ok(())
        })
    }

    /// The component with `sha256`; an error when what is stored under it is not it.
    pub fn artifact(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        self.guard("reading a component", |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(ARTIFACTS)?;
            let Some(stored) = table.get(sha256)? else {
                return Ok(None);
            };
            let bytes = stored.value().to_vec();
            if sha256_hex(&bytes) != sha256 {
                bail!(damaged(&format!("component {sha256}")));
            }
            Ok(Some(bytes))
        })
    }

    /// The changelog offset `function`'s local state of `partition` is restored to.
    pub fn checkpoint(&self, function: &str, partition: u32) -> Result<Option<u64>> {
        self.guard("reading a checkpoint", |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(CHECKPOINTS)?;
            Ok(table.get((function, partition))?.map(|v| v.value()))
        })
    }

    /// Records that the local state of `function`'s `partition` holds every change up to
    /// changelog offset `offset`, durably along with all state written before.
    pub fn put_checkpoint(&self, function: &str, partition: u32, offset: u64) -> Result<()> {
        self.guard("storing a checkpoint", |db| {
            let txn = db.begin_write()?;
            txn.open_table(CHECKPOINTS)?
                .insert((function, partition), offset)?;
            txn.commit()?;
            Ok(())
        })
    }
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
