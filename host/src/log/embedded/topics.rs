//! Topics of the embedded log: named, with N partitions and optional retention, and the
//! extent (log start, next offset, bytes) of each partition.

use anyhow::{Result, bail};
use redb::ReadableDatabase;

use super::frame;
use super::store::EmbeddedLog;
use super::tables::{PARTITIONS, PartitionExtent, TOPICS, TopicMeta};
use crate::log::LogError;

/// Checks a topic name the way Kafka does.
pub fn validate_topic_name(name: &str) -> Result<(), LogError> {
    let valid = !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(LogError::Invalid(format!(
            "invalid topic name {name:?}: use 1 to 249 of the characters a-z A-Z 0-9 . _ -"
        )))
    }
}

impl EmbeddedLog {
    /// Creates a topic.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        retention_ms: Option<u64>,
        retention_bytes: Option<u64>,
    ) -> Result<TopicMeta, LogError> {
        validate_topic_name(name)?;
        if !(1..=1024).contains(&partitions) {
            return Err(LogError::Invalid(format!(
                "a topic needs between 1 and 1024 partitions, not {partitions}"
            )));
        }
        let mut topics = self.topics.write().unwrap_or_else(|p| p.into_inner());
        if topics.contains_key(name) {
            return Err(LogError::Exists(name.to_owned()));
        }
        let id = topics.values().map(|t| t.id + 1).max().unwrap_or(1);
        let meta = TopicMeta {
            name: name.to_owned(),
            id,
            partitions,
            retention_ms,
            retention_bytes,
        };
        self.guard(&format!("storing topic {name}"), |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(TOPICS)?;
                let sealed = frame::seal_doc("topic", name, &serde_json::to_vec(&meta)?);
                table.insert(name, sealed.as_slice())?;
                let mut parts = txn.open_table(PARTITIONS)?;
                for p in 0..partitions {
                    parts.insert((id, p), (0, 0, 0))?;
                }
            }
            txn.commit()?;
            Ok(())
        })?;
        topics.insert(name.to_owned(), meta.clone());
        Ok(meta)
    }

    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Option<TopicMeta> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// The topic named `name`, or an error that says it does not exist.
    pub fn require_topic(&self, name: &str) -> Result<TopicMeta> {
        self.topic(name)
            .ok_or_else(|| LogError::NoTopic(name.to_owned()).into())
    }

    /// Every topic.
    pub fn topics(&self) -> Vec<TopicMeta> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The extent of each partition of `topic`.
    pub fn extents(&self, topic: &TopicMeta) -> Result<Vec<PartitionExtent>> {
        self.guard("reading partition extents", |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(PARTITIONS)?;
            (0..topic.partitions)
                .map(|p| {
                    let (start, end, bytes) = table
                        .get((topic.id, p))?
                        .map(|v| v.value())
                        .unwrap_or_default();
                    Ok(PartitionExtent { start, end, bytes })
                })
                .collect()
        })
    }

    /// Checks that `topic` exists, creating it with `partitions` when it does not.
    pub fn ensure_topic(&self, name: &str, partitions: u32) -> Result<TopicMeta> {
        match self.create_topic(name, partitions, None, None) {
            Ok(meta) => Ok(meta),
            Err(LogError::Exists(_)) => self.require_topic(name),
            Err(err) => bail!(err),
        }
    }
}
