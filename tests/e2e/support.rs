//! What the end-to-end tests share: the demo's replica harness with every step failing
//! the test when it fails (with fnctl's stderr and the replica's log), the built guests,
//! and temporary directories.

// Both test binaries (embedded log and Kafka) include this module; each uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
pub use streamfn_demo::check::counts_exactly_once;
use streamfn_demo::replica;
pub use streamfn_demo::topology;

/// The `fnctl` binary under test.
pub fn fnctl_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fnctl"))
}

/// The target directory the build wrote to.
pub fn target_dir() -> PathBuf {
    fnctl_path()
        .parent()
        .and_then(Path::parent)
        .expect("fnctl lives in target/<profile>/")
        .to_path_buf()
}

/// Where `scripts/build` and `scripts/build-guests` put the guest components.
pub fn guests_dir() -> PathBuf {
    target_dir().join("wasm32-wasip2/release")
}

/// The component of guest `name` (as in `guests/<name>` or `tests/guests/<name>`).
pub fn guest(name: &str) -> PathBuf {
    must(topology::guest(&guests_dir(), name))
}

/// The value of `result`, or the test fails with its error.
pub fn must<T>(result: anyhow::Result<T>) -> T {
    result.unwrap_or_else(|err| panic!("{err:#}"))
}

/// Polls `check` until it returns `Some`, or fails the test after `timeout` saying `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, check: impl FnMut() -> Option<T>) -> T {
    must(replica::wait_for(timeout, what, check))
}

/// A `fnctl serve` process with its own data directory, killed when dropped.
pub struct Replica(replica::Replica);

impl std::ops::Deref for Replica {
    type Target = replica::Replica;

    fn deref(&self) -> &replica::Replica {
        &self.0
    }
}

impl From<replica::Replica> for Replica {
    fn from(replica: replica::Replica) -> Self {
        Replica(replica)
    }
}

impl Replica {
    /// Starts a replica on `data_dir` and waits until `/readyz` answers.
    pub fn start(data_dir: &Path) -> Replica {
        Replica::start_with(data_dir, &[])
    }

    /// Starts a replica on the Kafka cluster at `brokers`.
    pub fn start_on_kafka(data_dir: &Path, brokers: &str, extra: &[&str]) -> Replica {
        let mut args = vec!["--brokers", brokers];
        args.extend_from_slice(extra);
        Replica::start_with(data_dir, &args)
    }

    /// Starts a replica on `data_dir` at loopback port `port`.
    pub fn start_at(data_dir: &Path, port: u16) -> Replica {
        Replica(must(replica::Replica::start_at(
            &fnctl_path(),
            data_dir,
            port,
            &[],
        )))
    }

    /// Starts a replica with extra `fnctl serve` arguments.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Replica {
        Replica(must(replica::Replica::start(
            &fnctl_path(),
            data_dir,
            extra,
        )))
    }

    /// Runs `fnctl` against this replica, whatever its exit.
    pub fn fnctl(&self, args: &[&str]) -> Output {
        must(self.0.fnctl(args))
    }

    /// Runs `fnctl` and returns its stdout, failing the test (with stderr) if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        self.0
            .run(args)
            .unwrap_or_else(|err| panic!("{err:#}\nreplica log:\n{}", self.log_text()))
    }

    /// Runs `fnctl` with `input` on stdin, failing the test if it fails.
    pub fn ok_with_input(&self, args: &[&str], input: &str) -> String {
        must(self.0.run_with_input(args, input))
    }

    /// Deploys `component` as function `name` with further `deploy` arguments (inputs,
    /// outputs, limits), failing the test if it fails.
    pub fn deploy(&self, component: &Path, name: &str, args: &[&str]) -> String {
        self.0
            .deploy(component, name, args)
            .unwrap_or_else(|err| panic!("{err:#}\nreplica log:\n{}", self.log_text()))
    }

    /// Produces one record per line of `lines` to `topic` with `extra` arguments.
    pub fn produce(&self, topic: &str, lines: &[String], extra: &[&str]) {
        must(self.0.produce(topic, lines, extra));
    }

    /// Every record of `topic`, as printed by `fnctl consume --from-beginning`.
    pub fn consume(&self, topic: &str) -> Vec<Value> {
        must(self.0.consume(topic))
    }

    /// The values of every record of `topic`, sorted.
    pub fn sorted_values(&self, topic: &str) -> Vec<String> {
        let mut values: Vec<String> = self
            .consume(topic)
            .iter()
            .map(|r| value(r).to_owned())
            .collect();
        values.sort();
        values
    }

    /// Waits until `function` has handled everything on its inputs.
    pub fn wait_drained(&self, function: &str, timeout: Duration) -> Value {
        self.0
            .wait_drained(function, timeout)
            .unwrap_or_else(|err| panic!("{err:#}\nreplica log:\n{}", self.log_text()))
    }

    /// Waits until `function` has taken in more than `records` records: on a loaded
    /// machine a replica on Kafka may take a while to join its group and restore.
    pub fn wait_processing(&self, function: &str, records: u64) {
        wait_for(Duration::from_secs(120), "processing to start", || {
            let (_, body) = self.http_get(&format!("/v1/deployments/{function}"))?;
            let status: Value = serde_json::from_str(&body).ok()?;
            (status["records_in"].as_u64()? > records).then_some(())
        });
    }

    /// The replica's id, as status shows it in partition owners.
    pub fn id(&self) -> String {
        must(self.0.id())
    }

    /// Kills the replica with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        self.0.kill();
    }

    /// Stops the replica as an operator would, with SIGTERM.
    pub fn stop(self) {
        self.0.stop();
    }
}

/// The value of a consumed record, as text; the test fails when it has none.
pub fn value(record: &Value) -> &str {
    must(streamfn_demo::check::value(record))
}

/// The counts the counter guest wrote in `records` (`KEY:COUNT` values), per key in the
/// order they were written.
pub fn counts_by_key(records: &[Value]) -> std::collections::BTreeMap<String, Vec<u64>> {
    let mut counts: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for record in records {
        let (key, count) = value(record).split_once(':').expect("key:count");
        counts
            .entry(key.to_owned())
            .or_default()
            .push(count.parse().expect("a count"));
    }
    counts
}

/// A header of a consumed record; the test fails when it has none.
pub fn header<'a>(record: &'a Value, name: &str) -> &'a str {
    must(streamfn_demo::check::header(record, name))
}

/// A fresh temporary directory, removed when the returned guard drops, unless
/// `STREAMFN_TEST_KEEP_DIRS` is set: then it stays, with the replicas' and brokers' logs
/// in it, for a look after a failure.
pub fn temp_dir() -> tempfile::TempDir {
    let keep = std::env::var_os("STREAMFN_TEST_KEEP_DIRS").is_some();
    let dir = tempfile::Builder::new()
        .prefix("streamfn-e2e")
        .disable_cleanup(keep)
        .tempdir()
        .expect("a temp dir");
    if keep {
        eprintln!("test directory kept: {}", dir.path().display());
    }
    dir
}

/// Runs `command` with `input` on its stdin; returns its stdout, failing the test with its
/// stderr (naming it `what`) when it fails.
pub fn output_of(command: &mut std::process::Command, what: &str, input: &str) -> String {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .unwrap_or_else(|e| panic!("{what} does not read its input: {e}"));
    let output = child.wait_with_output().expect("the command ends");
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `SCRIPT stop DIR` once this test process is gone, however it goes, for a server a
/// script started in its own session.
// The watchdog is meant to outlive this process, so it is never waited for.
#[allow(clippy::zombie_processes)]
pub fn stop_after_this_process(script: &Path, dir: &Path) {
    let watchdog = format!(
        "while kill -0 {} 2>/dev/null; do sleep 1; done; exec bash '{}' stop '{}'",
        std::process::id(),
        script.display(),
        dir.display()
    );
    std::process::Command::new("sh")
        .args(["-c", &watchdog])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the watchdog starts");
}
