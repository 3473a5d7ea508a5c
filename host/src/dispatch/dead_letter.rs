//! Dead letters: an event or timer that failed for good, and the record it becomes on
//! the dead-letter topic, the original record with headers naming the function, its
//! version, the failure's kind and reason, and where the record came from.

use crate::model::effects::Output;
use crate::model::failure::Failure;
use crate::model::record::Record;

/// Where a dead letter came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An input record.
    Event {
        /// Its topic.
        topic: String,
        /// Its offset.
        offset: u64,
    },
    /// A timer whose handler failed.
    Timer {
        /// The timer key.
        key: Vec<u8>,
        /// Its time.
        at_ms: i64,
    },
}

/// A record that failed, with why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Where it came from.
    pub origin: Origin,
    /// The failed record (for a timer: its key, no value).
    pub record: Record,
    /// What went wrong.
    pub failure: Failure,
}

/// Where a deployment's dead letters go, and who they say failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterTopic {
    /// The dead-letter topic.
    pub topic: String,
    /// The function.
    pub function: String,
    /// Its version.
    pub version: u32,
}

/// Headers every dead letter carries.
pub mod headers {
    /// The function that failed.
    pub const FUNCTION: &str = "streamfn.function";
    /// Its version.
    pub const VERSION: &str = "streamfn.version";
    /// The failure kind (`trap`, `out-of-fuel`, ...).
    pub const KIND: &str = "streamfn.failure.kind";
    /// The failure's reason.
    pub const REASON: &str = "streamfn.failure.reason";
    /// The input partition.
    pub const PARTITION: &str = "streamfn.source.partition";
    /// The input topic of a failed event.
    pub const TOPIC: &str = "streamfn.source.topic";
    /// The offset of a failed event.
    pub const OFFSET: &str = "streamfn.source.offset";
    /// The time of a failed timer.
    pub const TIMER: &str = "streamfn.source.timer";
}

impl DeadLetter {
    /// The record this dead letter of `partition` puts on `to`'s topic.
    pub fn output(&self, to: &DeadLetterTopic, partition: u32) -> Output {
        let mut record = self.record.clone();
        let mut add =
            |name: &str, value: String| record.headers.push((name.to_owned(), value.into_bytes()));
        add(headers::FUNCTION, to.function.clone());
        add(headers::VERSION, to.version.to_string());
        add(headers::KIND, self.failure.kind.as_str().to_owned());
        add(headers::REASON, self.failure.reason.clone());
        add(headers::PARTITION, partition.to_string());
        match &self.origin {
            Origin::Event { topic, offset } => {
                add(headers::TOPIC, topic.clone());
                add(headers::OFFSET, offset.to_string());
            }
            Origin::Timer { at_ms, .. } => add(headers::TIMER, at_ms.to_string()),
        }
        Output {
            topic: to.topic.clone(),
            fallback_partition: partition,
            record,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::failure::FailureKind;

    fn topic() -> DeadLetterTopic {
        DeadLetterTopic {
            topic: "orders-dlq".into(),
            function: "orders".into(),
            version: 3,
        }
    }

    #[test]
    fn an_events_dead_letter_keeps_the_record_and_says_what_failed_where() {
        let dead = DeadLetter {
            origin: Origin::Event {
                topic: "orders".into(),
                offset: 41,
            },
            record: Record {
                timestamp_ms: 7,
                key: Some(b"k".to_vec()),
                value: Some(b"{bad".to_vec()),
                headers: vec![("trace".into(), b"t-1".to_vec())],
            },
            failure: Failure::new(FailureKind::Rejected, "not JSON"),
        };
        let out = dead.output(&topic(), 2);
        assert_eq!(
            (out.topic.as_str(), out.fallback_partition),
            ("orders-dlq", 2)
        );
        let record = &out.record;
        assert_eq!(
            (
                record.timestamp_ms,
                record.key.as_deref(),
                record.value.as_deref()
            ),
            (7, Some(&b"k"[..]), Some(&b"{bad"[..]))
        );
        let header = |name: &str| {
            record
                .header(name)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(
            header("trace").as_deref(),
            Some("t-1"),
            "the original headers stay"
        );
        assert_eq!(header(headers::FUNCTION).as_deref(), Some("orders"));
        assert_eq!(header(headers::VERSION).as_deref(), Some("3"));
        assert_eq!(header(headers::KIND).as_deref(), Some("rejected"));
        assert_eq!(header(headers::REASON).as_deref(), Some("not JSON"));
        assert_eq!(header(headers::PARTITION).as_deref(), Some("2"));
        assert_eq!(header(headers::TOPIC).as_deref(), Some("orders"));
        assert_eq!(header(headers::OFFSET).as_deref(), Some("41"));
        assert_eq!(header(headers::TIMER), None);
    }

    #[test]
    fn a_timers_dead_letter_names_its_time() {
        let dead = DeadLetter {
            origin: Origin::Timer {
                key: b"window".to_vec(),
                at_ms: 300_000,
            },
            record: Record {
                timestamp_ms: 300_000,
                key: Some(b"window".to_vec()),
                value: None,
                headers: Vec::new(),
            },
            failure: Failure::new(FailureKind::Trap, "wasm trap: unreachable"),
        };
        let out = dead.output(&topic(), 0);
        assert_eq!(out.record.header(headers::TIMER), Some(&b"300000"[..]));
        assert_eq!(out.record.header(headers::KIND), Some(&b"trap"[..]));
        assert_eq!(out.record.header(headers::OFFSET), None);
    }
}
