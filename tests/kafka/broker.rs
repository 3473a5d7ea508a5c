//! A Kafka broker for one test, started by the project's own script and stopped when the
//! test ends (or, should the test process die, by a watchdog that outlives it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
    let output = Command::new("bash")
        .arg(script())
        .args(args)
        .arg(dir)
        .output()
        .expect("scripts/kafka runs");
    assert!(
        output.status.success(),
        "scripts/kafka {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl Broker {
    /// Starts a broker keeping its data in `dir`.
    // The watchdog is meant to outlive this process, so it is never waited for.
    #[allow(clippy::zombie_processes)]
    pub fn start(dir: &Path) -> Broker {
        let address = run(&["start"], dir);
        // The broker runs in its own session; stop it when this process goes away.
        let watchdog = format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; exec bash '{}' stop '{}'",
            std::process::id(),
            script().display(),
            dir.display()
        );
        Command::new("sh")
            .args(["-c", &watchdog])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the watchdog starts");
        Broker {
            dir: dir.to_path_buf(),
            address,
        }
    }

    /// Stops the broker and starts it again on the same data and port.
    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// Stops the broker, keeping its data.
    pub fn stop(&self) {
        run(&["stop"], &self.dir);
    }

    /// Starts a stopped broker again on its data and port.
    pub fn start_again(&self) {
        let address = run(&["start"], &self.dir);
        assert_eq!(address, self.address, "the broker came back on its port");
    }

    /// Runs one of Kafka's own command-line tools against the broker, with `input` on
    /// stdin, and returns its stdout.
    pub fn tool(&self, name: &str, args: &[&str], input: &str) -> String {
        use std::io::Write as _;
        let mut child = Command::new("bash")
            .arg(script())
            .arg("tool")
            .arg(&self.dir)
            .arg(name)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("a Kafka tool runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        let output = child.wait_with_output().expect("the tool ends");
        assert!(
            output.status.success(),
            "kafka tool {name} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
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
