//! The embedded log: named topics of N partitions, durable appends, per-group committed
//! offsets, function state and timers, deployments and components, all in one
//! transactional store file under the data directory. It is a single-node log; it never
//! grows cluster features.

mod batch;
mod check;
mod commit;
mod documents;
mod frame;
mod journal;
mod migrate;
mod records;
mod retention;
mod source;
mod state;
mod store;
mod tables;
mod topics;

use std::sync::Arc;

use anyhow::{Context as _, Result};

pub use self::check::{CheckReport, check};
pub use self::retention::RetentionReport;
use self::source::EmbeddedSource;
pub use self::store::{EmbeddedLog, LogConfig, Trouble};
pub use self::tables::{PartitionExtent, STORE_FILE, TopicMeta};
pub use self::topics::validate_topic_name;
use super::{
    Backend, Fetched, Idempotence, LogError, NewTopic, Opener, PartitionStatus, StateAt,
    StorageUse, TopicInfo,
};
use crate::model::deployment::{DeploySpec, Deployment, StartFrom};
use crate::model::effects::Commit;
use crate::model::record::Record;
use crate::registry::RegistryStore;
use crate::runner::{Source, Sources};

/// The embedded log as a replica's backend.
pub struct EmbeddedBackend {
    log: Arc<EmbeddedLog>,
    replica: String,
    state_cache_bytes: usize,
}

impl EmbeddedBackend {
    /// Opens (or creates) the log in the data directory.
    pub fn open(opener: &Opener<'_>, config: LogConfig) -> Result<Self> {
        Ok(EmbeddedBackend {
            log: Arc::new(EmbeddedLog::open(opener.dir, config)?),
            replica: opener.replica.to_owned(),
            state_cache_bytes: opener.state_cache_bytes,
        })
    }

    fn info(&self, meta: TopicMeta) -> Result<TopicInfo> {
        let extents = self.log.extents(&meta)?;
        Ok(TopicInfo {
            name: meta.name,
            partitions: meta.partitions,
            retention_ms: meta.retention_ms,
            retention_bytes: meta.retention_bytes,
            records: extents.iter().map(|e| e.end - e.start).sum(),
            bytes: extents.iter().map(|e| e.bytes).sum(),
            offsets: extents.iter().map(|e| (e.start, e.end)).collect(),
        })
    }

    /// A failure to write, told as what it is when the store is in trouble.
    fn unavailable(&self, err: LogError) -> LogError {
        match (err, self.log.trouble()) {
            (LogError::Failed(_), Some(trouble)) => LogError::Unavailable(trouble),
            (err, _) => err,
        }
    }

    /// Commits the inputs' end offsets for a function that has none, so it starts there.
    fn start_at_end(&self, spec: &DeploySpec) -> Result<()> {
        for input in &self.inputs_of(spec)? {
            let topic = self.log.require_topic(input)?;
            for (partition, extent) in self.log.extents(&topic)?.into_iter().enumerate() {
                let partition = partition as u32;
                if self.log.committed(&spec.name, &topic, partition)?.is_some() {
                    continue;
                }
                self.log.commit(&[Commit {
                    group: &spec.name,
                    partition,
                    offsets: vec![(input.clone(), extent.end)],
                    stream_time_ms: self.log.stream_time(&spec.name, partition)?,
                    effects: &Default::default(),
                    state_growth: None,
                }])?;
            }
        }
        Ok(())
    }
}

impl Sources for EmbeddedBackend {
    fn source(&self, deployment: &Deployment) -> Result<Box<dyn Source>> {
        Ok(Box::new(EmbeddedSource::new(
            self.log.clone(),
            deployment.spec.clone(),
            self.state_cache_bytes,
        )?))
    }

    fn max_record_bytes(&self) -> usize {
        self.log.config().max_record_bytes
    }
}

impl Backend for EmbeddedBackend {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn topics(&self) -> Result<Vec<TopicInfo>, LogError> {
        let topics = self.log.topics();
        Ok(topics
            .into_iter()
            .map(|meta| self.info(meta))
            .collect::<Result<_>>()?)
    }

    fn topic(&self, name: &str) -> Result<TopicInfo, LogError> {
        let meta = self
            .log
            .topic(name)
            .ok_or_else(|| LogError::NoTopic(name.to_owned()))?;
        Ok(self.info(meta)?)
    }

    fn create_topic(&self, topic: &NewTopic) -> Result<TopicInfo, LogError> {
        let meta = self
            .log
            .create_topic(
                &topic.name,
                topic.partitions,
                topic.retention_ms,
                topic.retention_bytes,
            )
            .map_err(|err| self.unavailable(err))?;
        Ok(self.info(meta)?)
    }

    fn append(
        &self,
        topic: &str,
        records: Vec<(Option<u32>, Record)>,
        idempotence: Option<Idempotence<'_>>,
    ) -> Result<Vec<(u32, u64)>, LogError> {
        self.log
            .append(topic, records, idempotence)
            .map_err(|err| self.unavailable(err))
    }

    fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Fetched, LogError> {
        let meta = self
            .log
            .topic(topic)
            .ok_or_else(|| LogError::NoTopic(topic.to_owned()))?;
        if partition >= meta.partitions {
            return Err(LogError::Invalid(format!(
                "topic {topic} has no partition {partition}"
            )));
        }
        Ok(self.log.fetch(&meta, partition, from, max)?)
    }

    fn partitions(&self, topic: &str) -> Result<u32> {
        Ok(self.log.require_topic(topic)?.partitions)
    }

    fn topic_partitions(&self) -> Result<Vec<(String, u32)>> {
        Ok(self
            .log
            .topics()
            .into_iter()
            .map(|meta| (meta.name, meta.partitions))
            .collect())
    }

    fn prepare(&self, spec: &DeploySpec, partitions: u32) -> Result<()> {
        for output in spec.written_topics() {
            self.log
                .ensure_topic(&output, partitions)
                .with_context(|| format!("preparing output topic {output}"))?;
        }
        if spec.start == StartFrom::Latest {
            self.start_at_end(spec)?;
        }
        Ok(())
    }

    fn partition_status(&self, deployment: &Deployment) -> Result<Vec<PartitionStatus>> {
        let name = &deployment.spec.name;
        let mut partitions = Vec::new();
        for input in &self.inputs_of(&deployment.spec)? {
            let topic = self.log.require_topic(input)?;
            for (partition, PartitionExtent { start, end, .. }) in
                self.log.extents(&topic)?.into_iter().enumerate()
            {
                let partition = partition as u32;
                let committed = self.log.committed(name, &topic, partition)?;
                partitions.push(PartitionStatus::new(
                    input,
                    partition,
                    (start, end),
                    committed,
                    self.replica.clone(),
                ));
            }
        }
        Ok(partitions)
    }

    fn state_entries(&self, function: &str, partition: u32) -> Result<u64> {
        self.log.state_len(function, partition)
    }

    fn state_bytes(&self, function: &str, partition: u32) -> Result<u64> {
        self.log.state_bytes(function, partition)
    }

    fn replayed(&self, function: &str, partition: u32) -> Result<Option<u32>> {
        self.log.replayed(function, partition)
    }

    fn restoring(&self) -> usize {
        0
    }

    fn state_at(&self, function: &str, partition: u32) -> Result<StateAt> {
        Ok(StateAt::Here(
            self.log.partition_state(function, partition)?,
        ))
    }

    fn replicas(&self) -> Vec<String> {
        vec![self.replica.clone()]
    }

    fn registry_store(&self) -> Arc<dyn RegistryStore> {
        self.log.clone()
    }

    fn maintain(&self, now_ms: i64) -> Result<()> {
        let report = self.log.apply_retention(now_ms)?;
        if report.records > 0 {
            tracing::info!(
                records = report.records,
                bytes = report.bytes,
                "retention deleted old records"
            );
        }
        Ok(())
    }

    fn trouble(&self) -> Option<Trouble> {
        self.log.trouble()
    }

    fn recover(&self) -> bool {
        self.log.recover()
    }

    fn storage(&self) -> Result<StorageUse> {
        let (store_bytes, free_bytes) = self.log.usage()?;
        Ok(StorageUse {
            store_bytes,
            free_bytes,
            io_errors: self.log.io_errors(),
        })
    }

    fn shutdown(&self) {}
}

#[cfg(test)]
mod tests;
