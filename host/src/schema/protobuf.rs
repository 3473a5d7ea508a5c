//! Protobuf, as a registry holds it for subjects of type PROTOBUF: the `.proto` text is
//! compiled once per schema (Google's well-known types may be imported; imports of other
//! subjects, the registry's references, are not read yet), a value's message is the one
//! its frame's message indexes name, and what a function emits is written as the schema's
//! first message.
//!
//! The JSON of a message is the JSON the same data has in Avro: field names as the
//! `.proto` spells them, every field present (a scalar, list or map its default when
//! unset; a message, `optional` or `oneof` field null), 64-bit integers as numbers,
//! enums by name, `bytes` in base64, NaN and the infinities as strings.
//! Well-known types keep proto3's JSON mapping (a `Timestamp` is an RFC 3339 string, a
//! `Duration` `"1.5s"`). Either name of a field is read when a function emits it, and an
//! unknown field is a misfit.

use anyhow::{Context as _, Result, anyhow, ensure};
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, Kind, MessageDescriptor, SerializeOptions,
};
use protox::Compiler;
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use serde_json::Value;

use super::wire;

/// The name the schema's text is compiled under.
const FILE: &str = "schema.proto";

/// A compiled Protobuf schema.
pub struct ProtoSchema {
    pool: DescriptorPool,
}

impl std::fmt::Debug for ProtoSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtoSchema").finish_non_exhaustive()
    }
}

/// Serves the schema's own text; the well-known types come from the next resolver.
struct Text(String);

impl FileResolver for Text {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == FILE {
            File::from_source(name, &self.0)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

impl ProtoSchema {
    /// Compiles the `.proto` `text`.
    pub fn parse(text: &str) -> Result<ProtoSchema> {
        let mut resolver = ChainFileResolver::new();
        resolver.add(Text(text.to_owned()));
        resolver.add(GoogleFileResolver::new());
        let mut compiler = Compiler::with_file_resolver(resolver);
        compiler
            .open_file(FILE)
            .map_err(|e| anyhow!("the .proto does not compile: {e}"))?;
        let pool = compiler.descriptor_pool();
        let file = pool
            .get_file_by_name(FILE)
            .context("the compiled .proto is missing")?;
        ensure!(file.messages().len() > 0, "the .proto defines no message");
        Ok(ProtoSchema { pool })
    }

    /// The message that `indexes` name: the top-level message at the first, then the
    /// nested one at each next.
    fn message(&self, indexes: &[usize]) -> Result<MessageDescriptor, String> {
        let missing = || format!("the schema has no message at indexes {indexes:?}");
        let file = self.pool.get_file_by_name(FILE).ok_or_else(missing)?;
        let (first, nested) = indexes.split_first().ok_or_else(missing)?;
        let mut message = file.messages().nth(*first).ok_or_else(missing)?;
        for &index in nested {
            let child = message.child_messages().nth(index);
            message = child.ok_or_else(missing)?;
        }
        Ok(message)
    }

    /// The full name of the schema's first message, the one outputs are written as.
    pub fn name(&self) -> Option<String> {
        self.message(&[0]).ok().map(|m| m.full_name().to_owned())
    }

    /// The JSON of a framed value's `payload` (message indexes, then the message).
    pub fn decode(&self, payload: &[u8]) -> Result<Value, String> {
        let (indexes, bytes) = wire::message_indexes(payload).map_err(|e| e.to_string())?;
        let descriptor = self.message(&indexes)?;
        let name = descriptor.full_name().to_owned();
        let message = DynamicMessage::decode(descriptor.clone(), bytes)
            .map_err(|e| format!("the value is not a {name} message: {e}"))?;
        let options = SerializeOptions::new()
            .stringify_64_bit_integers(false)
            .use_proto_field_name(true)
            .skip_default_fields(false);
        let mut json = message
            .serialize_with_options(serde_json::value::Serializer, &options)
            .map_err(|e| format!("the {name} message has no JSON: {e}"))?;
        fill_unset(&mut json, &descriptor);
        Ok(json)
    }

    /// `value` written as the schema's first message, opened with its message indexes.
    pub fn encode(&self, value: &Value) -> Result<Vec<u8>, String> {
        let descriptor = self.message(&[0])?;
        let name = descriptor.full_name().to_owned();
        let mut track = serde_path_to_error::Track::new();
        let message = DynamicMessage::deserialize_with_options(
            descriptor,
            serde_path_to_error::Deserializer::new(value, &mut track),
            &DeserializeOptions::new(),
        )
        .map_err(|e| {
            let path = track.path().to_string();
            let at = if path == "." {
                "$".to_owned()
            } else {
                format!("$.{path}")
            };
            format!("{at}: does not fit message {name}: {e}")
        })?;
        Ok(wire::with_message_indexes(&[0], &message.encode_to_vec()))
    }
}

/// Writes null for each field of `json`, a message of `descriptor`, that the message
/// leaves unset (those with presence, which the JSON mapping leaves out), in nested
/// messages too. Well-known types keep their own JSON.
fn fill_unset(json: &mut Value, descriptor: &MessageDescriptor) {
    if descriptor.full_name().starts_with("google.protobuf.") {
        return;
    }
    let Value::Object(fields) = json else {
        return;
    };
    for field in descriptor.fields() {
        let Some(value) = fields.get_mut(field.name()) else {
            fields.insert(field.name().to_owned(), Value::Null);
            continue;
        };
        let Kind::Message(inner) = field.kind() else {
            continue;
        };
        if field.is_map() {
            let value_kind = inner.map_entry_value_field().kind();
            if let (Kind::Message(entry), Value::Object(entries)) = (value_kind, value) {
                entries.values_mut().for_each(|v| fill_unset(v, &entry));
            }
        } else if let Value::Array(items) = value {
            items.iter_mut().for_each(|v| fill_unset(v, &inner));
        } else {
            fill_unset(value, &inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ORDERS: &str = r#"
        syntax = "proto3";
        package shop;
        import "google/protobuf/timestamp.proto";

        message Order {
          string id = 1;
          int64 quantity = 2;
          Status status = 3;
          repeated Item items = 4;
          bytes digest = 5;
          google.protobuf.Timestamp created_at = 6;
          message Item { string sku = 1; double price = 2; }
        }
        enum Status { NEW = 0; PAID = 1; }
        message Refund { string order_id = 1; }
    "#;

    #[test]
    fn a_message_goes_round_as_the_json_avro_gives_the_same_data() {
        let schema = ProtoSchema::parse(ORDERS).expect("compiles");
        let order = json!({
            "id": "o-1", "quantity": 9_007_199_254_740_993_i64, "status": "PAID",
            "items": [{"sku": "a", "price": 2.5}], "digest": "AQID",
            "created_at": "2026-01-01T00:00:00Z",
        });
        let written = schema.encode(&order).expect("fits");
        assert_eq!(written[0], 0, "the first message's index is the byte 0");
        assert_eq!(schema.decode(&written), Ok(order));
    }

    #[test]
    fn unset_fields_read_as_their_defaults_and_the_indexes_pick_the_message() {
        let schema = ProtoSchema::parse(ORDERS).expect("compiles");
        let written = schema.encode(&json!({"id": "o-2"})).expect("fits");
        let read = schema.decode(&written).expect("decodes");
        assert_eq!(read["quantity"], json!(0));
        assert_eq!(read["status"], json!("NEW"));
        assert_eq!(read["items"], json!([]));
        assert_eq!(read["created_at"], json!(null), "an unset message is null");
        // The same bytes read as the nested Item and as the second top-level message.
        let item = DynamicMessage::decode(schema.message(&[0, 0]).expect("Item"), &b""[..])
            .expect("empty");
        let framed = wire::with_message_indexes(&[0, 0], &item.encode_to_vec());
        assert_eq!(schema.decode(&framed), Ok(json!({"sku": "", "price": 0.0})));
        let refund = wire::with_message_indexes(&[1], &[10, 2, b'o', b'9']);
        assert_eq!(schema.decode(&refund), Ok(json!({"order_id": "o9"})));
    }

    #[test]
    fn misfits_are_named_by_path_and_bad_values_refused() {
        let schema = ProtoSchema::parse(ORDERS).expect("compiles");
        let err = schema
            .encode(&json!({"id": "o-3", "items": [{"sku": "a", "price": "cheap"}]}))
            .expect_err("a price that is no number");
        assert!(err.starts_with("$.items[0].price"), "{err}");
        let err = schema
            .encode(&json!({"id": "o-3", "colour": "red"}))
            .expect_err("an unknown field");
        assert!(err.contains("colour"), "{err}");
        assert!(schema.decode(&[0, 0xff, 0xff]).is_err(), "not a message");
        assert!(schema.decode(&[2, 8]).is_err(), "no message at index 4");
    }

    #[test]
    fn a_schema_that_does_not_compile_says_why() {
        let err = ProtoSchema::parse("message {").expect_err("broken");
        assert!(err.to_string().contains("does not compile"), "{err}");
        let err = ProtoSchema::parse(r#"syntax = "proto3"; import "other.proto";"#)
            .expect_err("an import of another subject");
        assert!(err.to_string().contains("other.proto"), "{err}");
    }
}
