//! Records to and from Kafka: a consumed message as a [`Record`], and sending a record
//! with its headers and timestamp, waiting out a full producer queue.

use std::time::Duration;

use anyhow::{Result, bail};
use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::cluster::REQUEST_TIMEOUT;
use crate::model::record::Record;

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
pub fn send_record(
    producer: &BaseProducer,
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

/// Waits until everything `producer` sent is acknowledged. rdkafka's own `flush` sleeps
/// up to 100 ms between checks, which would be most of a commit's time.
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
    Ok(())
}
