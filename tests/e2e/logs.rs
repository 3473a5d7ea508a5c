//! `fnctl logs` shows a function's own log lines with the records they were written
//! for, and `--follow` keeps printing new ones.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{Replica, fnctl_path, guest, temp_dir};

#[test]
fn logs_show_what_a_function_wrote_and_follow_new_lines() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("data"));
    replica.ok(&["topics", "create", "in", "--partitions", "1"]);
    let wasm = guest("test-reject");
    replica.deploy(&wasm, "f", &["--input", "in", "--output", "out"]);
    let lines: Vec<String> = ["a", "b", "reject", "c"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    replica.produce("in", &lines, &[]);
    replica.wait_drained("f", Duration::from_secs(30));

    let text = replica.ok(&["logs", "f"]);
    // The line comes from the batch's call and again from the rejected record's own call.
    let line = text
        .lines()
        .find(|l| l.contains("rejecting offset 2") && l.contains("p0 @2 "))
        .unwrap_or_else(|| panic!("no log line for the rejected record alone: {text}"));
    assert!(line.contains("WARN") && line.contains(" v1 "), "{line}");
    let json = replica.ok(&["logs", "f", "--format", "json"]);
    let entry: Value = serde_json::from_str(json.lines().last().expect("a line")).expect("JSON");
    assert_eq!(entry["function"], "f");
    assert_eq!(entry["level"], "warn");
    assert_eq!(entry["offsets"], serde_json::json!([2, 2]));

    let mut follow = Command::new(fnctl_path())
        .args(["logs", "f", "--follow", "--tail", "0"])
        .env("FNCTL_ADMIN", &replica.admin)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fnctl logs --follow");
    std::thread::sleep(Duration::from_millis(700));
    replica.produce("in", &["reject".to_owned()], &[]);
    let (sender, receiver) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let followed = receiver
        .recv_timeout(Duration::from_secs(20))
        .expect("a followed line");
    assert!(followed.contains("rejecting offset 4"), "{followed}");
    let _ = follow.kill();
    let _ = follow.wait();
    let unknown = replica.fnctl(&["logs", "nope"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no function named \"nope\""));
}
