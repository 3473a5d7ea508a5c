//! What `fnctl topics`, `produce` and `consume` do when pointed at Kafka with
//! `--brokers`: plain Kafka clients, with no replica in between.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::cluster::{KafkaCluster, KafkaOptions, REQUEST_TIMEOUT};
use super::records::{BaseProducer, Deliveries, flush, record_of, send_record};
use crate::log::{NewTopic, TopicInfo};
use crate::model::record::Record;

/// Creates a topic; one that exists already is an error unless `if_not_exists`.
pub fn create_topic(
    options: &KafkaOptions,
    request: &NewTopic,
    if_not_exists: bool,
) -> Result<TopicInfo> {
    let cluster = KafkaCluster::connect(options.clone())?;
    let retention_ms = request.retention_ms.map(|v| v.to_string());
    let retention_bytes = request.retention_bytes.map(|v| v.to_string());
    let mut configs = Vec::new();
    if let Some(v) = &retention_ms {
        configs.push(("retention.ms", v.as_str()));
    }
    if let Some(v) = &retention_bytes {
        configs.push(("retention.bytes", v.as_str()));
    }
    let created = cluster.create_topic(&request.name, request.partitions, &configs)?;
    if !created && !if_not_exists {
        bail!("topic {:?} already exists", request.name);
    }
    Ok(TopicInfo {
        name: request.name.clone(),
        partitions: cluster.require_partitions(&request.name)?,
        retention_ms: request.retention_ms,
        retention_bytes: request.retention_bytes,
        offsets: Vec::new(),
        records: 0,
        bytes: 0,
    })
}

/// Lists topics with their offsets.
pub fn topics(options: &KafkaOptions) -> Result<Vec<TopicInfo>> {
    let cluster = KafkaCluster::connect(options.clone())?;
    let mut topics = Vec::new();
    for (name, partitions) in cluster.topics()? {
        let offsets = (0..partitions)
            .map(|p| cluster.watermarks(&name, p))
            .collect::<Result<Vec<_>>>()?;
        topics.push(TopicInfo {
            name,
            partitions,
            retention_ms: None,
            retention_bytes: None,
            records: offsets.iter().map(|(low, high)| high - low).sum(),
            bytes: 0,
            offsets,
        });
    }
    Ok(topics)
}

/// A producer of `fnctl produce`.
pub struct Producer(BaseProducer);

/// A producer that places keyed records as the Java client does.
pub fn producer(options: &KafkaOptions) -> Result<Producer> {
    options
        .config(&[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("partitioner", "murmur2_random"),
        ])
        .create_with_context(Deliveries::default())
        .map(Producer)
        .context("configuring the Kafka producer")
}

/// Produces `records` (each to its partition, else by its key) to `topic` and waits
/// until every one is acknowledged.
pub fn produce(
    Producer(producer): &Producer,
    topic: &str,
    records: Vec<(Option<u32>, Record)>,
) -> Result<usize> {
    let count = records.len();
    for (partition, record) in records {
        send_record(producer, topic, partition, &record)?;
    }
    flush(producer, REQUEST_TIMEOUT * 4).with_context(|| format!("producing to {topic}"))?;
    Ok(count)
}

/// Where `consume` starts and when it stops.
pub struct ConsumeOptions {
    /// From the oldest record instead of the end.
    pub from_beginning: bool,
    /// Stop after this many records.
    pub max: usize,
    /// Stop once nothing arrived for this long.
    pub idle: Option<Duration>,
    /// Read only this partition.
    pub partition: Option<u32>,
}

/// Reads `topic` with read_committed isolation, handing each record to `print` with its
/// partition and offset.
pub fn consume(
    options: &KafkaOptions,
    topic: &str,
    how: &ConsumeOptions,
    mut print: impl FnMut(u32, u64, Record) -> Result<()>,
) -> Result<()> {
    let cluster = KafkaCluster::connect(options.clone())?;
    let partitions = cluster.require_partitions(topic)?;
    let consumer: BaseConsumer = options
        .config(&[
            ("group.id", "fnctl-consume"),
            ("enable.auto.commit", "false"),
            ("isolation.level", "read_committed"),
        ])
        .create()
        .context("configuring the Kafka consumer")?;
    let start = if how.from_beginning {
        Offset::Beginning
    } else {
        Offset::End
    };
    let mut list = TopicPartitionList::new();
    for p in (0..partitions).filter(|p| how.partition.is_none_or(|only| only == *p)) {
        list.add_partition_offset(topic, p as i32, start)?;
    }
    if list.count() == 0 {
        bail!("topic {topic} has no partition {:?}", how.partition);
    }
    consumer.assign(&list).context("reading the topic")?;
    let mut printed = 0;
    let mut last = Instant::now();
    while printed < how.max {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                print(
                    message.partition() as u32,
                    message.offset() as u64,
                    record_of(&message),
                )?;
                printed += 1;
                last = Instant::now();
            }
            Some(Err(err)) => bail!("reading {topic}: {err}"),
            None => {
                if how.idle.is_some_and(|idle| last.elapsed() >= idle) {
                    break;
                }
            }
        }
    }
    Ok(())
}
