//! How a topic's record values are written: raw bytes, JSON, or a format of a schema
//! registry, framed with the id of the schema that wrote them; and how the registry's
//! subjects of those schemas are named.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The format of a topic's record values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Bytes, handed over as they are.
    #[default]
    Raw,
    /// JSON text; a value that does not parse is a decode error.
    Json,
    /// Avro of a schema in the registry, in the registry's framing (magic byte 0, the
    /// schema id in four bytes, the datum); handed over as JSON.
    Avro,
    /// JSON checked against a JSON Schema in the registry, in the registry's framing.
    JsonSchema,
    /// Protobuf of a schema in the registry, in the registry's framing (with the message
    /// indexes after the id); handed over as JSON.
    Protobuf,
}

impl Format {
    /// Every format, in the order help texts list them.
    pub const ALL: [Format; 5] = [
        Format::Avro,
        Format::JsonSchema,
        Format::Protobuf,
        Format::Json,
        Format::Raw,
    ];

    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Json => "json",
            Format::Avro => "avro",
            Format::JsonSchema => "json-schema",
            Format::Protobuf => "protobuf",
        }
    }

    /// The registry's name of the schema type of this format, for those it has.
    pub fn schema_type(self) -> Option<&'static str> {
        match self {
            Format::Raw | Format::Json => None,
            Format::Avro => Some("AVRO"),
            Format::JsonSchema => Some("JSON"),
            Format::Protobuf => Some("PROTOBUF"),
        }
    }

    /// Whether values of this format need a schema registry.
    pub fn needs_registry(self) -> bool {
        self.schema_type().is_some()
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
                format!("unknown format {s:?} (use one of {})", known.join(", "))
            })
    }
}

/// How the subjects of a deployment's output values are named in the schema registry,
/// as Confluent's serializers' subject name strategies name them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectNaming {
    /// `TOPIC-value` (TopicNameStrategy).
    #[default]
    Topic,
    /// The full name of the record the schema writes (RecordNameStrategy).
    Record,
    /// `TOPIC-RECORD` (TopicRecordNameStrategy).
    TopicRecord,
}

impl SubjectNaming {
    /// Whether this is the registry's default naming.
    pub fn is_default(&self) -> bool {
        *self == SubjectNaming::Topic
    }
}

impl fmt::Display for SubjectNaming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubjectNaming::Topic => "topic",
            SubjectNaming::Record => "record",
            SubjectNaming::TopicRecord => "topic-record",
        })
    }
}
