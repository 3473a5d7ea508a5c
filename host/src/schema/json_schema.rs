//! JSON Schema, as a registry holds it for subjects of type JSON (drafts 4 to 2020-12, the
//! draft taken from `$schema`): a value read is checked against the schema that wrote it,
//! and what a function emits against its output's schema, each misfit named by its path
//! (`$.items[2].price`). A schema whose `$ref` points outside itself is not fetched: it
//! does not compile, and its records are refused.

use anyhow::{Result, anyhow};
use jsonschema::paths::LocationSegment;
use serde_json::Value;

/// A compiled JSON Schema.
pub struct JsonSchema {
    validator: jsonschema::Validator,
    title: Option<String>,
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchema").finish_non_exhaustive()
    }
}

impl JsonSchema {
    /// Compiles the schema `text`.
    pub fn parse(text: &str) -> Result<JsonSchema> {
        let schema: Value =
            serde_json::from_str(text).map_err(|e| anyhow!("the JSON Schema is not JSON: {e}"))?;
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| anyhow!("the JSON Schema does not compile: {e}"))?;
        let title = schema["title"].as_str().map(str::to_owned);
        Ok(JsonSchema { validator, title })
    }

    /// The schema's `title`, which names its record as Confluent's serializers take it.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// Why `value` does not fit the schema, naming where; nothing when it does.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        self.validator.validate(value).map_err(|err| {
            let mut path = String::from("$");
            for segment in err.instance_path().iter() {
                match segment {
                    LocationSegment::Property(name) => {
                        path.push('.');
                        path.push_str(&name);
                    }
                    LocationSegment::Index(i) => path.push_str(&format!("[{i}]")),
                }
            }
            format!("{path}: {err}")
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn order_schema() -> JsonSchema {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "required": ["id", "items"],
            "properties": {
                "id": {"type": "string"},
                "items": {"type": "array", "items": {
                    "type": "object",
                    "required": ["price"],
                    "properties": {"price": {"type": "number", "minimum": 0}}
                }}
            }
        });
        JsonSchema::parse(&schema.to_string()).expect("the schema compiles")
    }

    #[test]
    fn a_value_that_fits_passes_and_a_misfit_is_named_by_its_path() {
        let schema = order_schema();
        assert_eq!(
            schema.check(&json!({"id": "o-1", "items": [{"price": 2.5}]})),
            Ok(())
        );
        let err = schema
            .check(&json!({"id": "o-1", "items": [{"price": 1}, {"price": -3}]}))
            .expect_err("a negative price");
        assert!(err.starts_with("$.items[1].price: "), "{err}");
        let err = schema.check(&json!({"items": []})).expect_err("no id");
        assert!(err.starts_with("$: ") && err.contains("id"), "{err}");
    }

    #[test]
    fn a_schema_that_is_not_one_is_refused() {
        assert!(JsonSchema::parse("not json").is_err());
        assert!(JsonSchema::parse(r#"{"type": 12}"#).is_err());
    }
}
