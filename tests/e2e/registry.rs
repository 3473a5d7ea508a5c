//! A schema registry for one test (Apicurio Registry, started by the project's own
//! script and stopped when the test ends), and an Avro implementation independent of
//! Streamfn's (Python's fastavro) to write inputs and read outputs with.

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
        let answer: Value = ureq::post(format!("{}/subjects/{subject}/versions", self.url))
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .send_json(serde_json::json!({ "schema": schema.to_string() }))
            .expect("the registry takes the schema")
            .body_mut()
            .read_json()
            .expect("the registry answers JSON");
        let id = answer["id"].as_u64().expect("an id");
        u32::try_from(id).expect("a 32-bit id")
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

/// fastavro's Python, from the environment `scripts/test` sets up.
fn python() -> PathBuf {
    let python = root().join(".cache/avro-tools/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test, or python3 -m venv .cache/avro-tools && .cache/avro-tools/bin/pip install -r tests/e2e/avro/requirements.txt",
        python.display()
    );
    python
}

fn avro_tool(args: &[&str], input: &str) -> Vec<String> {
    let mut command = Command::new(python());
    command
        .arg(root().join("tests/e2e/avro/avro_tool.py"))
        .args(args);
    output_of(
        &mut command,
        &format!("avro_tool {}", args.join(" ")),
        input,
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
    avro_tool(
        &["encode", &file.to_string_lossy(), &id.to_string()],
        &(lines.join("\n") + "\n"),
    )
}

/// Framed values (base64) read by fastavro with `schema`: each one's schema id and its
/// JSON (with `{"$decimal": ..}` and `{"$bytes": ..}`).
pub fn decode(dir: &Path, schema: &Value, values: &[String]) -> Vec<(u32, Value)> {
    let file = dir.join("reader.avsc");
    std::fs::write(&file, schema.to_string()).expect("the schema file is written");
    avro_tool(
        &["decode", &file.to_string_lossy()],
        &(values.join("\n") + "\n"),
    )
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
