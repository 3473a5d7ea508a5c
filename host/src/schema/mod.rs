//! Record values in the formats of a schema registry: Avro, JSON Schema and Protobuf
//! inputs decoded to the JSON a function reads, with the writer schema's id and subject
//! in headers, and the JSON a function emits encoded with its output's schema (the one it
//! was deployed with, else the subject's latest); plain JSON checked both ways. A value
//! that does not decode is the record's fault and becomes a dead letter; one that does
//! not encode is the event's; a registry that cannot be reached is nobody's, and the
//! batch waits for it.

pub mod avro;
pub mod json_schema;
pub mod protobuf;
pub mod registry;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use serde_json::Value;

use self::avro::AvroSchema;
use self::json_schema::JsonSchema;
use self::protobuf::ProtoSchema;
use self::registry::{Lookup, Registered, SchemaRegistry};
use crate::model::format::Format;
use crate::model::record::Record;

/// A schema of any type the registry holds, parsed.
#[derive(Debug)]
pub enum Schema {
    /// An Avro schema.
    Avro(AvroSchema),
    /// A JSON Schema.
    Json(JsonSchema),
    /// A Protobuf schema.
    Protobuf(ProtoSchema),
}

impl Schema {
    /// Parses `text`, a schema of the registry's type `kind` (AVRO, JSON or PROTOBUF).
    pub fn parse(kind: &str, text: &str) -> Result<Schema> {
        Ok(match kind {
            "AVRO" => Schema::Avro(AvroSchema::parse(text)?),
            "JSON" => Schema::Json(JsonSchema::parse(text)?),
            "PROTOBUF" => Schema::Protobuf(ProtoSchema::parse(text)?),
            other => bail!("schemas of type {other} are not read"),
        })
    }

    /// The format of values this schema writes.
    pub fn format(&self) -> Format {
        match self {
            Schema::Avro(_) => Format::Avro,
            Schema::Json(_) => Format::JsonSchema,
            Schema::Protobuf(_) => Format::Protobuf,
        }
    }

    /// Why values of a topic of `format` cannot be read or written with this schema.
    fn fits(&self, format: Format) -> Result<(), String> {
        if self.format() == format {
            return Ok(());
        }
        Err(format!(
            "it is a {} schema, and the topic's format is {format}",
            self.format()
        ))
    }

    /// The JSON of a framed value's `payload`.
    pub fn decode(&self, payload: &[u8]) -> Result<Value, String> {
        match self {
            Schema::Avro(avro) => avro.decode(payload).map_err(|e| e.to_string()),
            Schema::Json(schema) => {
                let value = serde_json::from_slice(payload)
                    .map_err(|e| format!("the value is not JSON: {e}"))?;
                schema.check(&value)?;
                Ok(value)
            }
            Schema::Protobuf(proto) => proto.decode(payload),
        }
    }

    /// The payload to frame for `json`, which was written as `text`.
    pub fn encode(&self, json: &Value, text: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            Schema::Avro(avro) => avro.encode(json).map_err(|e| e.to_string()),
            Schema::Json(schema) => schema.check(json).map(|()| text.to_vec()),
            Schema::Protobuf(proto) => proto.encode(json),
        }
    }
}

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
    /// The format of the topics `formats` does not name.
    others: Format,
    registry: Option<Arc<SchemaRegistry>>,
}

impl Decoder {
    /// A decoder of `formats` (by topic; `others` for the topics not named, those an
    /// input pattern matches), with `registry` for those that need one.
    pub fn new(
        formats: BTreeMap<String, Format>,
        others: Format,
        registry: Option<Arc<SchemaRegistry>>,
    ) -> Self {
        Decoder {
            formats,
            others,
            registry,
        }
    }

    fn format(&self, topic: &str) -> Format {
        self.formats.get(topic).copied().unwrap_or(self.others)
    }

    /// Whether values of `topic` change on their way to the function.
    pub fn transforms(&self, topic: &str) -> bool {
        self.format(topic).needs_registry()
    }

    /// Decodes `record` of `topic` in place. The inner error says why the record does not
    /// decode (a framed one is then marked with its schema id, for its dead letter); the
    /// outer one that decoding could not be tried (the registry is away).
    pub fn decode(&self, topic: &str, record: &mut Record) -> Result<Result<(), String>> {
        let format = self.format(topic);
        let Some(value) = &record.value else {
            // A tombstone stays one, whatever the format.
            return Ok(Ok(()));
        };
        match format {
            Format::Raw => return Ok(Ok(())),
            Format::Json => {
                return Ok(not_json_because(value)
                    .map_or(Ok(()), |e| Err(format!("the value is not JSON: {e}"))));
            }
            Format::Avro | Format::JsonSchema | Format::Protobuf => {}
        }
        let registry = self.registry.as_ref().ok_or_else(|| {
            anyhow!("topic {topic} is {format}, and this replica has no schema registry")
        })?;
        let (id, payload) = match wire::unframe(value) {
            Ok(framed) => framed,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let decoded = match registry.schema(id) {
            Ok(registered) => registered
                .schema
                .fits(format)
                .and_then(|()| registered.schema.decode(payload))
                .map_err(|e| format!("schema {id}: {e}")),
            Err(Lookup::Refused(why)) => Err(why),
            Err(Lookup::Unreachable(e)) => return Err(e),
        };
        let decoded = decoded.map(|json| match format {
            // The JSON as its producer wrote it.
            Format::JsonSchema => payload.to_vec(),
            _ => json.to_string().into_bytes(),
        });
        mark(record, headers::SCHEMA_ID, id.to_string());
        let json = match decoded {
            Ok(json) => json,
            Err(why) => return Ok(Err(why)),
        };
        record.value = Some(json);
        mark(
            record,
            headers::SCHEMA_SUBJECT,
            registry.subject(id, topic)?,
        );
        Ok(Ok(()))
    }
}

/// Why `value` is not JSON; nothing when it is. The value is checked, not built.
fn not_json_because(value: &[u8]) -> Option<serde_json::Error> {
    serde_json::from_slice::<serde::de::IgnoredAny>(value).err()
}

/// Encodes the values a deployment emits by its outputs' formats, with the schemas it
/// was deployed with where it names one.
#[derive(Clone, Default)]
pub struct Encoder {
    formats: BTreeMap<String, Format>,
    /// Schemas (their text) the outputs are written with, by topic.
    schemas: BTreeMap<String, String>,
    registry: Option<Arc<SchemaRegistry>>,
}

impl Encoder {
    /// An encoder of `formats` (by topic; raw for the others), writing an output of
    /// `schemas` with its schema there and the others with their subject's latest, with
    /// `registry` for those that need one.
    pub fn new(
        formats: BTreeMap<String, Format>,
        schemas: BTreeMap<String, String>,
        registry: Option<Arc<SchemaRegistry>>,
    ) -> Self {
        Encoder {
            formats,
            schemas,
            registry,
        }
    }

    /// The schema an output of `topic` in `format` is written with.
    fn schema(
        &self,
        registry: &SchemaRegistry,
        topic: &str,
        format: Format,
    ) -> Result<Arc<Registered>, Lookup> {
        let subject = value_subject(topic);
        match self.schemas.get(topic) {
            Some(text) => registry.pinned(&subject, format, text),
            None => registry.known_latest(&subject),
        }
    }

    /// Brings the outputs' schemas up to date, before a batch, so that a call never
    /// waits for the registry. A subject the registry has no schema for is left to fail
    /// the events that emit to it.
    pub fn prepare(&self) -> Result<()> {
        let Some(registry) = &self.registry else {
            return Ok(());
        };
        for (topic, format) in &self.formats {
            if !format.needs_registry() {
                continue;
            }
            let subject = value_subject(topic);
            let found = match self.schemas.get(topic) {
                Some(text) => registry.pinned(&subject, *format, text),
                None => registry.latest(&subject),
            };
            if let Err(Lookup::Unreachable(e)) = found {
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
        let not_json = |why: String| format!("emitted to {topic} a value that {why}");
        match format {
            Format::Raw => return Ok(Ok(())),
            Format::Json => {
                return Ok(not_json_because(value)
                    .map_or(Ok(()), |e| Err(not_json(format!("is not JSON: {e}")))));
            }
            Format::Avro | Format::JsonSchema | Format::Protobuf => {}
        }
        let json: Value = match serde_json::from_slice(value) {
            Ok(json) => json,
            Err(e) => return Ok(Err(not_json(format!("is not JSON: {e}")))),
        };
        let registry = self.registry.as_ref().ok_or_else(|| {
            anyhow!("output {topic} is {format}, and this replica has no schema registry")
        })?;
        let subject = value_subject(topic);
        let registered = match self.schema(registry, topic, format) {
            Ok(registered) => registered,
            Err(Lookup::Refused(why)) => return Ok(Err(format!("subject {subject}: {why}"))),
            Err(Lookup::Unreachable(e)) => return Err(e),
        };
        let id = registered.id;
        let encoded = registered
            .schema
            .fits(format)
            .and_then(|()| registered.schema.encode(&json, value));
        match encoded {
            Ok(payload) => {
                record.value = Some(wire::frame(id, &payload));
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(not_json(format!(
                "does not fit schema {id} of {subject}: {e}"
            )))),
        }
    }
}
