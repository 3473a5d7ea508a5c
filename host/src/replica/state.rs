//! Reading a function's committed state, as `fnctl state` and the admin API do: the
//! partition a key belongs to (the one its input records with that key go to), and each
//! partition's state read where it can be now, here, or on the replica that runs it.
//! Only what is committed is read; a partition that is restoring its state is not read
//! at all, so an answer is never stale without saying so.

use anyhow::{Context as _, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use super::Replica;
use crate::log::StateAt;
use crate::model::partitioner::partition_for;

/// Most entries one scan answers.
pub const MAX_SCAN: usize = 1000;
/// Entries a scan answers unless it says.
pub const DEFAULT_SCAN: usize = 100;

/// The state of one partition, read here or to be read on another replica.
pub enum PartitionRead {
    /// Read here.
    Read(Vec<StateEntry>),
    /// Runs on the replica whose admin API is `admin`.
    Elsewhere {
        /// The partition.
        partition: u32,
        /// The admin API of the replica that runs it.
        admin: String,
    },
}

/// Why state cannot be read now, though nothing is wrong with the query.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotNow(pub String);

/// What is wrong with a query.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadQuery(pub String);

impl StateQuery {
    /// The query as URL query parameters.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut params = Vec::new();
        for (field, value) in [
            ("key", &self.key),
            ("prefix", &self.prefix),
            ("after", &self.after),
        ] {
            if let Some(value) = value {
                params.push((field, value.clone()));
            }
        }
        if let Some(limit) = self.limit {
            params.push(("limit", limit.to_string()));
        }
        if let Some(partition) = self.partition {
            params.push(("partition", partition.to_string()));
        }
        if self.forwarded {
            params.push(("forwarded", "true".to_owned()));
        }
        params
    }
}

impl Replica {
    /// Reads what `query` asks of `name`'s committed state, partition by partition.
    /// A partition that cannot be read now fails it with [`NotNow`].
    pub fn read_state(&self, name: &str, query: &StateQuery) -> Result<Vec<PartitionRead>> {
        let deployment = self
            .registry
            .current(name)
            .with_context(|| format!("no function named {name:?} is deployed"))?;
        let partitions = match deployment.spec.partitions {
            Some(partitions) => partitions,
            None => {
                let inputs = self.log.inputs_of(&deployment.spec)?;
                let first = inputs.first().context("the function reads no topic")?;
                self.log.partitions(first)?
            }
        };
        let limit = query.limit.unwrap_or(DEFAULT_SCAN).clamp(1, MAX_SCAN);
        let wanted: Vec<u32> = match (query.partition, &query.key) {
            (Some(partition), _) if partition >= partitions => {
                return Err(BadQuery(format!(
                    "{name} has partitions 0 to {}, not {partition}",
                    partitions.saturating_sub(1)
                ))
                .into());
            }
            (Some(partition), _) => vec![partition],
            (None, Some(key)) => vec![partition_for(Some(key.as_bytes()), partitions, 0)],
            (None, None) => (0..partitions).collect(),
        };
        let mut reads = Vec::with_capacity(wanted.len());
        for partition in wanted {
            let state = match self.log.state_at(name, partition)? {
                StateAt::Here(state) => state,
                StateAt::Elsewhere { admin, .. } if !query.forwarded => {
                    reads.push(PartitionRead::Elsewhere { partition, admin });
                    continue;
                }
                StateAt::Elsewhere { replica, .. } => {
                    return Err(NotNow(format!(
                        "partition {partition} of {name} moved to replica {replica}"
                    ))
                    .into());
                }
                StateAt::Unavailable(why) => return Err(NotNow(why).into()),
            };
            let entries = match &query.key {
                Some(key) => state
                    .get(key.as_bytes())?
                    .map(|value| StateEntry::new(partition, key.as_bytes(), &value))
                    .into_iter()
                    .collect(),
                None => {
                    let prefix = query.prefix.as_deref().unwrap_or_default().as_bytes();
                    let after = query.after.as_deref().map(str::as_bytes);
                    state
                        .scan(prefix, after, limit)?
                        .iter()
                        .map(|(key, value)| StateEntry::new(partition, key, value))
                        .collect()
                }
            };
            reads.push(PartitionRead::Read(entries));
        }
        Ok(reads)
    }
}

/// One entry of a function's committed state: key and value as text, or as base64 with
/// `encoding` set when either is not UTF-8, and the value's JSON when it is JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateEntry {
    /// The partition whose state holds it.
    pub partition: u32,
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// `base64` when key or value were not text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// The value parsed, when it is JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
}

impl StateEntry {
    /// The printable form of a stored entry.
    pub fn new(partition: u32, key: &[u8], value: &[u8]) -> Self {
        let binary = std::str::from_utf8(key).is_err() || std::str::from_utf8(value).is_err();
        let render = |b: &[u8]| {
            if binary {
                BASE64.encode(b)
            } else {
                String::from_utf8_lossy(b).into_owned()
            }
        };
        StateEntry {
            partition,
            key: render(key),
            value: render(value),
            encoding: binary.then(|| "base64".to_owned()),
            json: serde_json::from_slice(value).ok(),
        }
    }
}

/// Entries of a function's committed state, in key order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateAnswer {
    /// The function.
    pub function: String,
    /// The entries found.
    pub entries: Vec<StateEntry>,
}

/// What to read of a function's committed state: the entry under `key`, or the entries
/// whose keys start with `prefix` (after `after`, at most `limit`), of `partition` or of
/// every partition.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateQuery {
    /// The key of one entry; its partition is the one the key's input records go to.
    #[serde(default)]
    pub key: Option<String>,
    /// The prefix of a scan's keys.
    #[serde(default)]
    pub prefix: Option<String>,
    /// A scan starts after this key.
    #[serde(default)]
    pub after: Option<String>,
    /// Most entries of a scan [default 100, at most 1000].
    #[serde(default)]
    pub limit: Option<usize>,
    /// Only this partition.
    #[serde(default)]
    pub partition: Option<u32>,
    /// Set by the replica that forwards a query to the one that runs the partition: the
    /// receiver answers from its own state, or says it cannot.
    #[serde(default)]
    pub forwarded: bool,
}
