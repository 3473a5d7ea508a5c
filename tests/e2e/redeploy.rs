//! A new version deployed while records stream in takes over between two batches:
//! nothing is lost, nothing is handled twice, and no record is handled by the old
//! version after the new one started on its partition.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::{Replica, guest, header, temp_dir, value, wait_for};

#[test]
fn redeploying_mid_stream_loses_and_repeats_nothing() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("data"));
    replica.ok(&["topics", "create", "in", "--partitions", "2"]);
    let wasm = guest("passthrough");
    let wasm = wasm.to_str().expect("utf-8");
    let deploy = |tag: &str| {
        replica.ok(&[
            "deploy", wasm, "--name", "pt", "--input", "in", "--output", "out", "--batch", "10",
            "--config", tag,
        ]);
    };
    deploy("tag=v1");
    let total = 12_000;
    let lines: Vec<String> = (0..total).map(|i| format!("r{i:05}")).collect();
    let deployed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Half the records go in before the new version and half after, while the old
        // version is still working through the first half.
        let producer = scope.spawn(|| {
            for (i, chunk) in lines.chunks(500).enumerate() {
                if i == lines.len() / 1000 {
                    wait_for(Duration::from_secs(60), "the new version", || {
                        deployed.load(Ordering::Acquire).then_some(())
                    });
                }
                replica.produce("in", chunk, &[]);
            }
        });
        wait_for(Duration::from_secs(60), "some output of v1", || {
            (replica.consume("out").len() > 1000).then_some(())
        });
        deploy("tag=v2");
        deployed.store(true, Ordering::Release);
        producer.join().expect("producer");
    });
    replica.wait_drained("pt", Duration::from_secs(60));

    let out = replica.consume("out");
    let mut values: Vec<&str> = out.iter().map(value).collect();
    values.sort_unstable();
    let expected: Vec<&str> = lines.iter().map(String::as_str).collect();
    assert_eq!(values.len(), total, "every record exactly once");
    assert_eq!(values, expected);

    let mut tags: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
    for record in &out {
        tags.entry(record["partition"].as_u64().expect("partition"))
            .or_default()
            .push(header(record, "tag"));
    }
    let mut saw_v2 = false;
    for (partition, sequence) in tags {
        let switch = sequence
            .iter()
            .position(|t| *t == "v2")
            .unwrap_or(sequence.len());
        assert!(
            sequence[..switch].iter().all(|t| *t == "v1"),
            "partition {partition}"
        );
        assert!(
            sequence[switch..].iter().all(|t| *t == "v2"),
            "partition {partition}: v1 after v2"
        );
        saw_v2 |= switch < sequence.len();
    }
    assert!(saw_v2, "the new version handled records");
    let list = replica.ok(&["list", "--format", "json"]);
    assert!(list.contains("\"version\": 2"), "{list}");
}

#[test]
fn a_rollback_deploys_an_earlier_version_again_without_its_file() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("data"));
    replica.ok(&["topics", "create", "in", "--partitions", "1"]);
    let wasm = guest("passthrough");
    let wasm = wasm.to_str().expect("utf-8");
    let mut sent = 0;
    let mut burst = || {
        let lines: Vec<String> = (sent..sent + 100).map(|i| format!("r{i:03}")).collect();
        sent += 100;
        replica.produce("in", &lines, &[]);
        replica.wait_drained("pt", Duration::from_secs(60));
    };
    for tag in ["tag=v1", "tag=v2"] {
        replica.ok(&[
            "deploy", wasm, "--name", "pt", "--input", "in", "--output", "out", "--config", tag,
        ]);
        burst();
    }
    let said = replica.ok(&["rollback", "pt"]);
    assert!(said.contains("as version 3"), "{said}");
    burst();
    replica.ok(&["rollback", "pt", "--to", "2"]);
    burst();

    let versions: serde_json::Value =
        serde_json::from_str(&replica.ok(&["versions", "pt", "--format", "json"])).expect("JSON");
    let listed: Vec<(u64, &str, bool)> = versions
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["deployment"]["version"].as_u64().expect("a version"),
                v["deployment"]["spec"]["config"]["tag"]
                    .as_str()
                    .expect("a tag"),
                v["running"].as_bool().expect("running"),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (1, "v1", false),
            (2, "v2", false),
            (3, "v1", false),
            (4, "v2", true)
        ]
    );
    let text = replica.ok(&["versions", "pt"]);
    assert!(text.contains("running on"), "{text}");

    let out = replica.consume("out");
    let values: Vec<&str> = out.iter().map(value).collect();
    let expected: Vec<String> = (0..400).map(|i| format!("r{i:03}")).collect();
    assert_eq!(values, expected, "every record once, in order");
    let tags: Vec<&str> = out.iter().map(|r| header(r, "tag")).collect();
    for (burst, tag) in ["v1", "v2", "v1", "v2"].iter().enumerate() {
        assert!(
            tags[burst * 100..(burst + 1) * 100]
                .iter()
                .all(|t| t == tag),
            "burst {burst} by {tag}"
        );
    }
    let missing = replica.fnctl(&["rollback", "pt", "--to", "9"]);
    let said = String::from_utf8_lossy(&missing.stderr);
    assert!(
        said.contains("no version 9") && said.contains("1, 2, 3, 4"),
        "{said}"
    );
}
