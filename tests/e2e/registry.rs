//! A schema registry for one test (Apicurio Registry, started by the project's own
//! script and stopped when the test ends), and implementations of Avro (Python's
//! fastavro), Protobuf (Google's protobuf runtime) and JSON Schema (Python's jsonschema)
//! independent of Streamfn's, to write inputs and read outputs with.

// Both test binaries (embedded log and Kafka) include this module; each uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{output_of, stop_after_this_process};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A running registry.
pub struct Registry {
    dir: PathBuf,
    /// Its Confluent-compatible API, e.g. `http://127.0.0.1:PORT/apis/ccompat/v7`.
    pub url: String,
}

impl Registry {
    /// Starts a registry whose log and pid live in `dir`.
    pub fn start(dir: &Path) -> Registry {
        let script = root().join("scripts/registry");
        let url = output_of(
            Command::new("bash").arg(&script).arg("start").arg(dir),
            "scripts/registry start",
            "",
        );
        stop_after_this_process(&script, dir);
        Registry {
            dir: dir.to_path_buf(),
            url: url.trim().to_owned(),
        }
    }

    /// Registers `schema` (Avro, as JSON) under `subject`; returns its id.
    pub fn register(&self, subject: &str, schema: &Value) -> u32 {
        self.register_typed(subject, "AVRO", &schema.to_string())
    }

    /// Registers the schema `text` of type `kind` (AVRO, JSON or PROTOBUF) under
    /// `subject`; returns its id.
    pub fn register_typed(&self, subject: &str, kind: &str, text: &str) -> u32 {
        let answer = self.send(
            "POST",
            &format!("/subjects/{subject}/versions"),
            &serde_json::json!({ "schemaType": kind, "schema": text }),
        );
        let id = answer["id"].as_u64().expect("an id");
        u32::try_from(id).expect("a 32-bit id")
    }

    /// Sets the compatibility rule of `subject` (BACKWARD, FORWARD, FULL, NONE, ...).
    pub fn set_compatibility(&self, subject: &str, level: &str) {
        self.send(
            "PUT",
            &format!("/config/{subject}"),
            &serde_json::json!({ "compatibility": level }),
        );
    }

    /// The versions `subject` has.
    pub fn versions(&self, subject: &str) -> Vec<u64> {
        let answer: Value = ureq::get(format!("{}/subjects/{subject}/versions", self.url))
            .call()
            .expect("the registry answers")
            .body_mut()
            .read_json()
            .expect("the registry answers JSON");
        answer
            .as_array()
            .expect("a list of versions")
            .iter()
            .map(|v| v.as_u64().expect("a version number"))
            .collect()
    }

    fn send(&self, method: &str, path: &str, body: &Value) -> Value {
        let url = format!("{}{path}", self.url);
        let request = match method {
            "PUT" => ureq::put(&url),
            _ => ureq::post(&url),
        };
        request
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .send_json(body)
            .unwrap_or_else(|e| panic!("the registry takes {method} {path}: {e}"))
            .body_mut()
            .read_json()
            .expect("the registry answers JSON")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(root().join("scripts/registry"))
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}

/// The Python of the schema tools' environment, which `scripts/test` sets up.
fn python() -> PathBuf {
    let python = root().join(".cache/schema-tools/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test, or python3 -m venv .cache/schema-tools && .cache/schema-tools/bin/pip install -r tests/e2e/schema_tools/requirements.txt",
        python.display()
    );
    python
}

/// Runs `tests/e2e/schema_tools/TOOL.py args` with `lines` on stdin; its output lines.
fn schema_tool(tool: &str, args: &[&str], lines: &[String]) -> Vec<String> {
    let mut command = Command::new(python());
    command
        .arg(root().join(format!("tests/e2e/schema_tools/{tool}.py")))
        .args(args);
    output_of(
        &mut command,
        &format!("{tool} {}", args.join(" ")),
        &(lines.join("\n") + "\n"),
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// `data` (JSON, with `{"$decimal": ..}` and `{"$bytes": ..}`) written by fastavro with
/// `schema` and framed with schema `id`, as base64 lines.
pub fn encode(dir: &Path, schema: &Value, id: u32, data: &[Value]) -> Vec<String> {
    let file = dir.join(format!("schema-{id}.avsc"));
    std::fs::write(&file, schema.to_string()).expect("the schema file is written");
    let lines: Vec<String> = data.iter().map(Value::to_string).collect();
    schema_tool(
        "avro_tool",
        &["encode", &file.to_string_lossy(), &id.to_string()],
        &lines,
    )
}

/// Framed values (base64) read by fastavro with `schema`: each one's schema id and its
/// JSON (with `{"$decimal": ..}` and `{"$bytes": ..}`).
pub fn decode(dir: &Path, schema: &Value, values: &[String]) -> Vec<(u32, Value)> {
    let file = dir.join("reader.avsc");
    std::fs::write(&file, schema.to_string()).expect("the schema file is written");
    schema_tool("avro_tool", &["decode", &file.to_string_lossy()], values)
        .iter()
        .map(|line| {
            let read: Value = serde_json::from_str(line).expect("the tool prints JSON");
            let id = read["schema_id"].as_u64().expect("a schema id");
            (
                u32::try_from(id).expect("a 32-bit id"),
                read["value"].clone(),
            )
        })
        .collect()
}

/// `data` written by Google's protobuf runtime as message `message` of the `.proto` in
/// `proto` and framed with schema `id`, as base64 lines.
pub fn proto_encode(proto: &Path, message: &str, id: u32, data: &[Value]) -> Vec<String> {
    let lines: Vec<String> = data.iter().map(Value::to_string).collect();
    schema_tool(
        "proto_tool",
        &["encode", &proto.to_string_lossy(), message, &id.to_string()],
        &lines,
    )
}

/// Framed Protobuf values (base64) read by Google's protobuf runtime with the `.proto`
/// in `proto`: each one's schema id, message name and protobuf's own JSON of it.
pub fn proto_decode(proto: &Path, values: &[String]) -> Vec<Value> {
    schema_tool("proto_tool", &["decode", &proto.to_string_lossy()], values)
        .iter()
        .map(|line| serde_json::from_str(line).expect("the tool prints JSON"))
        .collect()
}

/// JSON `data` framed with JSON Schema `id`, as base64 lines.
pub fn json_encode(id: u32, data: &[Value]) -> Vec<String> {
    let lines: Vec<String> = data.iter().map(Value::to_string).collect();
    schema_tool("json_tool", &["encode", &id.to_string()], &lines)
}

/// Framed JSON values (base64) checked by Python's jsonschema against the schema in
/// `schema`: each one's schema id, JSON, and whether it fits.
pub fn json_decode(schema: &Path, values: &[String]) -> Vec<Value> {
    schema_tool("json_tool", &["decode", &schema.to_string_lossy()], values)
        .iter()
        .map(|line| serde_json::from_str(line).expect("the tool prints JSON"))
        .collect()
}
