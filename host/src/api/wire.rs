//! The JSON shapes of the admin API, shared by the server and by `fnctl`.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

pub use crate::log::TopicInfo;
use crate::model::deployment::DeploySpec;
use crate::model::record::Record;

/// An error answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong and what to do.
    pub error: String,
}

/// A request to create a topic.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
    /// Delete records older than this many milliseconds.
    #[serde(default)]
    pub retention_ms: Option<u64>,
    /// Keep about this many bytes per partition.
    #[serde(default)]
    pub retention_bytes: Option<u64>,
    /// Succeed when the topic already exists.
    #[serde(default)]
    pub if_not_exists: bool,
}

/// A record to produce. Key and value are UTF-8 text, or base64 in the `_base64` fields.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRecord {
    /// Key as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Key as base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_base64: Option<String>,
    /// Value as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Value as base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// Headers as text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// Timestamp; the time of producing when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
    /// Partition; from the key when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
}

impl ProduceRecord {
    /// The record to append, stamped with `now_ms` when it has no timestamp.
    pub fn into_record(self, now_ms: i64) -> Result<(Option<u32>, Record), String> {
        let decode = |text: Option<String>, b64: Option<String>, what: &str| match (text, b64) {
            (Some(_), Some(_)) => Err(format!("give {what} or {what}_base64, not both")),
            (Some(text), None) => Ok(Some(text.into_bytes())),
            (None, Some(b64)) => BASE64
                .decode(b64)
                .map(Some)
                .map_err(|e| format!("{what}_base64 is not base64: {e}")),
            (None, None) => Ok(None),
        };
        let record = Record {
            timestamp_ms: self.timestamp_ms.unwrap_or(now_ms),
            key: decode(self.key, self.key_base64, "key")?,
            value: decode(self.value, self.value_base64, "value")?,
            headers: self
                .headers
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect(),
        };
        Ok((self.partition, record))
    }
}

/// Records to produce.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    /// The records, appended in one transaction.
    pub records: Vec<ProduceRecord>,
    /// Who sends them, and which of its requests this is: a request sent again after a
    /// lost answer is then written once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<ProducerSequence>,
}

/// A producer's id and the number of one of its requests: 0 for its first, then one more
/// for each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerSequence {
    /// The producer's id, unique to it.
    pub id: String,
    /// The request's number.
    pub sequence: u64,
}

/// Where produced records went.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProduceResponse {
    /// (partition, offset) per record.
    pub placed: Vec<(u32, u64)>,
}

/// A consumed record, as `fnctl consume` prints it: key and value as text, or as base64
/// with `encoding` set when they are not UTF-8.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumedRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
    /// Timestamp in milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// Key.
    pub key: Option<String>,
    /// Value.
    pub value: Option<String>,
    /// Headers (the last of a repeated name wins).
    pub headers: BTreeMap<String, String>,
    /// `base64` when key or value were not text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

impl ConsumedRecord {
    /// The printable form of a stored record.
    pub fn new(topic: &str, partition: u32, offset: u64, record: Record) -> Self {
        let text = |b: &Option<Vec<u8>>| b.as_ref().is_none_or(|b| std::str::from_utf8(b).is_ok());
        let binary = !(text(&record.key) && text(&record.value));
        let render = |b: Option<Vec<u8>>| {
            b.map(|b| {
                if binary {
                    BASE64.encode(b)
                } else {
                    String::from_utf8_lossy(&b).into_owned()
                }
            })
        };
        ConsumedRecord {
            topic: topic.to_owned(),
            partition,
            offset,
            timestamp: record.timestamp_ms,
            key: render(record.key),
            value: render(record.value),
            headers: record
                .headers
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect(),
            encoding: binary.then(|| "base64".to_owned()),
        }
    }
}

impl ConsumedRecord {
    /// The stored record this prints.
    pub fn into_record(self) -> Result<Record, String> {
        let bytes = |text: Option<String>| -> Result<Option<Vec<u8>>, String> {
            match (text, self.encoding.as_deref()) {
                (None, _) => Ok(None),
                (Some(text), Some("base64")) => BASE64
                    .decode(text)
                    .map(Some)
                    .map_err(|e| format!("not base64: {e}")),
                (Some(text), _) => Ok(Some(text.into_bytes())),
            }
        };
        Ok(Record {
            timestamp_ms: self.timestamp,
            key: bytes(self.key)?,
            value: bytes(self.value)?,
            headers: self
                .headers
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect(),
        })
    }
}

/// A page of consumed records.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConsumeResponse {
    /// The records.
    pub records: Vec<ConsumedRecord>,
    /// Offset to ask for next.
    pub next: u64,
}

/// The answer to a component upload.
#[derive(Debug, Serialize, Deserialize)]
pub struct UploadResponse {
    /// sha256 of the component.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_records_print_as_base64() {
        let record = Record {
            timestamp_ms: 1,
            key: Some(b"k".to_vec()),
            value: Some(vec![0xff, 0x00]),
            headers: vec![],
        };
        let printed = ConsumedRecord::new("t", 0, 7, record);
        assert_eq!(printed.encoding.as_deref(), Some("base64"));
        assert_eq!(printed.value.as_deref(), Some("/wA="));
        assert_eq!(printed.key.as_deref(), Some("aw=="));
    }

    #[test]
    fn produce_records_take_text_or_base64_not_both() {
        let both = ProduceRecord {
            value: Some("a".into()),
            value_base64: Some("YQ==".into()),
            ..ProduceRecord::default()
        };
        assert!(both.into_record(0).is_err());
        let b64 = ProduceRecord {
            value_base64: Some("YQ==".into()),
            ..ProduceRecord::default()
        };
        let (_, record) = b64.into_record(42).expect("valid");
        assert_eq!(record.value.as_deref(), Some(&b"a"[..]));
        assert_eq!(record.timestamp_ms, 42);
    }
}

/// A canary: a deploy of a new version on a share of the function's partitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryRequest {
    /// The version to deploy.
    pub spec: DeploySpec,
    /// The share of partitions it runs, in percent.
    pub percent: u8,
    /// Failed events per event above which it ends by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failure_rate: Option<f64>,
}

/// A rollback: the version to deploy again, the one before the running one when none.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version.
    #[serde(default)]
    pub to: Option<u32>,
}
