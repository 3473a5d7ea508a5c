//! `fnctl produce` as users feed it: blank and non-text lines, binary values, and
//! requests sent again after a replica was killed mid-request, written once.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Replica, temp_dir, value, wait_for};

/// Records of topic `t` as the admin API counts them.
fn held(replica: &Replica) -> u64 {
    let Some((200, body)) = replica.http_get("/v1/topics") else {
        return 0;
    };
    let topics: Value = serde_json::from_str(&body).unwrap_or_default();
    topics
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == "t"))
        .and_then(|t| t["records"].as_u64())
        .unwrap_or(0)
}

#[test]
fn blank_lines_are_counted_and_a_line_that_is_not_text_is_named_with_what_was_written() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("data"));
    replica.ok(&["topics", "create", "t", "--partitions", "1"]);
    let out = replica.fnctl(&["produce", "t", "--file", "/dev/null"]);
    assert!(out.status.success());
    let input = dir.path().join("lines");
    std::fs::write(&input, "a\n   \n\n\tb\r\n").expect("write");
    let out = replica.fnctl(&["produce", "t", "--file", input.to_str().expect("utf-8")]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("produced 2 records to t (2 blank lines skipped)"),
        "{said}"
    );
    let values: Vec<String> = replica
        .consume("t")
        .iter()
        .map(|r| value(r).to_owned())
        .collect();
    assert_eq!(
        values,
        vec!["a", "\tb"],
        "a line keeps its spaces and loses its CRLF"
    );

    let mut bytes: Vec<u8> = (0..2500)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    bytes.extend_from_slice(b"\xff\xfe not text\nafter\n");
    std::fs::write(&input, bytes).expect("write");
    let out = replica.fnctl(&["produce", "t", "--file", input.to_str().expect("utf-8")]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("line 2501 is not UTF-8 text"), "{said}");
    assert!(
        said.contains("2000 records were written to t before this"),
        "{said}"
    );
    assert!(said.contains("--value-format"), "{said}");

    std::fs::write(&input, "aGk=\n\n/w==\n").expect("write");
    replica.ok(&[
        "produce",
        "t",
        "--file",
        input.to_str().expect("utf-8"),
        "--value-format",
        "base64",
    ]);
    std::fs::write(&input, "6869\nff00\n").expect("write");
    replica.ok(&[
        "produce",
        "t",
        "--file",
        input.to_str().expect("utf-8"),
        "--value-format",
        "hex",
    ]);
    let tail: Vec<(String, String)> = replica
        .consume("t")
        .iter()
        .rev()
        .take(4)
        .map(|r| {
            (
                r["value"].as_str().unwrap_or_default().to_owned(),
                r["encoding"].as_str().unwrap_or("text").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        tail,
        vec![
            ("/wA=".to_owned(), "base64".to_owned()),
            ("hi".to_owned(), "text".to_owned()),
            ("/w==".to_owned(), "base64".to_owned()),
            ("hi".to_owned(), "text".to_owned()),
        ]
    );
}

#[test]
fn a_request_sent_again_is_written_once() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("data"));
    replica.ok(&["topics", "create", "t", "--partitions", "2"]);
    let request = serde_json::json!({
        "records": [{ "value": "a" }, { "value": "b" }, { "value": "c" }],
        "producer": { "id": "p-1", "sequence": 0 }
    });
    let send = || -> (u16, String) {
        let mut answer = ureq::post(format!("{}/v1/topics/t/records", replica.admin))
            .config()
            .http_status_as_error(false)
            .build()
            .send_json(&request)
            .expect("the replica answers");
        (
            answer.status().as_u16(),
            answer.body_mut().read_to_string().unwrap_or_default(),
        )
    };
    let first = send();
    assert_eq!(first.0, 200, "{first:?}");
    assert_eq!(send(), first, "the same answer to the same request");
    assert_eq!(held(&replica), 3, "written once");
}

#[test]
fn a_produce_through_a_killed_replica_writes_every_line_once() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let mut replica = Replica::start(&data);
    let port = replica.port().expect("a loopback port");
    replica.ok(&["topics", "create", "t", "--partitions", "3"]);
    let lines = 100_000;
    let input = dir.path().join("lines");
    std::fs::write(
        &input,
        (0..lines)
            .map(|i| format!("line-{i:05}\n"))
            .collect::<String>(),
    )
    .expect("write");
    let mut produce = replica
        .command(&[
            "produce",
            "t",
            "--file",
            input.to_str().expect("utf-8"),
            "--batch-size",
            "200",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fnctl produce");
    wait_for(Duration::from_secs(60), "part of the input to land", || {
        (held(&replica) >= 5000).then_some(())
    });
    replica.kill();
    std::thread::sleep(Duration::from_millis(300));
    let replica = Replica::start_at(&data, port);
    wait_for(Duration::from_secs(120), "fnctl produce to finish", || {
        produce.try_wait().expect("wait").map(|_| ())
    });
    let output = produce.wait_with_output().expect("fnctl produce ends");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "fnctl produce rides out the restart: {said}"
    );
    assert!(
        said.contains("sending it again"),
        "the replica was killed while fnctl produced: {said}"
    );
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for record in replica.consume("t") {
        *seen.entry(value(&record).to_owned()).or_default() += 1;
    }
    assert_eq!(seen.len(), lines, "every line arrived");
    let repeated: Vec<&String> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(l, _)| l)
        .collect();
    assert!(
        repeated.is_empty(),
        "lines written twice: {}",
        repeated.len()
    );
}
