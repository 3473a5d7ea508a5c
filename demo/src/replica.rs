//! A replica driven the way a user drives one: `fnctl serve` started on a free loopback
//! port with its own data directory, and `fnctl` commands run against it. The demo and
//! the end-to-end tests (embedded log and Kafka) share it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// How long a replica may take to answer `/readyz` after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A `fnctl serve` process, killed when dropped.
pub struct Replica {
    fnctl: PathBuf,
    child: Option<Child>,
    /// Admin API URL.
    pub admin: String,
    /// Kafka brokers the replica runs on, also handed to every `fnctl` run.
    pub brokers: Option<String>,
    /// The replica's `--kafka-option` settings, also handed to every `fnctl` run.
    kafka_options: Vec<String>,
    log: PathBuf,
}

/// Polls `check` every few milliseconds until it returns `Some`, or fails after `timeout`
/// saying what it waited for.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Replica {
    /// Starts `fnctl serve` (the binary at `fnctl`) on `data_dir` with further `serve`
    /// arguments (`--brokers ...` for Kafka), and waits until it is ready. Its log goes
    /// next to the data directory.
    pub fn start(fnctl: &Path, data_dir: &Path, args: &[&str]) -> Result<Replica> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        Replica::start_at(fnctl, data_dir, port, args)
    }

    /// Starts `fnctl serve` as [`Replica::start`] does, on loopback port `port` (that of
    /// a replica that was killed, say, for its clients to find it again).
    pub fn start_at(fnctl: &Path, data_dir: &Path, port: u16, args: &[&str]) -> Result<Replica> {
        let log = data_dir.with_extension(format!("{port}.log"));
        let child = Command::new(fnctl)
            .args([
                "serve",
                "--admin-listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data_dir)
            .args(args)
            .env("STREAMFN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).context("creating the replica's log")?)
            .spawn()
            .with_context(|| format!("starting {}", fnctl.display()))?;
        let brokers = args
            .iter()
            .position(|a| *a == "--brokers")
            .and_then(|i| args.get(i + 1))
            .map(|b| (*b).to_owned());
        let kafka_options = args
            .windows(2)
            .filter(|pair| pair[0] == "--kafka-option")
            .map(|pair| pair[1].to_owned())
            .collect();
        let mut replica = Replica {
            fnctl: fnctl.to_path_buf(),
            child: Some(child),
            admin: format!("http://127.0.0.1:{port}"),
            brokers,
            kafka_options,
            log,
        };
        let ready = wait_for(START_TIMEOUT, "the replica to be ready", || {
            if replica.exited() {
                return Some(false);
            }
            replica
                .http_get("/readyz")
                .filter(|(status, _)| *status == 200)
                .map(|_| true)
        })
        .and_then(|ready| {
            ready
                .then_some(())
                .context("the replica exited as it started")
        });
        if let Err(err) = ready {
            replica.kill();
            bail!("{err:#}; its log:\n{}", replica.log_text());
        }
        Ok(replica)
    }

    /// A replica someone else started, answering at `admin`: it is not stopped when
    /// dropped, and has no log here.
    pub fn attach(fnctl: &Path, admin: &str) -> Replica {
        Replica {
            fnctl: fnctl.to_path_buf(),
            child: None,
            admin: admin.to_owned(),
            brokers: None,
            kafka_options: Vec::new(),
            log: PathBuf::new(),
        }
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|child| !matches!(child.try_wait(), Ok(None)))
    }

    /// `fnctl args` aimed at this replica (and its Kafka cluster).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.fnctl);
        for option in &self.kafka_options {
            command.args(["--kafka-option", option]);
        }
        command.args(args).env("FNCTL_ADMIN", &self.admin);
        match &self.brokers {
            Some(brokers) => command.env("FNCTL_BROKERS", brokers),
            None => command.env_remove("FNCTL_BROKERS"),
        };
        command
    }

    /// Runs `fnctl args` against this replica, whatever its exit.
    pub fn fnctl(&self, args: &[&str]) -> Result<Output> {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", self.fnctl.display()))
    }

    /// Runs `fnctl args` and returns its stdout; an error with its stderr if it fails.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        checked(args, self.fnctl(args)?)
    }

    /// Runs `fnctl args` with `input` on stdin; its stdout, or an error with its stderr.
    pub fn run_with_input(&self, args: &[&str], input: &str) -> Result<String> {
        use std::io::Write as _;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", self.fnctl.display()))?;
        child
            .stdin
            .take()
            .context("stdin is piped")?
            .write_all(input.as_bytes())
            .context("writing to fnctl's stdin")?;
        checked(args, child.wait_with_output()?)
    }

    /// Deploys `component` as function `name` with further `deploy` arguments (inputs,
    /// outputs, limits).
    pub fn deploy(&self, component: &Path, name: &str, args: &[&str]) -> Result<String> {
        let file = component
            .to_str()
            .with_context(|| format!("{} is not UTF-8", component.display()))?;
        let mut all = vec!["deploy", file, "--name", name];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// Produces one record per line of `lines` to `topic` with `extra` arguments.
    pub fn produce(&self, topic: &str, lines: &[String], extra: &[&str]) -> Result<()> {
        let mut args = vec!["produce", topic];
        args.extend_from_slice(extra);
        self.run_with_input(&args, &(lines.join("\n") + "\n"))?;
        Ok(())
    }

    /// Every record of `topic`, as `fnctl consume --from-beginning` prints it.
    pub fn consume(&self, topic: &str) -> Result<Vec<Value>> {
        self.consume_with(topic, &[])
    }

    /// Every record of `topic`, as `fnctl consume --from-beginning` with further
    /// arguments `extra` prints it.
    pub fn consume_with(&self, topic: &str, extra: &[&str]) -> Result<Vec<Value>> {
        // A Kafka consumer needs a moment to find the partitions' leaders.
        let idle = if self.brokers.is_some() { "3" } else { "0.3" };
        let mut args = vec!["consume", topic, "--from-beginning", "--timeout", idle];
        args.extend_from_slice(extra);
        self.run(&args)?
            .lines()
            .map(|line| {
                serde_json::from_str(line).with_context(|| {
                    format!("fnctl consume printed a line that is not JSON: {line}")
                })
            })
            .collect()
    }

    /// The status of every deployed function, as `fnctl status --format json` prints it.
    pub fn statuses(&self) -> Result<Vec<Value>> {
        let out = self.run(&["status", "--format", "json"])?;
        serde_json::from_str(&out).context("fnctl status printed something that is not JSON")
    }

    /// Waits until `function` has handled everything on its inputs, a replay it was asked
    /// for included; returns its status.
    pub fn wait_drained(&self, function: &str, timeout: Duration) -> Result<Value> {
        wait_for(timeout, &format!("{function} to catch up"), || {
            let out = self.fnctl(&["status", function, "--format", "json"]).ok()?;
            if !out.status.success() {
                return None;
            }
            let status: Value = serde_json::from_slice(&out.stdout).ok()?;
            let status = status.get(0)?.clone();
            let replaying = status.get("replay").is_some_and(|replay| {
                replay["waiting"].as_u64() != Some(0) || replay["left"].as_u64() != Some(0)
            });
            (status["lag"].as_u64() == Some(0) && !replaying).then_some(status)
        })
    }

    /// Waits until every function has read all its input, twice in a row (a function
    /// that writes to another's input needs the second look).
    pub fn wait_all_drained(&self, timeout: Duration) -> Result<()> {
        let mut quiet = 0;
        wait_for(timeout, "every function to catch up", || {
            std::thread::sleep(Duration::from_millis(300));
            let lag: u64 = self
                .statuses()
                .ok()?
                .iter()
                .map(|s| s["lag"].as_u64().unwrap_or(u64::MAX))
                .sum();
            quiet = if lag == 0 { quiet + 1 } else { 0 };
            (quiet >= 2).then_some(())
        })
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

    /// The replica's id, as status shows it in partition owners.
    pub fn id(&self) -> Result<String> {
        let (_, body) = self
            .http_get("/v1/replica")
            .context("the replica does not answer")?;
        let info: Value = serde_json::from_str(&body)?;
        info["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("/v1/replica has no id: {body}"))
    }

    /// The process id of `fnctl serve`, when this harness started it.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The loopback port of the admin API.
    pub fn port(&self) -> Option<u16> {
        self.admin.rsplit(':').next()?.parse().ok()
    }

    /// The replica's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where the replica's log is.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Kills the replica with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the replica as an operator would (SIGTERM), waiting up to 10 s for it.
    pub fn stop(mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The stdout of a finished `fnctl args`, or an error with what it printed to stderr.
fn checked(args: &[&str], output: Output) -> Result<String> {
    if !output.status.success() {
        bail!(
            "fnctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
