//! Deployments and components on Kafka: two compacted internal topics every replica reads
//! from the beginning, so each one, including one started later, converges on the same
//! set. Components are also kept in the replica's local store once they arrive.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::BaseRecord;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::cluster::{KafkaCluster, MAX_MESSAGE_BYTES};
use super::records::{BaseProducer, Deliveries, flush};
use crate::log::embedded::EmbeddedLog;
use crate::model::deployment::History;
use crate::registry::{Registry, RegistryStore};

/// Deployment histories, keyed by function name.
pub const DEPLOYMENTS_TOPIC: &str = "_streamfn_deployments";
/// Components, keyed by sha256.
pub const ARTIFACTS_TOPIC: &str = "_streamfn_artifacts";

/// The registry's topics, and the reader that follows them.
pub struct KafkaRegistryStore {
    cluster: Arc<KafkaCluster>,
    local: Arc<EmbeddedLog>,
    producer: BaseProducer,
    stop: Arc<AtomicBool>,
    watcher: Mutex<Option<JoinHandle<()>>>,
}

impl KafkaRegistryStore {
    /// Creates the topics when missing.
    pub fn open(
        cluster: Arc<KafkaCluster>,
        local: Arc<EmbeddedLog>,
    ) -> Result<Arc<KafkaRegistryStore>> {
        let max = MAX_MESSAGE_BYTES.to_string();
        cluster.ensure_topic(DEPLOYMENTS_TOPIC, 1, &[("cleanup.policy", "compact")])?;
        cluster.ensure_topic(
            ARTIFACTS_TOPIC,
            1,
            &[
                ("cleanup.policy", "compact"),
                ("max.message.bytes", max.as_str()),
            ],
        )?;
        let producer: BaseProducer = cluster
            .options
            .config(&[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "0"),
                ("message.max.bytes", max.as_str()),
            ])
            .create_with_context(Deliveries::default())
            .context("configuring the registry producer")?;
        Ok(Arc::new(KafkaRegistryStore {
            cluster,
            local,
            producer,
            stop: Arc::new(AtomicBool::new(false)),
            watcher: Mutex::new(None),
        }))
    }

    fn reader(&self) -> Result<BaseConsumer> {
        let max = MAX_MESSAGE_BYTES.to_string();
        let consumer: BaseConsumer = self
            .cluster
            .options
            .config(&[
                ("enable.auto.commit", "false"),
                ("group.id", "streamfn-registry"),
                ("fetch.message.max.bytes", max.as_str()),
                (
                    "receive.message.max.bytes",
                    &(MAX_MESSAGE_BYTES + 1024 * 1024).to_string(),
                ),
            ])
            .create()
            .context("configuring the registry reader")?;
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(DEPLOYMENTS_TOPIC, 0, Offset::Beginning)?;
        list.add_partition_offset(ARTIFACTS_TOPIC, 0, Offset::Beginning)?;
        consumer
            .assign(&list)
            .context("reading the registry topics")?;
        Ok(consumer)
    }

    /// Applies one record of either topic: a component is kept in the local store, a
    /// deployment history handed to `deployment`.
    fn take(
        local: &EmbeddedLog,
        message: &rdkafka::message::BorrowedMessage<'_>,
        mut deployment: impl FnMut(&str, History),
    ) {
        let Some(key) = message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
        else {
            return;
        };
        let Some(payload) = message.payload() else {
            return;
        };
        if message.topic() == ARTIFACTS_TOPIC {
            if let Err(err) = local.put_artifact(&key, payload) {
                tracing::warn!("cannot keep component {key}: {err:#}");
            }
            return;
        }
        match serde_json::from_slice::<History>(payload) {
            Ok(history) => deployment(&key, history),
            Err(err) => tracing::warn!("ignoring unreadable deployment {key}: {err}"),
        }
    }

    fn send(&self, topic: &str, key: &str, value: &[u8]) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self
                .producer
                .send(BaseRecord::to(topic).key(key).payload(value))
            {
                Ok(()) => break,
                Err((err, _)) if Instant::now() < deadline => {
                    tracing::debug!("registry producer busy: {err}");
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((err, _)) => bail!("cannot write to {topic}: {err}"),
            }
        }
        flush(&self.producer, Duration::from_secs(30))
            .with_context(|| format!("cannot write to {topic}"))
    }

    /// Stops following the topics.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = thread.join();
        }
    }
}

impl RegistryStore for KafkaRegistryStore {
    fn load(&self) -> Result<Vec<(String, History)>> {
        let consumer = self.reader()?;
        let mut histories = std::collections::BTreeMap::new();
        let mut remaining = std::collections::BTreeMap::new();
        for topic in [DEPLOYMENTS_TOPIC, ARTIFACTS_TOPIC] {
            let (_, end) = self.cluster.watermarks(topic, 0)?;
            if end > 0 {
                remaining.insert(topic, end);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while !remaining.is_empty() {
            if Instant::now() > deadline {
                bail!("timed out reading the registry topics");
            }
            let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = message.context("reading the registry")?;
            if remaining
                .get(message.topic())
                .is_some_and(|end| message.offset() as u64 + 1 >= *end)
            {
                remaining.remove(message.topic());
            }
            Self::take(&self.local, &message, |name, history| {
                histories.insert(name.to_owned(), history);
            });
        }
        Ok(histories.into_iter().collect())
    }

    fn save(&self, name: &str, history: &History) -> Result<()> {
        self.send(DEPLOYMENTS_TOPIC, name, &serde_json::to_vec(history)?)
    }

    fn put_artifact(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        self.local.put_artifact(sha256, bytes)?;
        self.send(ARTIFACTS_TOPIC, sha256, bytes)
    }

    fn artifact(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        self.local.artifact(sha256)
    }

    /// Follows the registry topics from now on, handing other replicas' changes to
    /// `registry`.
    fn follow(&self, registry: Weak<Registry>) -> Result<()> {
        let consumer = self.reader()?;
        let local = self.local.clone();
        let stop = self.stop.clone();
        let thread = std::thread::Builder::new()
            .name("registry".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
                        continue;
                    };
                    let Some(registry) = registry.upgrade() else {
                        return;
                    };
                    Self::take(&local, &message, |name, history| {
                        registry.apply(name, history)
                    });
                }
            })
            .context("starting the registry reader")?;
        *self.watcher.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
        Ok(())
    }
}
