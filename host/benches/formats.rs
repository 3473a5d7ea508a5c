//! What a schema registry's formats cost: the pass-through function end to end on the
//! embedded log (fetch, decode, call, encode, durable commit; one partition, one worker)
//! over the same orders as raw bytes, as checked JSON, and framed as Avro, JSON Schema
//! and Protobuf through a real schema registry, each input decoded to JSON before the
//! call and each output encoded after it. After an untimed round, the formats take turns
//! in each run.
//!
//! Run with `cargo bench -p streamfn-host --bench formats` after `scripts/build`. It starts
//! Apicurio Registry with `scripts/registry` unless `STREAMFN_BENCH_REGISTRY` names a
//! registry's Confluent-compatible URL. `STREAMFN_BENCH_EVENTS` sets the orders of a run
//! (default 200000), `STREAMFN_BENCH_RUNS` the runs (default 3; median and range shown).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use streamfn_host::log::embedded::LogConfig;
use streamfn_host::log::{Mode, NewTopic};
use streamfn_host::model::deployment::DeploySpec;
use streamfn_host::model::format::Format;
use streamfn_host::model::record::Record;
use streamfn_host::replica::{Replica, Settings};
use streamfn_host::schema::registry::SchemaRegistry;
use streamfn_host::schema::{Schema, wire};
use support::{Rates, runs};

/// An order in Protobuf: the fields of the Avro schema the checkout writes.
const ORDER_PROTO: &str = r#"syntax = "proto3";
package shop;
message Order {
  string order_id = 1;
  string customer_id = 2;
  int64 created_at = 3;
  string currency = 4;
  repeated Item items = 5;
  string shipping_country = 6;
  message Item {
    string sku = 1;
    int32 quantity = 2;
    string unit_price = 3;
  }
}
"#;

fn order_json_schema() -> String {
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "required": ["order_id", "customer_id", "created_at", "currency", "items"],
        "properties": {
            "order_id": {"type": "string"},
            "customer_id": {"type": "string"},
            "created_at": {"type": "integer"},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "items": {"type": "array", "items": {
                "type": "object",
                "required": ["sku", "quantity", "unit_price"],
                "properties": {
                    "sku": {"type": "string"},
                    "quantity": {"type": "integer"},
                    "unit_price": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,2})?$"}
                }
            }},
            "shipping_country": {"type": ["string", "null"]}
        }
    })
    .to_string()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// A registry for the bench: the one `STREAMFN_BENCH_REGISTRY` names, or one started
/// with `scripts/registry` and stopped when the bench ends.
struct Registry {
    url: String,
    dir: Option<tempfile::TempDir>,
}

impl Registry {
    fn get() -> Registry {
        if let Ok(url) = std::env::var("STREAMFN_BENCH_REGISTRY") {
            return Registry { url, dir: None };
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let output = std::process::Command::new("bash")
            .arg(root().join("scripts/registry"))
            .arg("start")
            .arg(dir.path())
            .output()
            .expect("scripts/registry runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Registry {
            url: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            dir: Some(dir),
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::process::Command::new("bash")
                .arg(root().join("scripts/registry"))
                .arg("stop")
                .arg(dir.path())
                .output();
        }
    }
}

/// One way of writing the orders: its format and, for a registry format, the schema.
struct Case {
    name: &'static str,
    format: Format,
    schema: Option<String>,
}

/// The orders of the run, as JSON, `events` of them, keyed by customer (some the
/// validator would reject: every format carries them).
fn orders(events: usize) -> Vec<Value> {
    let orders = streamfn_demo::orders::orders(9, events / 3 + 1).orders;
    orders.into_iter().cycle().take(events).collect()
}

/// The records of `orders` in the format of `case`, framed with `id` when it has one.
fn records(orders: &[Value], case: &Case, id: Option<u32>) -> Vec<Record> {
    let schema = case.schema.as_deref().map(|text| {
        Schema::parse(case.format.schema_type().unwrap_or("AVRO"), text).expect("the schema")
    });
    orders
        .iter()
        .map(|order| {
            let text = order.to_string();
            let value = match (&schema, id) {
                (Some(schema), Some(id)) => {
                    wire::frame(id, &schema.encode(order, text.as_bytes()).expect("fits"))
                }
                _ => text.into_bytes(),
            };
            Record {
                timestamp_ms: order["created_at"].as_i64().unwrap_or_default(),
                key: order["customer_id"].as_str().map(|c| c.as_bytes().to_vec()),
                value: Some(value),
                headers: Vec::new(),
            }
        })
        .collect()
}

/// Events per second of the pass-through function over `records` of `case` on a fresh
/// replica, from its first commit to its last.
fn end_to_end(registry: &str, case: &Case, records: &[Record]) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings {
        workers: 1,
        schema_registry: Some(Arc::new(
            SchemaRegistry::new(registry, &[]).expect("a registry client"),
        )),
        ..Settings::default()
    };
    let replica = Replica::open_with(
        dir.path(),
        Mode::Embedded(LogConfig::default()),
        "bench",
        &settings,
    )
    .expect("replica");
    let (input, output) = (
        format!("orders-{}", case.name),
        format!("out-{}", case.name),
    );
    replica
        .log()
        .create_topic(&NewTopic {
            name: input.clone(),
            partitions: 1,
            retention_ms: None,
            retention_bytes: None,
        })
        .expect("topic");
    for chunk in records.chunks(5000) {
        let placed = chunk.iter().map(|r| (Some(0), r.clone())).collect();
        replica.log().append(&input, placed, None).expect("append");
    }
    let path = target_dir().join("wasm32-wasip2/release/passthrough.wasm");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run scripts/build first", path.display()));
    let sha256 = replica.upload(&bytes, None).expect("upload");
    let mut spec = DeploySpec {
        outputs: vec![output.clone()],
        config: BTreeMap::from([("to".to_owned(), output.clone())]),
        ..DeploySpec::new("pass", &sha256, &[&input])
    };
    if case.format != Format::Raw {
        spec.input_formats.insert(input.clone(), case.format);
        spec.output_formats.insert(output.clone(), case.format);
    }
    if let Some(schema) = &case.schema {
        spec.output_schemas.insert(output, schema.clone());
    }
    let deployment = replica.deploy(spec).expect("deploy");
    let total = records.len() as u64;
    let mut first = None;
    loop {
        let status = replica
            .log()
            .partition_status(&deployment)
            .expect("offsets");
        let done: u64 = status.iter().map(|p| p.committed).sum();
        if done > 0 && first.is_none() {
            first = Some((done, Instant::now()));
        }
        if done == total {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let dead = replica
        .log()
        .topic("pass-dlq")
        .map(|t| t.records)
        .unwrap_or_default();
    assert_eq!(dead, 0, "{}: every order decodes and encodes", case.name);
    replica.shutdown();
    let (at_first, since) = first.unwrap_or((0, Instant::now()));
    (total - at_first) as f64 / since.elapsed().as_secs_f64()
}

fn main() {
    let events: usize = std::env::var("STREAMFN_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let registry = Registry::get();
    let client = SchemaRegistry::new(&registry.url, &[]).expect("a registry client");
    let avro = std::fs::read_to_string(root().join("guests/order-validator/schemas/order.avsc"))
        .expect("the order schema");
    let cases = [
        Case {
            name: "raw",
            format: Format::Raw,
            schema: None,
        },
        Case {
            name: "json",
            format: Format::Json,
            schema: None,
        },
        Case {
            name: "avro",
            format: Format::Avro,
            schema: Some(avro),
        },
        Case {
            name: "json-schema",
            format: Format::JsonSchema,
            schema: Some(order_json_schema()),
        },
        Case {
            name: "protobuf",
            format: Format::Protobuf,
            schema: Some(ORDER_PROTO.to_owned()),
        },
    ];
    let orders = orders(events);
    let inputs: Vec<Vec<Record>> = cases
        .iter()
        .map(|case| {
            let id = case.schema.as_deref().map(|text| {
                client
                    .register(&format!("orders-{}-value", case.name), case.format, text)
                    .expect("the registry takes the schema")
            });
            records(&orders, case, id)
        })
        .collect();
    println!(
        "the pass-through function end to end on the embedded log, {events} orders, one partition, one worker; ev/s as median (range) of {} runs, the formats taking turns",
        runs()
    );
    // One untimed round first: the first replica of a process pays for warming up.
    for (case, input) in cases.iter().zip(&inputs) {
        end_to_end(&registry.url, case, input);
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..runs() {
        for (i, case) in cases.iter().enumerate() {
            rates[i].push(end_to_end(&registry.url, case, &inputs[i]));
        }
    }
    let rates: Vec<Rates> = rates.into_iter().map(Rates::of).collect();
    println!(
        "{:<12} {:>24} {:>10} {:>16}",
        "format", "in and out", "of raw", "bytes per order"
    );
    for ((case, rate), input) in cases.iter().zip(&rates).zip(&inputs) {
        let bytes: usize = input
            .iter()
            .map(|r| r.value.as_ref().map_or(0, Vec::len))
            .sum();
        println!(
            "{:<12} {rate} {:>9.0}% {:>16.0}",
            case.name,
            100.0 * rate.median / rates[0].median,
            bytes as f64 / input.len() as f64
        );
    }
}
