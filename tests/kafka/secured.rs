//! Replicas on a secured cluster, as production clusters run: every client logs in with
//! SASL/SCRAM-SHA-256 over TLS, and the broker's authorizer lets a principal do only what
//! its ACLs grant. A replica gets nothing but `--kafka-option` settings and the ACLs that
//! README lists, and runs a function exactly once; a function, or a replica, that lacks
//! an ACL fails with a message naming it instead of hanging.

use std::time::Duration;

use serde_json::Value;

use crate::broker::Broker;
use crate::support::{
    Replica, counts_exactly_once, fnctl_path, guest, must, output_of, temp_dir, value, wait_for,
};

/// The replica's principal.
const USER: &str = "streamfn";
const PASSWORD: &str = "streamfn-secret";
const PRINCIPAL: &str = "User:streamfn";

/// The ACLs every replica needs, whatever it runs (README, "Secured clusters").
fn grant_replica(broker: &Broker) {
    let prefixed = ["--resource-pattern-type", "prefixed"];
    broker.grant(
        PRINCIPAL,
        &["Read", "Write", "Create"],
        &[&["--topic", "_streamfn_"][..], &prefixed].concat(),
    );
    broker.grant(
        PRINCIPAL,
        &["Write"],
        &[&["--transactional-id", "streamfn-"][..], &prefixed].concat(),
    );
}

/// The ACLs a replica needs to run function `name`, reading `inputs` and writing
/// `outputs` (README, "Secured clusters").
fn grant_function(broker: &Broker, name: &str, inputs: &[&str], outputs: &[&str]) {
    broker.grant(PRINCIPAL, &["Read"], &["--group", name]);
    for input in inputs {
        broker.grant(PRINCIPAL, &["Read"], &["--topic", input]);
    }
    for output in outputs {
        broker.grant(PRINCIPAL, &["Write", "Create"], &["--topic", output]);
    }
    let dlq = format!("{name}-dlq");
    broker.grant(PRINCIPAL, &["Write", "Create"], &["--topic", &dlq]);
    let changelog = format!("{name}-changelog");
    broker.grant(
        PRINCIPAL,
        &["Read", "Write", "Create"],
        &["--topic", &changelog],
    );
}

/// Runs `fnctl args` logged in with `login`, whatever its exit.
fn try_fnctl_as(broker: &Broker, login: &[String], args: &[&str]) -> std::process::Output {
    fnctl_command(broker, login, args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("fnctl runs")
}

/// `fnctl args` logged in to `broker` with `login`: what an operator runs beside the
/// replica.
fn fnctl_command(broker: &Broker, login: &[String], args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(fnctl_path());
    command.args(["--brokers", &broker.address]);
    for option in login {
        command.args(["--kafka-option", option]);
    }
    command.args(args);
    command
}

/// Runs `fnctl args` logged in with `login` and `input` on stdin; its stdout.
fn fnctl_as(broker: &Broker, login: &[String], args: &[&str], input: &str) -> String {
    let mut command = fnctl_command(broker, login, args);
    output_of(&mut command, &format!("fnctl {}", args.join(" ")), input)
}

/// The replica's `serve` arguments: the brokers and the login, as `--kafka-option`s.
fn replica_args(broker: &Broker, login: &[String]) -> Vec<String> {
    let mut args = Vec::new();
    for option in login {
        args.extend(["--kafka-option".to_owned(), option.clone()]);
    }
    args.extend(["--brokers".to_owned(), broker.address.clone()]);
    args
}

/// Waits until `function`'s status says it fails, and returns what it says.
fn failure_of(replica: &Replica, function: &str) -> String {
    wait_for(Duration::from_secs(90), "the function to fail", || {
        let out = replica.fnctl(&["status", function, "--format", "json"]);
        let status: Value = serde_json::from_slice(&out.stdout).ok()?;
        status[0]["failing"].as_str().map(str::to_owned)
    })
}

#[test]
fn a_replica_runs_a_function_exactly_once_on_a_secured_cluster_and_a_missing_acl_is_named() {
    let dir = temp_dir();
    let broker = Broker::start_secure(&dir.path().join("kafka"));
    let admin = broker.admin_login();
    broker.add_user(USER, PASSWORD);
    fnctl_as(
        &broker,
        &admin,
        &["topics", "create", "events", "--partitions", "2"],
        "",
    );
    grant_replica(&broker);
    grant_function(&broker, "counter", &["events"], &["out"]);

    let login = broker.login(USER, PASSWORD);
    let args = replica_args(&broker, &login);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let replica = Replica::start_with(&dir.path().join("replica"), &args);
    let counter = guest("test-counter");
    replica.deploy(
        &counter,
        "counter",
        &["--input", "events", "--output", "out"],
    );
    let total = 2_000;
    let lines: Vec<String> = (0..total)
        .map(|i| serde_json::json!({ "k": format!("k{}", i % 10), "i": i }).to_string())
        .collect();
    fnctl_as(
        &broker,
        &admin,
        &["produce", "events", "--key-field", "k"],
        &(lines.join("\n") + "\n"),
    );
    replica.wait_drained("counter", Duration::from_secs(120));
    let out = fnctl_as(
        &broker,
        &admin,
        &["consume", "out", "--from-beginning", "--timeout", "3"],
        "",
    );
    let counts: Vec<String> = out
        .lines()
        .map(|line| value(&serde_json::from_str(line).expect("JSON")).to_owned())
        .collect();
    must(counts_exactly_once(
        counts.iter().map(String::as_str),
        10,
        total,
    ));

    // A producer the authorizer refuses is told so, and nothing is written.
    let refused = try_fnctl_as(
        &broker,
        &login,
        &["produce", "events", "--file", "/dev/null"],
    );
    assert!(refused.status.success(), "nothing to produce is no error");
    let lines_file = dir.path().join("more.jsonl");
    std::fs::write(&lines_file, "{\"k\":\"k1\"}\n").expect("write");
    let file = lines_file.to_str().expect("UTF-8 path");
    let refused = try_fnctl_as(&broker, &login, &["produce", "events", "--file", file]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && said.contains("WRITE on topic events"),
        "a refused produce fails and names the ACL: {said}"
    );

    // A second function whose consumer group nobody granted the replica.
    broker.grant(
        PRINCIPAL,
        &["Write", "Create"],
        &["--topic", "uncounted-dlq"],
    );
    broker.grant(
        PRINCIPAL,
        &["Read", "Write", "Create"],
        &["--topic", "uncounted-changelog"],
    );
    replica.deploy(
        &counter,
        "uncounted",
        &["--input", "events", "--output", "out"],
    );
    let failure = failure_of(&replica, "uncounted");
    assert!(
        failure.contains("group uncounted") && failure.contains("READ"),
        "the failure names the missing ACL: {failure}"
    );
}

#[test]
fn a_replica_whose_principal_lacks_its_acls_says_which_and_does_not_start() {
    let dir = temp_dir();
    let broker = Broker::start_secure(&dir.path().join("kafka"));
    broker.add_user(USER, PASSWORD);
    let login = broker.login(USER, PASSWORD);
    let args = replica_args(&broker, &login);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let fnctl = fnctl_path();
    let started = streamfn_demo::replica::Replica::start(&fnctl, &dir.path().join("r"), &args);
    let err = match started {
        Ok(_) => panic!("a replica without ACLs started"),
        Err(err) => format!("{err:#}"),
    };
    assert!(
        err.contains("DESCRIBE on topic _streamfn_replicas"),
        "the error names the missing ACL: {err}"
    );
}
