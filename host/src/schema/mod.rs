//! Record values in the formats of a schema registry: Avro, JSON Schema and Protobuf
//! inputs decoded to the JSON a function reads, with the writer schema's id and subject
//! in headers, and the JSON a function emits encoded with its output's schema (the one it
//! was deployed with, else the subject's latest); keys too, on a topic whose key subject
//! exists; plain JSON checked both ways. A value
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

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;

use self::avro::AvroSchema;
use self::json_schema::JsonSchema;
use self::protobuf::ProtoSchema;
use self::registry::{Lookup, Registered, SchemaRegistry};
use crate::model::format::{Format, SubjectNaming};
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

    /// The name of the record it writes, as the registry's record naming strategies
    /// take it: an Avro schema's full name, a Protobuf schema's first message, a JSON
    /// Schema's title.
    pub fn record_name(&self) -> Option<String> {
        match self {
            Schema::Avro(avro) => avro.name().map(str::to_owned),
            Schema::Json(schema) => schema.title().map(str::to_owned),
            Schema::Protobuf(proto) => proto.name(),
        }
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

/// The subject of `topic`'s values under `naming`, written with the schema `text` of
/// `format` (which the record namings need, for the record's name).
pub fn output_subject(
    naming: SubjectNaming,
    topic: &str,
    format: Format,
    text: Option<&str>,
) -> Result<String> {
    if naming == SubjectNaming::Topic {
        return Ok(value_subject(topic));
    }
    let text = text.with_context(|| {
        format!("subject naming {naming} takes the name of the record: give output {topic} its schema with --output-schema")
    })?;
    let schema = Schema::parse(format.schema_type().unwrap_or("AVRO"), text)?;
    let record = schema.record_name().with_context(|| {
        format!("subject naming {naming} takes the name of the record, and the schema of {topic} names none (an Avro record's name, a Protobuf message, a JSON Schema's title)")
    })?;
    Ok(match naming {
        SubjectNaming::Topic | SubjectNaming::Record => record,
        SubjectNaming::TopicRecord => format!("{topic}-{record}"),
    })
}

/// The subject of `topic`'s keys under the registry's default naming.
pub fn key_subject(topic: &str) -> String {
    format!("{topic}-key")
}

/// The key a function sees for the JSON of a decoded key: a string as its text (a
/// customer id stays `c-1`), anything else as JSON.
pub fn key_of(json: &Value) -> Vec<u8> {
    match json {
        Value::String(text) => text.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    }
}

/// The JSON of a key a function emitted: its JSON when it is JSON, else its text as a
/// string, the inverse of [`key_of`].
fn json_of_key(key: &[u8]) -> Result<Value, String> {
    match serde_json::from_slice(key) {
        Ok(json) => Ok(json),
        Err(_) => std::str::from_utf8(key)
            .map(|text| Value::String(text.to_owned()))
            .map_err(|_| "the key is neither JSON nor text".to_owned()),
    }
}

/// Decodes `record`'s key in place when `topic`'s key subject exists in `registry`: the
/// inner error says why it does not decode, the outer one that the registry is away. A
/// topic without a key subject keeps its keys as they are.
fn decode_key(
    registry: &SchemaRegistry,
    topic: &str,
    record: &mut Record,
) -> Result<Result<(), String>> {
    match registry.latest(&key_subject(topic)) {
        Ok(_) => {}
        Err(Lookup::Refused(_)) => return Ok(Ok(())),
        Err(Lookup::Unreachable(e)) => return Err(e),
    }
    let Some(key) = &record.key else {
        return Ok(Ok(()));
    };
    let (id, payload) = match wire::unframe(key) {
        Ok(framed) => framed,
        Err(e) => return Ok(Err(format!("the key: {e}"))),
    };
    let decoded = match registry.schema(id) {
        Ok(registered) => registered.schema.decode(payload),
        Err(Lookup::Refused(why)) => Err(why),
        Err(Lookup::Unreachable(e)) => return Err(e),
    };
    Ok(match decoded {
        Ok(json) => {
            record.key = Some(key_of(&json));
            Ok(())
        }
        Err(why) => Err(format!("the key, schema {id}: {why}")),
    })
}

/// Encodes the key of `record`, emitted to `topic`, in place with the latest schema of
/// the topic's key subject, when it has one.
fn encode_key(
    registry: &SchemaRegistry,
    topic: &str,
    record: &mut Record,
) -> Result<Result<(), String>> {
    let subject = key_subject(topic);
    let registered = match registry.known_latest(&subject) {
        Ok(registered) => registered,
        Err(Lookup::Refused(_)) => return Ok(Ok(())),
        Err(Lookup::Unreachable(e)) => return Err(e),
    };
    let Some(key) = &record.key else {
        return Ok(Ok(()));
    };
    let encoded = json_of_key(key).and_then(|json| {
        let text = json.to_string();
        registered.schema.encode(&json, text.as_bytes())
    });
    Ok(match encoded {
        Ok(payload) => {
            record.key = Some(wire::frame(registered.id, &payload));
            Ok(())
        }
        Err(why) => Err(format!(
            "emitted to {topic} a key that does not fit schema {} of {subject}: {why}",
            registered.id
        )),
    })
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
        if format == Format::Json
            && let Some(e) = record.value.as_deref().and_then(not_json_because)
        {
            return Ok(Err(format!("the value is not JSON: {e}")));
        }
        if !format.needs_registry() {
            return Ok(Ok(()));
        }
        let registry = self.registry.as_ref().ok_or_else(|| {
            anyhow!("topic {topic} is {format}, and this replica has no schema registry")
        })?;
        if let Err(why) = decode_key(registry, topic, record)? {
            return Ok(Err(why));
        }
        let Some(value) = &record.value else {
            // A tombstone stays one, whatever the format.
            return Ok(Ok(()));
        };
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
    /// The value subject of each output, by topic.
    subjects: BTreeMap<String, String>,
    registry: Option<Arc<SchemaRegistry>>,
}

impl Encoder {
    /// An encoder of `formats` (by topic; raw for the others), writing an output of
    /// `schemas` with its schema there and the others with their subject's latest, the
    /// subjects named by `naming`, with `registry` for those that need one.
    pub fn new(
        formats: BTreeMap<String, Format>,
        schemas: BTreeMap<String, String>,
        naming: SubjectNaming,
        registry: Option<Arc<SchemaRegistry>>,
    ) -> Result<Self> {
        let mut subjects = BTreeMap::new();
        for (topic, format) in formats.iter().filter(|(_, f)| f.needs_registry()) {
            let text = schemas.get(topic).map(String::as_str);
            subjects.insert(topic.clone(), output_subject(naming, topic, *format, text)?);
        }
        Ok(Encoder {
            formats,
            schemas,
            subjects,
            registry,
        })
    }

    /// The value subject of output `topic`.
    fn subject(&self, topic: &str) -> String {
        self.subjects
            .get(topic)
            .cloned()
            .unwrap_or_else(|| value_subject(topic))
    }

    /// The schema an output of `topic` in `format` is written with.
    fn schema(
        &self,
        registry: &SchemaRegistry,
        topic: &str,
        format: Format,
    ) -> Result<Arc<Registered>, Lookup> {
        let subject = self.subject(topic);
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
            let subject = self.subject(topic);
            let found = match self.schemas.get(topic) {
                Some(text) => registry.pinned(&subject, *format, text),
                None => registry.latest(&subject),
            };
            if let Err(Lookup::Unreachable(e)) = found {
                return Err(e);
            }
            if let Err(Lookup::Unreachable(e)) = registry.latest(&key_subject(topic)) {
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
        let not_json = |why: String| format!("emitted to {topic} a value that {why}");
        if format == Format::Json
            && let Some(e) = record.value.as_deref().and_then(not_json_because)
        {
            return Ok(Err(not_json(format!("is not JSON: {e}"))));
        }
        if !format.needs_registry() {
            return Ok(Ok(()));
        }
        let registry = self.registry.as_ref().ok_or_else(|| {
            anyhow!("output {topic} is {format}, and this replica has no schema registry")
        })?;
        if let Some(value) = &record.value {
            let json: Value = match serde_json::from_slice(value) {
                Ok(json) => json,
                Err(e) => return Ok(Err(not_json(format!("is not JSON: {e}")))),
            };
            let subject = self.subject(topic);
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
                Ok(payload) => record.value = Some(wire::frame(id, &payload)),
                Err(e) => {
                    return Ok(Err(not_json(format!(
                        "does not fit schema {id} of {subject}: {e}"
                    ))));
                }
            }
        }
        encode_key(registry, topic, record)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn subjects_are_named_by_topic_record_or_both() {
        let avro = r#"{"type": "record", "name": "Score", "namespace": "shop", "fields": []}"#;
        let proto = "syntax = \"proto3\"; package shop; message Refund { string id = 1; }";
        let json_schema = r#"{"title": "Invoice", "type": "object"}"#;
        let name = |naming, format, text| output_subject(naming, "out", format, text);
        assert_eq!(
            name(SubjectNaming::Topic, Format::Avro, None).expect("topic"),
            "out-value"
        );
        assert_eq!(
            name(SubjectNaming::Record, Format::Avro, Some(avro)).expect("record"),
            "shop.Score"
        );
        assert_eq!(
            name(SubjectNaming::TopicRecord, Format::Protobuf, Some(proto)).expect("both"),
            "out-shop.Refund"
        );
        assert_eq!(
            name(SubjectNaming::Record, Format::JsonSchema, Some(json_schema)).expect("title"),
            "Invoice"
        );
        let err = name(SubjectNaming::Record, Format::Avro, None).expect_err("no schema");
        assert!(err.to_string().contains("--output-schema"), "{err}");
        let err =
            name(SubjectNaming::Record, Format::JsonSchema, Some("{}")).expect_err("no title");
        assert!(err.to_string().contains("title"), "{err}");
    }

    #[test]
    fn a_string_key_is_its_text_and_goes_back_as_a_string() {
        assert_eq!(key_of(&json!("c-1")), b"c-1");
        assert_eq!(key_of(&json!({"id": 7})), br#"{"id":7}"#);
        assert_eq!(json_of_key(b"c-1"), Ok(json!("c-1")));
        assert_eq!(json_of_key(br#"{"id":7}"#), Ok(json!({"id": 7})));
        assert_eq!(json_of_key(b"42"), Ok(json!(42)));
        assert!(json_of_key(&[0xff, 0xfe]).is_err());
    }
}
