//! Records to and from Kafka: a consumed message as a [`Record`], sending a record with
//! its headers and timestamp, waiting out a full producer queue, and waiting until what
//! was sent is acknowledged, or saying which record was not.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Result, bail};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message};

use super::cluster::REQUEST_TIMEOUT;
use super::denied::{Resource, code_of, explain};
use crate::model::record::Record;

/// A producer of the replica and of `fnctl`: one that remembers a delivery that failed.
pub type BaseProducer = rdkafka::producer::BaseProducer<Deliveries>;

/// Keeps the first delivery that failed since the last [`flush`], so that a flush never
/// passes a record Kafka did not take for one it did.
#[derive(Default)]
pub struct Deliveries {
    failed: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let Err((err, message)) = result else {
            return;
        };
        let topic = message.topic();
        let why = code_of(err)
            .and_then(|code| explain(code, "WRITE", Resource::Topic(topic)))
            .unwrap_or_else(|| err.to_string());
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.get_or_insert_with(|| format!("a record to {topic} was not written: {why}"));
    }
}

/// The record of a consumed message.
pub fn record_of(message: &BorrowedMessage<'_>) -> Record {
    let headers = message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Record {
        timestamp_ms: message.timestamp().to_millis().unwrap_or(0),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
    }
}

/// Sends `record` to `topic`, on `partition` or else by the producer's partitioner,
/// waiting while the producer's queue is full.
pub fn send_record<C: ProducerContext<DeliveryOpaque = ()>>(
    producer: &rdkafka::producer::BaseProducer<C>,
    topic: &str,
    partition: Option<u32>,
    record: &Record,
) -> Result<()> {
    let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
    for (key, value) in &record.headers {
        headers = headers.insert(Header {
            key,
            value: Some(value.as_slice()),
        });
    }
    let mut message: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
        .timestamp(record.timestamp_ms)
        .headers(headers);
    if let Some(p) = partition {
        message = message.partition(p as i32);
    }
    if let Some(key) = &record.key {
        message = message.key(key.as_slice());
    }
    if let Some(value) = &record.value {
        message = message.payload(value.as_slice());
    }
    let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
    loop {
        match producer.send(message) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                back,
            )) if std::time::Instant::now() < deadline => {
                message = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((err, _)) => bail!("producing to {topic}: {err}"),
        }
    }
}

/// Waits until everything `producer` sent is acknowledged, and fails when a record was
/// refused. rdkafka's own `flush` sleeps up to 100 ms between checks, which would be
/// most of a commit's time.
pub fn flush(producer: &BaseProducer, timeout: Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    while producer.in_flight_count() > 0 {
        if std::time::Instant::now() > deadline {
            bail!(
                "{} records were not acknowledged within {timeout:?}",
                producer.in_flight_count()
            );
        }
        producer.poll(Duration::from_millis(1));
    }
    let failed = producer
        .context()
        .failed
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    match failed {
        Some(failed) => bail!("{failed}"),
        None => Ok(()),
    }
}
