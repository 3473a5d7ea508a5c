//! Protobuf and JSON Schema through a real schema registry (Apicurio Registry), and
//! output schemas registered at deploy. Values that Google's protobuf runtime and Python's
//! jsonschema wrote reach the function as the documented JSON; what a function emits is
//! written with the schema it was deployed with, as those implementations read it; values
//! that do not decode are `decode-error` dead letters and emits that do not fit
//! `encode-error` ones, the rest of the batch going on; and a deploy whose output schema
//! the subject's compatibility rule refuses is refused with the registry's reason,
//! changing nothing.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::registry::{Registry, decode, json_decode, json_encode, proto_decode, proto_encode};
use crate::support::{Replica, guest, header, temp_dir, value};

const ORDER_PROTO: &str = r#"syntax = "proto3";
package shop;

message Order {
  string id = 1;
  int64 quantity = 2;
  Status status = 3;
  repeated string tags = 4;
  bytes digest = 5;
  Item first = 6;
  double total = 7;

  message Item {
    string sku = 1;
    double price = 2;
  }
}

enum Status {
  NEW = 0;
  PAID = 1;
}
"#;

/// A replica on `registry`, with `topics` made.
fn replica_on(dir: &Path, registry: &Registry, topics: &[&str]) -> Replica {
    let replica = Replica::start_with(&dir.join("replica"), &["--schema-registry", &registry.url]);
    for topic in topics {
        replica.ok(&["topics", "create", topic, "--partitions", "1"]);
    }
    replica
}

/// Deploys the pass-through function as `name`, from `input` to `output`, with `extra`
/// deploy arguments.
fn pass(replica: &Replica, name: &str, input: &str, output: &str, extra: &[&str]) {
    let mut args = vec!["--input", input, "--output", output];
    let to = format!("to={output}");
    args.extend(["--config", &to]);
    args.extend_from_slice(extra);
    replica.deploy(&guest("passthrough"), name, &args);
}

/// The values of `topic`'s records, as base64 (`fnctl consume` prints a value that is
/// UTF-8 as text).
fn binary_values(replica: &Replica, topic: &str) -> Vec<String> {
    replica
        .consume(topic)
        .iter()
        .map(|r| match r["encoding"].as_str() {
            Some("base64") => value(r).to_owned(),
            _ => BASE64.encode(value(r)),
        })
        .collect()
}

/// The failure kinds and reasons of `function`'s dead letters.
fn dead_letters(replica: &Replica, function: &str) -> Vec<(String, String)> {
    replica
        .consume(&format!("{function}-dlq"))
        .iter()
        .map(|l| {
            (
                header(l, "streamfn.failure.kind").to_owned(),
                header(l, "streamfn.failure.reason").to_owned(),
            )
        })
        .collect()
}

#[test]
fn protobuf_reaches_the_function_as_json_and_its_json_is_written_as_protobuf() {
    let dir = temp_dir();
    let registry = Registry::start(&dir.path().join("registry"));
    let id = registry.register_typed("orders-value", "PROTOBUF", ORDER_PROTO);
    let avro_id = registry.register("other-value", &json!("string"));
    let proto = dir.path().join("order.proto");
    std::fs::write(&proto, ORDER_PROTO).expect("write");
    let replica = replica_on(dir.path(), &registry, &["orders", "orders-json"]);
    pass(
        &replica,
        "viewer",
        "orders",
        "seen",
        &["--input-format", "orders=protobuf"],
    );
    let schema_arg = format!("copies={}", proto.display());
    pass(
        &replica,
        "copier",
        "orders-json",
        "copies",
        &[
            "--input-format",
            "orders-json=json",
            "--output-schema",
            &schema_arg,
        ],
    );

    let full = json!({
        "id": "o-1", "quantity": "9007199254740993", "status": "PAID", "tags": ["gift"],
        "digest": "AQIDBA==", "first": {"sku": "a", "price": 2.5}, "total": 7.5,
    });
    let sparse = json!({"id": "o-2"});
    let written = proto_encode(&proto, "shop.Order", id, &[full, sparse]);
    // Not framed; framed but not a message; framed with an Avro schema's id.
    let bad = [
        b"{\"id\": \"o-3\"}".to_vec(),
        [&[0][..], &id.to_be_bytes(), &[0, 0xff, 0xff]].concat(),
        [&[0][..], &avro_id.to_be_bytes(), &[0, 2, b'x']].concat(),
    ];
    let mut lines = written.clone();
    lines.extend(bad.iter().map(|b| BASE64.encode(b)));
    replica.produce("orders", &lines, &["--value-format", "base64"]);
    replica.wait_drained("viewer", Duration::from_secs(60));

    let seen: Vec<Value> = replica
        .consume("seen")
        .iter()
        .map(|r| serde_json::from_str(value(r)).expect("the function saw JSON"))
        .collect();
    assert_eq!(
        seen,
        [
            json!({
                "id": "o-1", "quantity": 9007199254740993_u64, "status": "PAID",
                "tags": ["gift"], "digest": "AQIDBA==", "first": {"sku": "a", "price": 2.5},
                "total": 7.5,
            }),
            json!({
                "id": "o-2", "quantity": 0, "status": "NEW", "tags": [], "digest": "",
                "first": null, "total": 0.0,
            }),
        ]
    );
    let dead = dead_letters(&replica, "viewer");
    let kinds: Vec<&str> = dead.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["decode-error"; 3], "{dead:?}");
    assert!(dead[0].1.contains("magic byte"), "{}", dead[0].1);
    assert!(
        dead[1].1.contains("not a shop.Order message"),
        "{}",
        dead[1].1
    );
    assert!(dead[2].1.contains("avro schema"), "{}", dead[2].1);

    // The JSON the function saw, sent back through a function that writes Protobuf, is
    // the same messages for Google's runtime; a misfit fails its event alone.
    let mut lines: Vec<String> = seen.iter().map(Value::to_string).collect();
    lines.insert(1, json!({"id": "o-4", "quantity": "many"}).to_string());
    replica.produce("orders-json", &lines, &[]);
    replica.wait_drained("copier", Duration::from_secs(60));
    let copies = proto_decode(&proto, &binary_values(&replica, "copies"));
    let originals = proto_decode(&proto, &written);
    let copied_id = registry.register_typed("copies-value", "PROTOBUF", ORDER_PROTO);
    assert_eq!(copies.len(), 2, "{copies:?}");
    for (copy, original) in copies.iter().zip(&originals) {
        assert_eq!(copy["value"], original["value"]);
        assert_eq!(copy["message"], "shop.Order");
        assert_eq!(copy["schema_id"], copied_id);
    }
    let dead = dead_letters(&replica, "copier");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, "encode-error");
    assert!(dead[0].1.contains("$.quantity"), "{}", dead[0].1);
}

#[test]
fn json_schema_values_are_checked_both_ways_and_misfits_named_by_path() {
    let dir = temp_dir();
    let registry = Registry::start(&dir.path().join("registry"));
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "required": ["id", "quantity"],
        "properties": {
            "id": {"type": "string"},
            "quantity": {"type": "integer", "minimum": 1},
            "items": {"type": "array", "items": {
                "type": "object", "properties": {"price": {"type": "number", "minimum": 0}}
            }}
        }
    });
    let id = registry.register_typed("events-value", "JSON", &schema.to_string());
    let schema_file = dir.path().join("event.json");
    std::fs::write(&schema_file, schema.to_string()).expect("write");
    let replica = replica_on(dir.path(), &registry, &["events", "plain"]);
    pass(
        &replica,
        "viewer",
        "events",
        "seen",
        &["--input-format", "events=json-schema"],
    );
    let schema_arg = format!("checked={}", schema_file.display());
    pass(
        &replica,
        "checker",
        "plain",
        "checked",
        &["--output-schema", &schema_arg],
    );

    // As the producer wrote it, spacing and key order too.
    let fits = r#"{"quantity": 2, "id": "e-1", "items": [{"price": 1.5}]}"#;
    let framed =
        |text: &str| BASE64.encode([&[0][..], &id.to_be_bytes(), text.as_bytes()].concat());
    let misfit = json!({"id": "e-2", "items": [{"price": -1}], "quantity": 3});
    let lines = [
        framed(fits),
        json_encode(id, &[misfit])[0].clone(),
        BASE64.encode(r#"{"id": "e-3", "quantity": 1}"#),
    ];
    replica.produce("events", &lines, &["--value-format", "base64"]);
    replica.wait_drained("viewer", Duration::from_secs(60));
    let seen = replica.consume("seen");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(value(&seen[0]), fits);
    assert_eq!(header(&seen[0], "streamfn.schema.id"), id.to_string());
    assert_eq!(header(&seen[0], "streamfn.schema.subject"), "events-value");
    let dead = dead_letters(&replica, "viewer");
    let kinds: Vec<&str> = dead.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["decode-error"; 2], "{dead:?}");
    assert!(dead[0].1.contains("$.items[0].price"), "{}", dead[0].1);
    assert!(dead[1].1.contains("magic byte"), "{}", dead[1].1);

    let out = [
        json!({"id": "c-1", "quantity": 5}),
        json!({"id": "c-2", "quantity": 0}),
        json!({"id": "c-3", "quantity": 1, "items": []}),
    ];
    let lines: Vec<String> = out.iter().map(Value::to_string).collect();
    replica.produce("plain", &lines, &[]);
    replica.wait_drained("checker", Duration::from_secs(60));
    let read = json_decode(&schema_file, &binary_values(&replica, "checked"));
    assert_eq!(read.len(), 2, "{read:?}");
    for (got, sent) in read.iter().zip([&out[0], &out[2]]) {
        assert_eq!(got["schema_id"], id, "{got}");
        assert_eq!(got["fits"], true, "{got}");
        assert_eq!(&got["value"], sent);
    }
    let dead = dead_letters(&replica, "checker");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, "encode-error");
    assert!(dead[0].1.contains("$.quantity"), "{}", dead[0].1);
}

#[test]
fn an_output_schema_the_subject_refuses_refuses_the_deploy_and_one_it_takes_is_written_with() {
    let dir = temp_dir();
    let registry = Registry::start(&dir.path().join("registry"));
    let record = |extra: Vec<Value>| {
        let mut fields = vec![json!({"name": "id", "type": "string"})];
        fields.extend(extra);
        json!({"type": "record", "name": "Score", "fields": fields})
    };
    let v1 = record(vec![]);
    registry.register("scores-value", &v1);
    registry.set_compatibility("scores-value", "BACKWARD");
    let replica = replica_on(dir.path(), &registry, &["plain"]);

    // A new field without a default: readers of the new schema cannot read old records.
    let incompatible = record(vec![json!({"name": "points", "type": "int"})]);
    let file = dir.path().join("incompatible.avsc");
    std::fs::write(&file, incompatible.to_string()).expect("write");
    let out = replica.fnctl(&[
        "deploy",
        &guest("passthrough").to_string_lossy(),
        "--name",
        "scorer",
        "--input",
        "plain",
        "--output",
        "scores",
        "--output-schema",
        &format!("scores={}", file.display()),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the deploy was refused");
    assert!(
        stderr.contains("refuses the AVRO schema for scores-value") && stderr.contains("points"),
        "the refusal gives the registry's reason: {stderr}"
    );
    assert!(
        !replica.ok(&["list"]).contains("scorer"),
        "nothing was deployed"
    );
    assert_eq!(
        registry.versions("scores-value"),
        [1],
        "nothing was registered"
    );

    let compatible = record(vec![json!({"name": "points", "type": "int", "default": 0})]);
    let file = dir.path().join("compatible.avsc");
    std::fs::write(&file, compatible.to_string()).expect("write");
    let schema_arg = format!("scores={}", file.display());
    pass(
        &replica,
        "scorer",
        "plain",
        "scores",
        &["--output-schema", &schema_arg],
    );
    assert_eq!(registry.versions("scores-value"), [1, 2]);
    let pinned = registry.register("scores-value", &compatible);
    // A newer version registered by someone else does not change what the function writes.
    let newer = record(vec![
        json!({"name": "points", "type": "int", "default": 0}),
        json!({"name": "note", "type": "string", "default": ""}),
    ]);
    registry.register("scores-value", &newer);
    replica.produce("plain", &[json!({"id": "s-1"}).to_string()], &[]);
    replica.wait_drained("scorer", Duration::from_secs(60));
    let read = decode(dir.path(), &compatible, &binary_values(&replica, "scores"));
    assert_eq!(read, [(pinned, json!({"id": "s-1", "points": 0}))]);
}

#[test]
fn outputs_may_name_their_subject_by_record() {
    let dir = temp_dir();
    let registry = Registry::start(&dir.path().join("registry"));
    let replica = replica_on(dir.path(), &registry, &["plain"]);
    let schema = json!({
        "type": "record", "name": "Score", "namespace": "shop",
        "fields": [{"name": "id", "type": "string"}],
    });
    let file = dir.path().join("score.avsc");
    std::fs::write(&file, schema.to_string()).expect("write");
    let schema_arg = format!("scores={}", file.display());
    pass(
        &replica,
        "scorer",
        "plain",
        "scores",
        &["--output-schema", &schema_arg, "--subject-naming", "record"],
    );
    assert_eq!(
        registry.versions("shop.Score"),
        [1],
        "registered under the record's name"
    );
    let id = registry.register("shop.Score", &schema);
    replica.produce("plain", &[json!({"id": "s-1"}).to_string()], &[]);
    replica.wait_drained("scorer", Duration::from_secs(60));
    let read = decode(dir.path(), &schema, &binary_values(&replica, "scores"));
    assert_eq!(read, [(id, json!({"id": "s-1"}))]);

    // Without a schema of its own an output has no record to name its subject by.
    let out = replica.fnctl(&[
        "deploy",
        &guest("passthrough").to_string_lossy(),
        "--name",
        "unnamed",
        "--input",
        "plain",
        "--output",
        "other",
        "--output-format",
        "other=avro",
        "--subject-naming",
        "record",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("--output-schema"),
        "{stderr}"
    );
}
