//! A Kafka broker for one test, started by the project's own script and stopped when the
//! test ends (or, should the test process die, by a watchdog that outlives it).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{output_of, stop_after_this_process};

/// A running single-node broker.
pub struct Broker {
    dir: PathBuf,
    /// Its bootstrap address.
    pub address: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka")
}

fn run(args: &[&str], dir: &Path) -> String {
    let mut command = Command::new("bash");
    command.arg(script()).args(args).arg(dir);
    output_of(
        &mut command,
        &format!("scripts/kafka {}", args.join(" ")),
        "",
    )
    .trim()
    .to_owned()
}

impl Broker {
    /// Starts a broker keeping its data in `dir`.
    pub fn start(dir: &Path) -> Broker {
        Broker::start_with(dir, &[])
    }

    /// Starts a broker whose clients log in with SASL/SCRAM-SHA-256 over TLS and may do
    /// only what ACLs grant them; its super user is `admin`.
    pub fn start_secure(dir: &Path) -> Broker {
        Broker::start_with(dir, &["--secure"])
    }

    fn start_with(dir: &Path, flags: &[&str]) -> Broker {
        let mut command = Command::new("bash");
        command.arg(script()).arg("start").arg(dir).args(flags);
        let address = output_of(&mut command, "scripts/kafka start", "")
            .trim()
            .to_owned();
        stop_after_this_process(&script(), dir);
        Broker {
            dir: dir.to_path_buf(),
            address,
        }
    }

    /// The librdkafka settings that log in to a secure broker as `user` with `password`.
    pub fn login(&self, user: &str, password: &str) -> Vec<String> {
        let ca = self.dir.join("tls/ca.pem");
        vec![
            "security.protocol=SASL_SSL".to_owned(),
            "sasl.mechanisms=SCRAM-SHA-256".to_owned(),
            format!("sasl.username={user}"),
            format!("sasl.password={password}"),
            format!("ssl.ca.location={}", ca.display()),
        ]
    }

    /// The librdkafka settings that log in to a secure broker as its super user.
    pub fn admin_login(&self) -> Vec<String> {
        let config = std::fs::read_to_string(self.dir.join("admin.properties"))
            .expect("a secure broker has admin.properties");
        let password = config
            .split("password=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("admin.properties names the admin's password");
        self.login("admin", password)
    }

    /// Adds a SCRAM-SHA-256 user to a secure broker.
    pub fn add_user(&self, user: &str, password: &str) {
        let mut command = Command::new("bash");
        command
            .arg(script())
            .args(["user"])
            .arg(&self.dir)
            .args([user, password]);
        output_of(&mut command, "scripts/kafka user", "");
    }

    /// Grants `principal` (`User:NAME`) `operations` on the resource that `resource`
    /// names as Kafka's ACL tool takes it (`--topic T`, `--group G`, `--transactional-id
    /// I`, with `--resource-pattern-type prefixed` for a prefix).
    pub fn grant(&self, principal: &str, operations: &[&str], resource: &[&str]) {
        let mut args = vec!["--add", "--allow-principal", principal];
        for operation in operations {
            args.extend(["--operation", operation]);
        }
        args.extend_from_slice(resource);
        self.tool("acls", &args, "");
    }

    /// Kills the broker (SIGKILL, as a crash would) and starts it again on the same data
    /// and port.
    pub fn crash_and_restart(&self) {
        self.crash();
        self.start_again();
    }

    /// Kills the broker at once, keeping its data.
    ///
    /// Tests kill it between transactions, never inside one: a cluster's only broker
    /// that stops or restarts leaves its partitions without a leader for a moment, and
    /// the transaction coordinator skips the commit markers of partitions without one
    /// (taking them for deleted), so a transaction it then records as committed stays
    /// open on its partitions, and its offsets pending in the group, for good. A cluster
    /// whose partitions have replicas moves their leaders instead.
    pub fn crash(&self) {
        run(&["kill"], &self.dir);
    }

    /// Starts a stopped broker again on its data and port.
    pub fn start_again(&self) {
        let address = run(&["start"], &self.dir);
        assert_eq!(address, self.address, "the broker came back on its port");
    }

    /// Runs one of Kafka's own command-line tools against the broker, with `input` on
    /// stdin, and returns its stdout.
    pub fn tool(&self, name: &str, args: &[&str], input: &str) -> String {
        let mut command = Command::new("bash");
        command
            .arg(script())
            .arg("tool")
            .arg(&self.dir)
            .arg(name)
            .args(args);
        output_of(&mut command, &format!("kafka tool {name}"), input)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}
