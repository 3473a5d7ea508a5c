//! A connection to a Kafka cluster: settings (librdkafka properties pass through), topic
//! administration, metadata, watermarks and group offsets.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::denied::{Denied, Resource, explain};

/// How long a metadata or offsets request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest record a replica produces: components of interpreted languages are tens of
/// MiB and travel through the artifacts topic.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How to reach a Kafka cluster.
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    /// Bootstrap servers, `HOST:PORT[,...]`.
    pub brokers: String,
    /// librdkafka properties given by the user (TLS, SASL, compression, batching); they
    /// override Streamfn's own settings.
    pub properties: Vec<(String, String)>,
    /// Whether functions commit with Kafka transactions (the default) or at least once.
    pub exactly_once: bool,
    /// How many other replicas keep a standby copy of each partition's state.
    pub standby_replicas: u32,
}

impl KafkaOptions {
    /// A librdkafka configuration with the brokers, `settings`, then the user's properties.
    pub fn config(&self, settings: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in settings {
            config.set(*key, *value);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

/// Runs a future of the admin client to completion on this thread.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    futures_executor::block_on(future)
}

/// A connection to a Kafka cluster for administration and metadata.
pub struct KafkaCluster {
    /// How it was reached.
    pub options: KafkaOptions,
    admin: AdminClient<DefaultClientContext>,
    metadata: BaseConsumer,
    partition_counts: Mutex<BTreeMap<String, u32>>,
    /// Consumer groups the authorizer refused this replica, and what it said: asking
    /// such a group's offsets would only wait out a timeout.
    denied_groups: Mutex<BTreeMap<String, String>>,
}

impl KafkaCluster {
    /// Connects and checks that the brokers answer.
    pub fn connect(options: KafkaOptions) -> Result<Arc<KafkaCluster>> {
        let admin: AdminClient<DefaultClientContext> = options
            .config(&[])
            .create()
            .context("configuring the Kafka admin client")?;
        let metadata: BaseConsumer = options
            .config(&[])
            .create()
            .context("configuring the Kafka metadata client")?;
        metadata
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(|e| anyhow!("cannot reach Kafka at {}: {e}", options.brokers))?;
        Ok(Arc::new(KafkaCluster {
            options,
            admin,
            metadata,
            partition_counts: Mutex::new(BTreeMap::new()),
            denied_groups: Mutex::new(BTreeMap::new()),
        }))
    }

    /// The partition count of `topic`, or `None` when it does not exist.
    pub fn partitions(&self, topic: &str) -> Result<Option<u32>> {
        if let Some(n) = self
            .partition_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
        {
            return Ok(Some(*n));
        }
        let metadata = self
            .metadata
            .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
            .with_context(|| format!("reading the metadata of topic {topic}"))?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Ok(None);
        };
        if let Some(err) = found.error() {
            let code = RDKafkaErrorCode::from(err);
            if let Some(denied) = explain(code, "DESCRIBE", Resource::Topic(topic)) {
                bail!("{denied}");
            }
            return Ok(None);
        }
        if found.partitions().is_empty() {
            return Ok(None);
        }
        let n = found.partitions().len() as u32;
        self.partition_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_owned(), n);
        Ok(Some(n))
    }

    /// The partition count of `topic`, or an error that says it does not exist.
    pub fn require_partitions(&self, topic: &str) -> Result<u32> {
        self.partitions(topic)?.with_context(|| {
            format!(
                "topic {topic:?} does not exist on Kafka at {}; create it with `fnctl topics create {topic} --partitions N --brokers {}`",
                self.options.brokers, self.options.brokers
            )
        })
    }

    /// Every topic and its partition count, internal ones left out.
    pub fn topics(&self) -> Result<Vec<(String, u32)>> {
        let metadata = self
            .metadata
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .context("reading the cluster's metadata")?;
        let mut topics: Vec<(String, u32)> = metadata
            .topics()
            .iter()
            .filter(|t| !t.name().starts_with("__"))
            .map(|t| (t.name().to_owned(), t.partitions().len() as u32))
            .collect();
        topics.sort();
        Ok(topics)
    }

    /// Creates `name` with `partitions` and topic `configs`. Returns false when it
    /// already existed.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        configs: &[(&str, &str)],
    ) -> Result<bool> {
        let mut topic = NewTopic::new(name, partitions as i32, TopicReplication::Fixed(-1));
        for (key, value) in configs {
            topic = topic.set(key, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let results = block_on(self.admin.create_topics([&topic], &options))
            .with_context(|| format!("creating topic {name}"))?;
        for result in results {
            match result {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => return Ok(false),
                Err((topic, code)) => match explain(code, "CREATE", Resource::Topic(&topic)) {
                    Some(denied) => bail!("cannot create topic {topic}: {denied}"),
                    None => bail!("cannot create topic {topic}: {code}"),
                },
            }
        }
        // Metadata can lag creation; wait until the topic shows.
        let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
        while self.partitions(name)?.is_none() {
            if std::time::Instant::now() > deadline {
                bail!("topic {name} was created but does not show in the metadata");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(true)
    }

    /// Makes sure `name` exists, creating it with `partitions` and `configs` if not.
    pub fn ensure_topic(
        &self,
        name: &str,
        partitions: u32,
        configs: &[(&str, &str)],
    ) -> Result<u32> {
        if let Some(n) = self.partitions(name)? {
            return Ok(n);
        }
        self.create_topic(name, partitions, configs)?;
        self.require_partitions(name)
    }

    /// (low, high) watermarks of a partition.
    pub fn watermarks(&self, topic: &str, partition: u32) -> Result<(u64, u64)> {
        let (low, high) = self
            .metadata
            .fetch_watermarks(topic, partition as i32, REQUEST_TIMEOUT)
            .with_context(|| format!("reading the offsets of {topic}/{partition}"))?;
        Ok((low.max(0) as u64, high.max(0) as u64))
    }

    /// Notes that the authorizer refused this replica `group`, as `denied` says; `None`
    /// once a member of the group got in.
    pub fn set_group_denied(&self, group: &str, denied: Option<&str>) {
        let mut groups = self.denied_groups.lock().unwrap_or_else(|p| p.into_inner());
        match denied {
            Some(denied) => groups.insert(group.to_owned(), denied.to_owned()),
            None => groups.remove(group),
        };
    }

    /// The offsets `group` has committed on `topic`'s partitions.
    pub fn group_offsets(
        &self,
        group: &str,
        topic: &str,
        partitions: u32,
    ) -> Result<Vec<Option<u64>>> {
        let denied = self
            .denied_groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(group)
            .cloned();
        if let Some(denied) = denied {
            return Err(Denied(denied).into());
        }
        let consumer: BaseConsumer = self
            .options
            .config(&[
                ("group.id", group),
                ("enable.auto.commit", "false"),
                // Report what is committed now rather than wait out a transaction that a
                // replica which just died left open.
                ("isolation.level", "read_uncommitted"),
            ])
            .create()
            .context("configuring an offsets reader")?;
        let mut list = TopicPartitionList::new();
        for p in 0..partitions {
            list.add_partition(topic, p as i32);
        }
        let committed = consumer
            .committed_offsets(list, REQUEST_TIMEOUT)
            .with_context(|| format!("reading the offsets of group {group}"))?;
        Ok((0..partitions)
            .map(|p| {
                match committed
                    .find_partition(topic, p as i32)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(o)) if o >= 0 => Some(o as u64),
                    _ => None,
                }
            })
            .collect())
    }
}
