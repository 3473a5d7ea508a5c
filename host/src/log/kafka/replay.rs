//! A replay on Kafka: one partition's group offsets moved back, its state dropped when
//! asked (a tombstone in the changelog for each of its keys and timers) and the replay
//! recorded in the changelog as done, in one Kafka transaction; then the local copy of the
//! state follows and the consumer reads again from the new offsets.

use anyhow::{Context as _, Result, anyhow};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::Producer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::changelog::replay_entries;
use super::cluster::REQUEST_TIMEOUT;
use super::records::{flush, send_record};
use super::source::KafkaSource;
use crate::model::deployment::{Replay, ReplayFrom};

impl KafkaSource {
    /// Carries out `replay` of `version` on `partition`, unless it was already.
    pub(super) fn replay_partition(
        &mut self,
        partition: u32,
        version: u32,
        replay: &Replay,
    ) -> Result<()> {
        if self.local.replayed(&self.function, partition)? >= Some(version) {
            return Ok(());
        }
        let targets = self.replay_targets(partition, &replay.from)?;
        let mut list = TopicPartitionList::new();
        for (topic, offset) in &targets {
            list.add_partition_offset(topic, partition as i32, Offset::Offset(*offset as i64))?;
        }
        let (keys, timers) = if replay.reset_state {
            let state = self.local.partition_state(&self.function, partition)?;
            let keys: Vec<Vec<u8>> = crate::state::all_keys(state.as_ref())?;
            let timers: Vec<Vec<u8>> = crate::state::all_timers(state.as_ref())?
                .into_iter()
                .map(|(_, key)| key)
                .collect();
            (keys, timers)
        } else {
            (Vec::new(), Vec::new())
        };
        let stream_time = if replay.reset_state {
            i64::MIN
        } else {
            self.local.stream_time(&self.function, partition)?
        };
        let records = replay_entries(&keys, &timers, version, stream_time);
        let send = |this: &Self| -> Result<()> {
            for record in &records {
                send_record(&this.producer, &this.changelog, Some(partition), record)?;
            }
            Ok(())
        };
        if self.exactly_once {
            self.producer
                .begin_transaction()
                .map_err(|e| anyhow!(e).context("beginning the replay's transaction"))?;
            let sent = send(self).and_then(|()| {
                let metadata = self
                    .consumer
                    .group_metadata()
                    .ok_or_else(|| anyhow!("the consumer has no group metadata"))?;
                self.producer
                    .send_offsets_to_transaction(&list, &metadata, REQUEST_TIMEOUT)
                    .map_err(|e| anyhow!(e).context("adding the replay's offsets"))?;
                flush(&self.producer, REQUEST_TIMEOUT)?;
                self.producer
                    .commit_transaction(REQUEST_TIMEOUT)
                    .map_err(|e| anyhow!(e).context("committing the replay"))
            });
            if let Err(err) = sent {
                let _ = self.producer.abort_transaction(REQUEST_TIMEOUT);
                return Err(err);
            }
            self.await_offsets(partition, &targets);
        } else {
            send(self)?;
            flush(&self.producer, REQUEST_TIMEOUT)?;
            self.consumer
                .commit(&list, CommitMode::Sync)
                .context("committing the replay's offsets")?;
        }
        self.local.replay_partition(
            &self.function,
            partition,
            &[],
            replay.reset_state,
            version,
            false,
        )?;
        self.caches.remove(&partition);
        self.cursors.remove(&partition);
        let positions = self.positions.entry(partition).or_default();
        for (topic, offset) in &targets {
            positions.insert(topic.clone(), *offset);
            self.buffers.forget(topic, partition);
            self.consumer
                .seek(
                    topic,
                    partition as i32,
                    Offset::Offset(*offset as i64),
                    REQUEST_TIMEOUT,
                )
                .with_context(|| format!("reading {topic}/{partition} again from {offset}"))?;
        }
        tracing::info!(function = %self.function, partition, version, "replay carried out");
        Ok(())
    }

    /// Waits (a while at most) until the group's offsets of `partition` read as `targets`:
    /// a committed transaction's offsets show once its markers are written, a moment
    /// after the commit returns, and until then status would read the partition as
    /// having read everything again.
    fn await_offsets(&self, partition: u32, targets: &[(String, u64)]) {
        let started = std::time::Instant::now();
        let shown = || {
            targets.iter().all(|(topic, offset)| {
                self.cluster
                    .group_offsets(&self.function, topic, partition + 1)
                    .is_ok_and(|offsets| offsets.get(partition as usize) == Some(&Some(*offset)))
            })
        };
        while !shown() {
            if started.elapsed() >= REQUEST_TIMEOUT {
                tracing::warn!(function = %self.function, partition, "the replay's offsets do not show yet; status may read the partition as replayed");
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The offset of the first record of `topic`'s `partition` stamped at or after
    /// `time_ms` (Kafka's offsets-for-times); `end` when none is.
    pub(super) fn offset_for_time(
        &self,
        topic: &str,
        partition: u32,
        time_ms: i64,
        end: u64,
    ) -> Result<u64> {
        let mut query = TopicPartitionList::new();
        query.add_partition_offset(topic, partition as i32, Offset::Offset(time_ms))?;
        let found = self
            .consumer
            .offsets_for_times(query, REQUEST_TIMEOUT)
            .with_context(|| format!("finding the offset of {time_ms} in {topic}/{partition}"))?;
        Ok(
            match found
                .find_partition(topic, partition as i32)
                .and_then(|e| e.offset().to_raw())
            {
                Some(offset) if offset >= 0 => offset as u64,
                _ => end,
            },
        )
    }

    /// Where `from` moves each input of `partition`: (topic, offset), the inputs it does
    /// not name left out.
    fn replay_targets(&self, partition: u32, from: &ReplayFrom) -> Result<Vec<(String, u64)>> {
        let mut targets = Vec::new();
        for topic in &self.inputs {
            let (low, high) = self.cluster.watermarks(topic, partition)?;
            let at_time = |time_ms| self.offset_for_time(topic, partition, time_ms, high);
            let Some(target) = from.target(topic, partition, (low, high), at_time)? else {
                continue;
            };
            targets.push((topic.clone(), target));
        }
        Ok(targets)
    }
}
