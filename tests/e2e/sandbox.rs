//! The sandbox: a guest sees no file, no environment variable, no socket, and no time but
//! what the contract gives it.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;

use crate::support::{Replica, guest, temp_dir, value};

#[test]
fn a_guest_reaches_no_file_no_environment_no_socket_and_no_clock() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("data"));
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    listener.set_nonblocking(true).expect("nonblocking");
    let address = listener.local_addr().expect("address").to_string();
    replica.ok(&["topics", "create", "in", "--partitions", "1"]);
    let wasm = guest("test-sandbox");
    replica.deploy(&wasm, "probe", &["--input", "in", "--output", "out"]);
    replica.produce("in", &[address], &[]);
    replica.wait_drained("probe", Duration::from_secs(30));

    let out = replica.consume("out");
    assert_eq!(out.len(), 1, "{out:?}");
    let report: Value = serde_json::from_str(value(&out[0])).expect("report JSON");
    assert_eq!(report["root_entries"], Value::Array(vec![]), "{report}");
    assert!(
        report["open_file"]
            .as_str()
            .is_some_and(|s| s.starts_with("error")),
        "{report}"
    );
    assert_eq!(report["env_vars"], Value::Array(vec![]), "{report}");
    assert!(
        report["socket"]
            .as_str()
            .is_some_and(|s| s.starts_with("error")),
        "{report}"
    );
    assert_eq!(
        report["wall_clock_ms"],
        Value::from(0),
        "the wall clock stands at the epoch"
    );
    assert_eq!(
        report["monotonic_elapsed_ns"],
        Value::from(0),
        "the monotonic clock stands still"
    );
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "no connection reached the listener"
    );
}
