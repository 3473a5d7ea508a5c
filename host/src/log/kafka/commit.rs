//! Committing runs of batches on Kafka. Exactly once: one transaction holding the output
//! records, the changelog records and the input offsets (sent to the transaction with the
//! group's metadata, KIP-447). At least once: the records flushed, then the offsets
//! committed. Either way the local copy of the state follows.

use anyhow::{Result, anyhow};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::changelog::entries;
use super::cluster::REQUEST_TIMEOUT;
use super::records::{flush, send_record};
use super::source::KafkaSource;
use crate::model::effects::Commit;
use crate::model::partitioner::partition_for;
use crate::state::cache::StateCache;

impl KafkaSource {
    /// Commits `commits`, then moves each partition's committed positions and buffers
    /// past them; the read positions stay where the reads left them.
    pub(super) fn commit_runs(&mut self, commits: Vec<Commit<'_>>) -> Result<()> {
        // The local copy counts its state's size itself: a partition revoked and assigned
        // back while its run waited to commit was restored from the changelog meanwhile,
        // so the values the run's writes replace there may not be those it counted from.
        let commits: Vec<Commit<'_>> = commits
            .into_iter()
            .map(|c| Commit {
                offsets: self.every_input(c.partition, c.offsets),
                state_growth: None,
                ..c
            })
            .collect();
        if self.exactly_once {
            self.commit_transaction(&commits)?;
        } else {
            self.commit_at_least_once(&commits)?;
        }
        self.local.cache_commit(&commits)?;
        for commit in &commits {
            let partition = commit.partition;
            self.caches
                .entry(partition)
                .or_insert_with(|| StateCache::new(self.cache_bytes))
                .apply(&commit.effects.state);
            for (topic, next) in &commit.offsets {
                self.buffers.committed(topic, partition, *next);
            }
            self.positions
                .entry(partition)
                .or_default()
                .extend(commit.offsets.iter().cloned());
        }
        Ok(())
    }

    /// The offsets to commit for `partition`: those the run moved, the committed ones of
    /// the other inputs, each moved past what the consumer skipped without handing it over
    /// (transaction markers, aborted records) once everything fetched is handled, so a
    /// drained partition shows no lag.
    fn every_input(&self, partition: u32, moved: Vec<(String, u64)>) -> Vec<(String, u64)> {
        let mut offsets = self.positions.get(&partition).cloned().unwrap_or_default();
        offsets.extend(moved);
        let Ok(consumed) = self.consumer.position() else {
            return offsets.into_iter().collect();
        };
        offsets
            .into_iter()
            .map(|(topic, next)| {
                let drained = !self.buffers.has_from(&topic, partition, next);
                let fetched = consumed
                    .find_partition(&topic, partition as i32)
                    .and_then(|e| e.offset().to_raw())
                    .filter(|o| *o >= 0)
                    .map_or(0, |o| o as u64);
                let next = if drained { next.max(fetched) } else { next };
                (topic, next)
            })
            .collect()
    }

    /// Sends a run of batches' outputs and changelog records.
    fn send_all(&self, commit: &Commit<'_>) -> Result<()> {
        for output in &commit.effects.outputs {
            let partitions = self.cluster.require_partitions(&output.topic)?;
            let p = partition_for(
                output.record.key.as_deref(),
                partitions,
                output.fallback_partition,
            );
            send_record(&self.producer, &output.topic, Some(p), &output.record)?;
        }
        for record in entries(commit) {
            send_record(
                &self.producer,
                &self.changelog,
                Some(commit.partition),
                &record,
            )?;
        }
        Ok(())
    }

    fn offsets(commits: &[Commit<'_>]) -> Result<TopicPartitionList> {
        let mut list = TopicPartitionList::new();
        for commit in commits {
            for (topic, next) in &commit.offsets {
                list.add_partition_offset(
                    topic,
                    commit.partition as i32,
                    Offset::Offset(*next as i64),
                )?;
            }
        }
        Ok(list)
    }

    fn commit_transaction(&mut self, commits: &[Commit<'_>]) -> Result<()> {
        let result = self.transaction(commits);
        if let Err(err) = &result {
            if let Some(KafkaError::Transaction(cause)) = err.downcast_ref::<KafkaError>()
                && cause.is_fatal()
            {
                self.broken = Some(cause.to_string());
            } else if let Err(abort) = self.producer.abort_transaction(REQUEST_TIMEOUT) {
                self.broken = Some(format!("the transaction cannot be aborted: {abort}"));
            }
        }
        result
    }

    fn transaction(&self, commits: &[Commit<'_>]) -> Result<()> {
        self.producer
            .begin_transaction()
            .map_err(|e| anyhow!(e).context("beginning a transaction"))?;
        commits.iter().try_for_each(|c| self.send_all(c))?;
        let metadata = self
            .consumer
            .group_metadata()
            .ok_or_else(|| anyhow!("the consumer has no group metadata"))?;
        self.producer
            .send_offsets_to_transaction(&Self::offsets(commits)?, &metadata, REQUEST_TIMEOUT)
            .map_err(|e| anyhow!(e).context("adding offsets to the transaction"))?;
        flush(&self.producer, REQUEST_TIMEOUT)?;
        self.producer
            .commit_transaction(REQUEST_TIMEOUT)
            .map_err(|e| anyhow!(e).context("committing the transaction"))
    }

    fn commit_at_least_once(&self, commits: &[Commit<'_>]) -> Result<()> {
        commits.iter().try_for_each(|c| self.send_all(c))?;
        flush(&self.producer, REQUEST_TIMEOUT)?;
        self.consumer
            .commit(&Self::offsets(commits)?, CommitMode::Sync)
            .map_err(|e| anyhow!("committing offsets: {e}"))
    }
}
