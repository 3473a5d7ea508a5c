//! Avro through a real schema registry (Apicurio Registry): values another Avro
//! implementation wrote reach the function as the documented JSON, with the writer
//! schema's id and subject in headers; values that do not decode are dead-lettered as
//! `decode-error`, as they came, while the rest are handled; a producer moving to a newer
//! schema mid-stream changes nothing for the function; what a function emits to an Avro
//! output is written with the subject's latest schema, as another implementation reads
//! it, and an emit that does not fit fails its event as `encode-error`; and a replica
//! without a registry refuses an Avro input.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::registry::{Registry, decode, encode};
use crate::support::{Replica, guest, header, temp_dir, value};

fn order_schema(extra: Option<Value>) -> Value {
    let mut fields = vec![
        json!({"name": "id", "type": "string"}),
        json!({"name": "quantity", "type": "int"}),
        json!({"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}}),
        json!({"name": "note", "type": ["null", "string"], "default": null}),
        json!({"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID", "SHIPPED"]}}),
        json!({"name": "tags", "type": {"type": "array", "items": "string"}}),
        json!({"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}}),
        json!({"name": "created_at", "type": {"type": "long", "logicalType": "timestamp-millis"}}),
        json!({"name": "attributes", "type": {"type": "map", "values": "double"}}),
    ];
    fields.extend(extra);
    json!({"type": "record", "name": "Order", "namespace": "shop", "fields": fields})
}

/// An order as fastavro takes it, and the JSON the function must see for it.
fn order(id: &str, price: &str, note: Option<&str>, channel: Option<&str>) -> (Value, Value) {
    let mut written = json!({
        "id": id, "quantity": 3, "price": {"$decimal": price}, "note": note,
        "status": "PAID", "tags": ["gift", "express"], "digest": {"$bytes": "AQIDBA=="},
        "created_at": 1767225600000_i64, "attributes": {"weight": 1.5},
    });
    let mut seen = json!({
        "id": id, "quantity": 3, "price": price, "note": note,
        "status": "PAID", "tags": ["gift", "express"], "digest": "AQIDBA==",
        "created_at": 1767225600000_i64, "attributes": {"weight": 1.5},
    });
    if let Some(channel) = channel {
        written["channel"] = json!(channel);
        seen["channel"] = json!(channel);
    }
    (written, seen)
}

#[test]
fn avro_inputs_reach_the_function_as_json_and_those_that_do_not_decode_are_dead_lettered() {
    let dir = temp_dir();
    let registry = Registry::start(&dir.path().join("registry"));
    let v1 = order_schema(None);
    let id1 = registry.register("orders-value", &v1);
    let replica = Replica::start_with(
        &dir.path().join("replica"),
        &["--schema-registry", &registry.url],
    );
    replica.ok(&["topics", "create", "orders", "--partitions", "1"]);
    replica.deploy(
        &guest("passthrough"),
        "orders-json",
        &[
            "--input",
            "orders",
            "--output",
            "out",
            "--input-format",
            "orders=avro",
        ],
    );
    let produce = |lines: &[String]| {
        replica.produce("orders", lines, &["--value-format", "base64", "--key", "o"]);
    };

    let (first, first_seen) = order("o-1", "12.30", None, None);
    let (second, second_seen) = order("o-2", "-0.05", Some("leave at the door"), None);
    let written = encode(dir.path(), &v1, id1, &[first, second]);
    produce(&written);

    // Three values that do not decode: not framed, an unknown schema id, a cut datum.
    let datum = BASE64.decode(&written[0]).expect("base64");
    let mut unknown_id = datum.clone();
    unknown_id[1..5].copy_from_slice(&999_999_u32.to_be_bytes());
    let cut = &datum[..datum.len() - 3];
    let bad = [b"{\"id\": \"o-3\"}".to_vec(), unknown_id, cut.to_vec()];
    produce(&bad.iter().map(|b| BASE64.encode(b)).collect::<Vec<_>>());

    // The producer moves to a compatible newer schema mid-stream.
    let v2 = order_schema(Some(
        json!({"name": "channel", "type": "string", "default": "web"}),
    ));
    let id2 = registry.register("orders-value", &v2);
    assert_ne!(id1, id2);
    let (third, third_seen) = order("o-4", "7.00", None, Some("app"));
    produce(&encode(dir.path(), &v2, id2, &[third]));

    replica.wait_drained("orders-json", std::time::Duration::from_secs(60));
    let out = replica.consume("out");
    let seen: Vec<Value> = out
        .iter()
        .map(|r| serde_json::from_str(value(r)).expect("the function saw JSON"))
        .collect();
    assert_eq!(seen, [first_seen, second_seen, third_seen]);
    let ids: Vec<&str> = out
        .iter()
        .map(|r| header(r, "streamfn.schema.id"))
        .collect();
    assert_eq!(ids, [id1.to_string(), id1.to_string(), id2.to_string()]);
    for record in &out {
        assert_eq!(header(record, "streamfn.schema.subject"), "orders-value");
    }

    let dead = replica.consume("orders-json-dlq");
    assert_eq!(dead.len(), 3, "three dead letters: {dead:?}");
    for (letter, original) in dead.iter().zip(&bad) {
        assert_eq!(header(letter, "streamfn.failure.kind"), "decode-error");
        // The record as it came: its bytes, not a decoding of them.
        let bytes = match letter["encoding"].as_str() {
            Some("base64") => BASE64.decode(value(letter)).expect("base64"),
            _ => value(letter).as_bytes().to_vec(),
        };
        assert_eq!(&bytes, original);
    }
    let reasons: Vec<&str> = dead
        .iter()
        .map(|l| header(l, "streamfn.failure.reason"))
        .collect();
    assert!(reasons[0].contains("magic byte"), "{}", reasons[0]);
    assert!(reasons[1].contains("999999"), "{}", reasons[1]);
    assert!(reasons[2].contains("ends inside"), "{}", reasons[2]);
    assert!(dead[0]["headers"].get("streamfn.schema.id").is_none());
    assert_eq!(header(&dead[1], "streamfn.schema.id"), "999999");
    assert_eq!(header(&dead[2], "streamfn.schema.id"), id1.to_string());
}

#[test]
fn avro_outputs_are_written_with_the_subjects_latest_schema_and_misfits_fail_as_encode_error() {
    let dir = temp_dir();
    let registry = Registry::start(&dir.path().join("registry"));
    let schema = order_schema(None);
    let id = registry.register("orders-copy-value", &schema);
    let replica = Replica::start_with(
        &dir.path().join("replica"),
        &["--schema-registry", &registry.url],
    );
    replica.ok(&["topics", "create", "orders-json", "--partitions", "1"]);
    replica.deploy(
        &guest("passthrough"),
        "copier",
        &[
            "--input",
            "orders-json",
            "--input-format",
            "orders-json=json",
            "--output",
            "orders-copy",
            "--output-format",
            "orders-copy=avro",
            "--config",
            "to=orders-copy",
        ],
    );
    let (first_written, first_seen) = order("o-1", "12.30", Some("fragile"), None);
    let (second_written, second_seen) = order("o-2", "-0.05", None, None);
    let misfit = json!({"id": "o-3", "quantity": "many"});
    let lines = [
        first_seen.to_string(),
        misfit.to_string(),
        "not json".to_owned(),
        second_seen.to_string(),
    ];
    replica.produce("orders-json", &lines, &["--key", "o"]);
    replica.wait_drained("copier", std::time::Duration::from_secs(60));

    let copies: Vec<String> = replica
        .consume("orders-copy")
        .iter()
        .map(|r| {
            assert_eq!(r["encoding"], "base64", "Avro is binary: {r}");
            value(r).to_owned()
        })
        .collect();
    let read = decode(dir.path(), &schema, &copies);
    assert_eq!(read, [(id, first_written), (id, second_written)]);

    let dead = replica.consume("copier-dlq");
    let kinds: Vec<&str> = dead
        .iter()
        .map(|l| header(l, "streamfn.failure.kind"))
        .collect();
    assert_eq!(kinds, ["encode-error", "decode-error"]);
    let reason = header(&dead[0], "streamfn.failure.reason");
    assert!(
        reason.contains("$.quantity") && reason.contains("orders-copy-value"),
        "{reason}"
    );
    assert_eq!(value(&dead[0]), misfit.to_string());
    assert!(header(&dead[1], "streamfn.failure.reason").contains("not JSON"));
}

#[test]
fn keys_are_read_and_written_in_avro_when_their_subject_exists() {
    let dir = temp_dir();
    let registry = Registry::start(&dir.path().join("registry"));
    let string = json!("string");
    let value_id = registry.register("orders-value", &order_schema(None));
    let key_id = registry.register("orders-key", &string);
    let out_key_id = registry.register("copies-key", &string);
    registry.register("copies-value", &order_schema(None));
    let replica = Replica::start_with(
        &dir.path().join("replica"),
        &["--schema-registry", &registry.url],
    );
    replica.ok(&["topics", "create", "orders", "--partitions", "1"]);
    replica.deploy(
        &guest("passthrough"),
        "copier",
        &[
            "--input",
            "orders",
            "--input-format",
            "orders=avro",
            "--output",
            "copies",
            "--output-format",
            "copies=avro",
            "--config",
            "to=copies",
        ],
    );
    let (written, _) = order("o-1", "1.00", None, None);
    let value = encode(
        dir.path(),
        &order_schema(None),
        value_id,
        std::slice::from_ref(&written),
    )[0]
    .clone();
    // An Avro string: its length, zigzag, then its bytes.
    let key = [&[0][..], &key_id.to_be_bytes(), &[10], b"c-042"].concat();
    let unframed = b"c-043".to_vec();
    for key in [&key, &unframed] {
        let key = BASE64.encode(key);
        replica.ok_with_input(
            &[
                "produce",
                "orders",
                "--value-format",
                "base64",
                "--key",
                &key,
                "--key-format",
                "base64",
            ],
            &format!("{value}\n"),
        );
    }
    replica.wait_drained("copier", std::time::Duration::from_secs(60));
    let copies = replica.consume("copies");
    assert_eq!(copies.len(), 1, "{copies:?}");
    let key = BASE64
        .decode(copies[0]["key"].as_str().expect("a key"))
        .expect("base64");
    assert_eq!(
        decode(dir.path(), &string, &[BASE64.encode(&key)]),
        [(out_key_id, json!("c-042"))]
    );
    let dead = replica.consume("copier-dlq");
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = header(&dead[0], "streamfn.failure.reason");
    assert!(
        reason.contains("the key") && reason.contains("magic byte"),
        "{reason}"
    );
}

#[test]
fn a_replica_without_a_schema_registry_refuses_an_avro_input() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("replica"));
    replica.ok(&["topics", "create", "orders", "--partitions", "1"]);
    let out = replica.fnctl(&[
        "deploy",
        &guest("passthrough").to_string_lossy(),
        "--name",
        "orders-json",
        "--input",
        "orders",
        "--input-format",
        "orders=avro",
    ]);
    assert!(!out.status.success(), "the deploy was refused");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no schema registry") && stderr.contains("--schema-registry"),
        "{stderr}"
    );
    let listed = replica.ok(&["list"]);
    assert!(!listed.contains("orders-json"), "{listed}");
}
