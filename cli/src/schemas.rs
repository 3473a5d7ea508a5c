//! The schema registry as `fnctl` uses it beside a replica: which format a schema file
//! is, values written from JSON with a schema registered under the topic's subject (as a
//! Kafka serializer writes them), and framed values read back as JSON.

use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use serde_json::Value;
use streamfn_host::model::format::Format;
use streamfn_host::model::record::Record;
use streamfn_host::schema::registry::{Lookup, SchemaRegistry};
use streamfn_host::schema::{Schema, headers, key_of, value_subject, wire};

use crate::commands::parse_key_value;

/// How to reach a schema registry.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// A Confluent-compatible schema registry (Confluent's, Apicurio's /apis/ccompat/v7,
    /// Redpanda's).
    #[arg(long, value_name = "URL", env = "STREAMFN_SCHEMA_REGISTRY")]
    pub schema_registry: Option<String>,
    /// A setting of the schema registry client, as Confluent's clients name it (repeat):
    /// basic.auth.user.info=USER:PASSWORD.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_key_value, requires = "schema_registry")]
    pub schema_registry_option: Vec<(String, String)>,
}

impl RegistryArgs {
    /// A client of the registry, when one was named.
    pub fn client(&self) -> Result<Option<SchemaRegistry>> {
        self.schema_registry
            .as_deref()
            .map(|url| SchemaRegistry::new(url, &self.schema_registry_option))
            .transpose()
    }
}

/// The format of values a schema file writes, by its extension.
pub fn format_of_file(file: &Path) -> Result<Format> {
    let extension = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    Ok(match extension {
        "avsc" => Format::Avro,
        "json" => Format::JsonSchema,
        "proto" => Format::Protobuf,
        _ => bail!(
            "{}: name an .avsc (Avro), .json (JSON Schema) or .proto (Protobuf) schema file",
            file.display()
        ),
    })
}

/// Writes values of a topic with a schema registered under its value subject.
pub struct Writer {
    id: u32,
    schema: Schema,
}

impl Writer {
    /// Registers the schema in `file` under `topic`'s value subject (unless the subject's
    /// compatibility rules refuse it) and writes with it.
    pub fn register(registry: &SchemaRegistry, topic: &str, file: &Path) -> Result<Writer> {
        let format = format_of_file(file)?;
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the schema {}", file.display()))?;
        let kind = format.schema_type().unwrap_or("AVRO");
        let schema =
            Schema::parse(kind, &text).with_context(|| format!("the schema {}", file.display()))?;
        let id = registry.register(&value_subject(topic), format, &text)?;
        Ok(Writer { id, schema })
    }

    /// The framed value of `json`, the text of a JSON value.
    pub fn write(&self, json: &str) -> Result<Vec<u8>, String> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| format!("the line is not JSON: {e}"))?;
        let payload = self.schema.encode(&value, json.as_bytes())?;
        Ok(wire::frame(self.id, &payload))
    }
}

/// The id and JSON of a framed value, or why it is not one of its schema.
fn decode(registry: &SchemaRegistry, framed: &[u8]) -> Result<Result<(u32, Value), String>> {
    let (id, payload) = match wire::unframe(framed) {
        Ok(framed) => framed,
        Err(e) => return Ok(Err(e.to_string())),
    };
    Ok(match registry.schema(id) {
        Ok(registered) => registered
            .schema
            .decode(payload)
            .map(|json| (id, json))
            .map_err(|e| format!("schema {id}: {e}")),
        Err(Lookup::Refused(why)) => Err(why),
        Err(Lookup::Unreachable(e)) => return Err(anyhow!(e)),
    })
}

/// Reads `record`'s framed value in place as the JSON of the schema that wrote it,
/// marking it with the schema's id. A value that is not framed, or not of its schema, is
/// left as it is, marked with why. A framed key is read the same way (a string as its
/// text), and kept as it is when it does not decode.
pub fn read(registry: &SchemaRegistry, record: &mut Record) -> Result<()> {
    if let Some(key) = &record.key
        && let Ok((_, json)) = decode(registry, key)?
    {
        record.key = Some(key_of(&json));
    }
    let Some(value) = &record.value else {
        return Ok(());
    };
    let decoded = decode(registry, value)?;
    match decoded {
        Ok((id, json)) => {
            record.value = Some(json.to_string().into_bytes());
            record
                .headers
                .push((headers::SCHEMA_ID.to_owned(), id.to_string().into_bytes()));
        }
        Err(why) => record
            .headers
            .push(("streamfn.decode.error".to_owned(), why.into_bytes())),
    }
    Ok(())
}
