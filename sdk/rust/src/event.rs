//! The event a handler receives, and the timer a timer handler receives.

use serde::Deserialize;

use crate::Failure;

/// A record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value.
    pub value: Vec<u8>,
}

/// One record of an input topic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The input topic it came from.
    pub topic: String,
    /// The partition; the state a handler sees belongs to it.
    pub partition: u32,
    /// Offset within the topic partition.
    pub offset: u64,
    /// Producer timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The partition's stream time with this event counted: the largest timestamp seen so
    /// far. Compare a window's end with it to decide, the same way on every replay, whether
    /// the event is late.
    pub stream_time_ms: i64,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// Record headers in producer order.
    pub headers: Vec<Header>,
}

impl Event {
    /// The value parsed as JSON into `T`. A missing or malformed value rejects the event,
    /// which sends it to the dead-letter topic with the parse error as the reason. `T` may
    /// borrow from the event, which spares a copy of each string: `Cow<str>` fields
    /// marked `#[serde(borrow)]` borrow where the JSON needs no unescaping and copy where
    /// it does (a `&str` field rejects a string with escapes).
    pub fn json<'a, T: Deserialize<'a>>(&'a self) -> Result<T, Failure> {
        let value = self
            .value
            .as_deref()
            .ok_or_else(|| Failure::reject("record has no value"))?;
        serde_json::from_slice(value)
            .map_err(|err| Failure::reject(format!("value is not the expected JSON: {err}")))
    }

    /// The key as UTF-8 text, if there is a key and it is text.
    pub fn key_str(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The value as UTF-8 text, if there is a value and it is text.
    pub fn value_str(&self) -> Option<&str> {
        self.value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.key == name)
            .map(|h| h.value.as_slice())
    }

    /// The id of the registry schema that wrote the value, for an input the host decoded
    /// (deployed with `--input-format TOPIC=avro|protobuf|json-schema`).
    pub fn schema_id(&self) -> Option<u32> {
        std::str::from_utf8(self.header(SCHEMA_ID)?)
            .ok()?
            .parse()
            .ok()
    }

    /// The registry subject that schema is registered under, for an input the host
    /// decoded.
    pub fn schema_subject(&self) -> Option<&str> {
        std::str::from_utf8(self.header(SCHEMA_SUBJECT)?).ok()
    }
}

/// The header of a decoded event naming its writer schema's id.
const SCHEMA_ID: &str = "streamfn.schema.id";
/// The header of a decoded event naming its writer schema's subject.
const SCHEMA_SUBJECT: &str = "streamfn.schema.subject";

/// A stream-time timer that came due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// The key it was scheduled under.
    pub key: Vec<u8>,
    /// The stream time it was scheduled for, in milliseconds.
    pub at_ms: i64,
}

impl Timer {
    /// The key as UTF-8 text, if it is text.
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.key).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decoded_event_names_the_schema_that_wrote_it() {
        let header = |key: &str, value: &str| Header {
            key: key.to_owned(),
            value: value.as_bytes().to_vec(),
        };
        let mut event = Event {
            topic: "orders".to_owned(),
            partition: 0,
            offset: 0,
            timestamp_ms: 0,
            stream_time_ms: 0,
            key: None,
            value: Some(b"{}".to_vec()),
            headers: vec![
                header(SCHEMA_ID, "42"),
                header(SCHEMA_SUBJECT, "orders-value"),
            ],
        };
        assert_eq!(event.schema_id(), Some(42));
        assert_eq!(event.schema_subject(), Some("orders-value"));
        event.headers.clear();
        assert_eq!((event.schema_id(), event.schema_subject()), (None, None));
    }

    #[test]
    fn json_borrows_strings_that_need_no_unescaping_and_copies_those_that_do() {
        use std::borrow::Cow;

        #[derive(Deserialize)]
        struct Payment<'a> {
            #[serde(borrow)]
            plain: Cow<'a, str>,
            #[serde(borrow)]
            escaped: Cow<'a, str>,
        }
        let event = Event {
            topic: "payments".to_owned(),
            partition: 0,
            offset: 0,
            timestamp_ms: 0,
            stream_time_ms: 0,
            key: None,
            value: Some(br#"{"plain":"c-1","escaped":"a\"b"}"#.to_vec()),
            headers: Vec::new(),
        };
        let payment: Payment = event.json().expect("parses");
        assert!(matches!(payment.plain, Cow::Borrowed("c-1")));
        assert!(matches!(&payment.escaped, Cow::Owned(s) if s == "a\"b"));
        let missing = Event {
            value: None,
            ..event
        };
        assert!(missing.json::<Payment>().is_err());
    }
}
