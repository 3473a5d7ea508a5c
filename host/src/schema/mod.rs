//! Record values in the formats of a schema registry: Avro inputs decoded to the JSON a
//! function reads, with the writer schema's id and subject in headers, and the JSON a
//! function emits encoded with its output subject's latest schema; JSON checked both
//! ways. A value that does not decode is the record's fault and becomes a dead letter;
//! one that does not encode is the event's; a registry that cannot be reached is
//! nobody's, and the batch waits for it.

pub mod avro;
pub mod registry;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, anyhow};

use self::registry::{Lookup, SchemaRegistry};
use crate::model::format::Format;
use crate::model::record::Record;

/// Headers a decoded event carries for the function.
pub mod headers {
    /// The id of the schema that wrote the value.
    pub const SCHEMA_ID: &str = "streamfn.schema.id";
    /// The subject that schema is registered under.
    pub const SCHEMA_SUBJECT: &str = "streamfn.schema.subject";
}

/// The subject of `topic`'s values under the registry's default naming.
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// Marks `record` with the host's `name` header, dropping a producer's of that name.
fn mark(record: &mut Record, name: &str, value: String) {
    record.headers.retain(|(n, _)| n != name);
    record.headers.push((name.to_owned(), value.into_bytes()));
}

/// Decodes the values of a deployment's inputs by the formats it was deployed with.
#[derive(Clone, Default)]
pub struct Decoder {
    formats: BTreeMap<String, Format>,
    registry: Option<Arc<SchemaRegistry>>,
}

impl Decoder {
    /// A decoder of `formats` (by topic; raw for the others), with `registry` for those
    /// that need one.
    pub fn new(formats: BTreeMap<String, Format>, registry: Option<Arc<SchemaRegistry>>) -> Self {
        Decoder { formats, registry }
    }

    /// Whether values of `topic` change on their way to the function.
    pub fn transforms(&self, topic: &str) -> bool {
        matches!(self.formats.get(topic), Some(Format::Avro))
    }

    /// Decodes `record` of `topic` in place. The inner error says why the record does not
    /// decode (a framed one is then marked with its schema id, for its dead letter); the
    /// outer one that decoding could not be tried (the registry is away).
    pub fn decode(&self, topic: &str, record: &mut Record) -> Result<Result<(), String>> {
        let format = self.formats.get(topic).copied().unwrap_or_default();
        let Some(value) = &record.value else {
            // A tombstone stays one, whatever the format.
            return Ok(Ok(()));
        };
        match format {
            Format::Raw => Ok(Ok(())),
            Format::Json => Ok(serde_json::from_slice::<serde::de::IgnoredAny>(value)
                .map(drop)
                .map_err(|e| format!("the value is not JSON: {e}"))),
            Format::Avro => {
                let registry = self.registry.as_ref().ok_or_else(|| {
                    anyhow!("topic {topic} is Avro, and this replica has no schema registry")
                })?;
                let (id, payload) = match wire::unframe(value) {
                    Ok(framed) => framed,
                    Err(e) => return Ok(Err(e.to_string())),
                };
                let decoded = match registry.schema(id) {
                    Ok(schema) => schema
                        .avro
                        .decode(payload)
                        .map_err(|e| format!("schema {id}: {e}")),
                    Err(Lookup::Refused(why)) => Err(why),
                    Err(Lookup::Unreachable(e)) => return Err(e),
                };
                mark(record, headers::SCHEMA_ID, id.to_string());
                let json = match decoded {
                    Ok(json) => json,
                    Err(why) => return Ok(Err(why)),
                };
                record.value = Some(json.to_string().into_bytes());
                mark(
                    record,
                    headers::SCHEMA_SUBJECT,
                    registry.subject(id, topic)?,
                );
                Ok(Ok(()))
            }
        }
    }
}

/// Encodes the values a deployment emits by its outputs' formats.
#[derive(Clone, Default)]
pub struct Encoder {
    formats: BTreeMap<String, Format>,
    registry: Option<Arc<SchemaRegistry>>,
}

impl Encoder {
    /// An encoder of `formats` (by topic; raw for the others), with `registry` for those
    /// that need one.
    pub fn new(formats: BTreeMap<String, Format>, registry: Option<Arc<SchemaRegistry>>) -> Self {
        Encoder { formats, registry }
    }

    /// Brings the latest schemas of the Avro outputs' subjects up to date, before a
    /// batch, so that a call never waits for the registry. A subject the registry has no
    /// schema for is left to fail the events that emit to it.
    pub fn prepare(&self) -> Result<()> {
        let Some(registry) = &self.registry else {
            return Ok(());
        };
        for (topic, format) in &self.formats {
            if *format == Format::Avro
                && let Err(Lookup::Unreachable(e)) = registry.latest(&value_subject(topic))
            {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Encodes the value of `record`, emitted to `topic`, in place. The inner error says
    /// why the value does not fit the topic's format; the outer one that encoding could
    /// not be tried (the registry is away).
    pub fn encode(&self, topic: &str, record: &mut Record) -> Result<Result<(), String>> {
        let format = self.formats.get(topic).copied().unwrap_or_default();
        let Some(value) = &record.value else {
            return Ok(Ok(()));
        };
        if format == Format::Raw {
            return Ok(Ok(()));
        }
        let not_json =
            |e: serde_json::Error| format!("emitted to {topic} a value that is not JSON: {e}");
        if format == Format::Json {
            return Ok(serde_json::from_slice::<serde::de::IgnoredAny>(value)
                .map(drop)
                .map_err(not_json));
        }
        let json: serde_json::Value = match serde_json::from_slice(value) {
            Ok(json) => json,
            Err(e) => return Ok(Err(not_json(e))),
        };
        let registry = self.registry.as_ref().ok_or_else(|| {
            anyhow!("output {topic} is Avro, and this replica has no schema registry")
        })?;
        let subject = value_subject(topic);
        let schema = match registry.known_latest(&subject) {
            Ok(schema) => schema,
            Err(Lookup::Refused(why)) => return Ok(Err(format!("subject {subject}: {why}"))),
            Err(Lookup::Unreachable(e)) => return Err(e),
        };
        match schema.avro.encode(&json) {
            Ok(datum) => {
                record.value = Some(wire::frame(schema.id, &datum));
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(format!(
                "emitted to {topic} a value that does not fit schema {} of {subject}: {e}",
                schema.id
            ))),
        }
    }
}
