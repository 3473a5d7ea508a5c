//! Helpers shared by the end-to-end tests: starting and stopping replicas on free
//! loopback ports, running `fnctl` against them, reading topics back.

// Both test binaries (embedded log and Kafka) include this module; each uses part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

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

/// The component of guest crate `name` (as in `guests/<name>`), built by `scripts/build`.
pub fn guest(name: &str) -> PathBuf {
    let dir = target_dir().join("wasm32-wasip2/release");
    let path = [name.replace('-', "_"), name.to_owned()]
        .into_iter()
        .map(|file| dir.join(format!("{file}.wasm")))
        .find(|p| p.exists());
    path.unwrap_or_else(|| {
        panic!(
            "guest {name} is not built in {}: run scripts/build and scripts/build-guests first",
            dir.display()
        )
    })
}

/// Polls `check` until it returns `Some`, or panics after `timeout` saying `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A `fnctl serve` process with its own data directory, killed when dropped.
pub struct Replica {
    child: Option<Child>,
    /// Admin API URL.
    pub admin: String,
    /// Kafka brokers the replica runs on, also handed to every `fnctl` run.
    pub brokers: Option<String>,
    log: PathBuf,
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
        let mut replica = Replica::start_with(data_dir, &args);
        replica.brokers = Some(brokers.to_owned());
        replica
    }

    /// Starts a replica with extra `fnctl serve` arguments.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Replica {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = data_dir.with_extension(format!("{port}.log"));
        let child = Command::new(fnctl_path())
            .args([
                "serve",
                "--admin-listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data_dir)
            .args(extra)
            .env("STREAMFN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("fnctl serve starts");
        let replica = Replica {
            child: Some(child),
            admin: format!("http://127.0.0.1:{port}"),
            brokers: None,
            log,
        };
        wait_for(Duration::from_secs(30), "the replica to be ready", || {
            replica
                .http_get("/readyz")
                .filter(|(status, _)| *status == 200)
        });
        replica
    }

    /// `fnctl args` aimed at this replica (and its Kafka cluster).
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(fnctl_path());
        command.args(args).env("FNCTL_ADMIN", &self.admin);
        match &self.brokers {
            Some(brokers) => command.env("FNCTL_BROKERS", brokers),
            None => command.env_remove("FNCTL_BROKERS"),
        };
        command
    }

    /// The replica's id, as status shows it in partition owners.
    pub fn id(&self) -> String {
        let (_, body) = self.http_get("/v1/replica").expect("the replica answers");
        let info: Value = serde_json::from_str(&body).expect("json");
        info["id"].as_str().expect("an id").to_owned()
    }

    /// A GET of the admin API: (status, body), or `None` when it does not answer.
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        let mut response = ureq::get(format!("{}{path}", self.admin))
            .config()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .call()
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.body_mut().read_to_string().ok()?))
    }

    /// Runs `fnctl` against this replica.
    pub fn fnctl(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("fnctl runs")
    }

    /// Runs `fnctl` and returns its stdout, failing the test (with stderr) if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.fnctl(args);
        assert!(
            output.status.success(),
            "fnctl {} failed: {}\nreplica log:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr),
            self.log_text()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Deploys `component` as function `name` with further `deploy` arguments (inputs,
    /// outputs, limits), failing the test if it fails.
    pub fn deploy(&self, component: &Path, name: &str, args: &[&str]) -> String {
        let mut all = vec![
            "deploy",
            component.to_str().expect("utf-8 path"),
            "--name",
            name,
        ];
        all.extend_from_slice(args);
        self.ok(&all)
    }

    /// Runs `fnctl` with `input` on stdin, failing the test if it fails.
    pub fn ok_with_input(&self, args: &[&str], input: &str) -> String {
        use std::io::Write as _;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("fnctl runs");
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(input.as_bytes())
            .expect("write stdin");
        let output = child.wait_with_output().expect("fnctl ends");
        assert!(
            output.status.success(),
            "fnctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Produces one record per line of `lines` to `topic` with `extra` arguments.
    pub fn produce(&self, topic: &str, lines: &[String], extra: &[&str]) {
        let mut args = vec!["produce", topic];
        args.extend_from_slice(extra);
        self.ok_with_input(&args, &(lines.join("\n") + "\n"));
    }

    /// Every record of `topic`, as printed by `fnctl consume --from-beginning`.
    pub fn consume(&self, topic: &str) -> Vec<Value> {
        // A Kafka consumer needs a moment to find the partitions' leaders.
        let idle = if self.brokers.is_some() { "3" } else { "0.3" };
        self.ok(&["consume", topic, "--from-beginning", "--timeout", idle])
            .lines()
            .map(|l| serde_json::from_str(l).expect("consume prints JSON lines"))
            .collect()
    }

    /// Waits until `function` has handled everything on its inputs.
    pub fn wait_drained(&self, function: &str, timeout: Duration) -> Value {
        wait_for(timeout, &format!("{function} to catch up"), || {
            let out = self.fnctl(&["status", function, "--output", "json"]);
            if !out.status.success() {
                return None;
            }
            let status: Value = serde_json::from_slice(&out.stdout).ok()?;
            let status = status.get(0)?.clone();
            (status["lag"].as_u64() == Some(0)).then_some(status)
        })
    }

    /// The replica's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the replica with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of a consumed record, as text.
pub fn value(record: &Value) -> &str {
    record["value"].as_str().unwrap_or_default()
}

/// A header of a consumed record.
pub fn header<'a>(record: &'a Value, name: &str) -> &'a str {
    record["headers"][name].as_str().unwrap_or_default()
}

/// A fresh temporary directory, removed when the returned guard drops.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("streamfn-e2e")
        .tempdir()
        .expect("a temp dir")
}
