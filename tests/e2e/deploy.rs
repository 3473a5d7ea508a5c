//! Bad input is refused with a message that says what is wrong, and changes nothing:
//! files that are not components, components of another world, unknown topics, limits out
//! of range, records over the size limit.

use std::time::Duration;

use crate::support::{Replica, guest, temp_dir};

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn deploying_what_is_not_a_streamfn_component_fails_clearly_and_changes_nothing() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("data"));
    replica.ok(&["topics", "create", "in", "--partitions", "2"]);
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"this is not webassembly at all").expect("write");
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").expect("write");
    let other = guest("test-other-world");
    let missing = dir.path().join("missing.wasm");
    let passthrough = guest("passthrough");
    let cases: [(&std::path::Path, &[&str], &str); 6] = [
        (&junk, &[], "not WebAssembly"),
        (&core, &[], "core WebAssembly module, not a component"),
        (&other, &[], "does not fit the Streamfn contract"),
        (&missing, &[], "cannot read"),
        (
            &passthrough,
            &["--memory", "5000"],
            "memory must be between 1 and 1024 MiB",
        ),
        (
            &passthrough,
            &["--input", "nope"],
            "topic \"nope\" does not exist",
        ),
    ];
    for (file, extra, message) in cases {
        let mut args = vec![
            "deploy",
            file.to_str().expect("utf-8"),
            "--name",
            "f",
            "--input",
            "in",
            "--output",
            "out",
        ];
        args.extend_from_slice(extra);
        let output = replica.fnctl(&args);
        assert!(
            !output.status.success(),
            "deploying {} {extra:?} should fail",
            file.display()
        );
        let stderr = stderr_of(&output);
        assert!(
            stderr.contains(message),
            "deploying {} {extra:?}: {stderr:?} lacks {message:?}",
            file.display()
        );
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
    let list = replica.ok(&["list"]);
    assert!(list.contains("no functions deployed"), "{list}");
    let topics = replica.ok(&["topics", "list", "--format", "json"]);
    let topics: Vec<serde_json::Value> = serde_json::from_str(&topics).expect("json");
    let names: Vec<&str> = topics.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, vec!["in"], "a failed deploy creates no topics");
}

#[test]
fn oversized_and_misaddressed_records_are_refused_and_nothing_is_written() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("data"));
    replica.ok(&["topics", "create", "in", "--partitions", "2"]);
    let big = "x".repeat(2 << 20);
    let output = replica.fnctl(&[
        "produce",
        "in",
        "--file",
        &write(&dir, "big.txt", &format!("small\n{big}\n")),
    ]);
    assert!(!output.status.success());
    assert!(
        stderr_of(&output).contains("the largest record accepted is 1048576 bytes"),
        "{}",
        stderr_of(&output)
    );
    let output = replica.fnctl(&[
        "produce",
        "in",
        "--partition",
        "7",
        "--file",
        &write(&dir, "one.txt", "one\n"),
    ]);
    assert!(!output.status.success());
    assert!(
        stderr_of(&output).contains("has no partition 7"),
        "{}",
        stderr_of(&output)
    );
    let output = replica.fnctl(&[
        "produce",
        "nowhere",
        "--file",
        &write(&dir, "one.txt", "one\n"),
    ]);
    assert!(
        stderr_of(&output).contains("topic \"nowhere\" does not exist"),
        "{}",
        stderr_of(&output)
    );
    let output = replica.fnctl(&[
        "produce",
        "in",
        "--key-field",
        "id",
        "--file",
        &write(&dir, "nojson.txt", "{\"id\": 1}\nnot json\n"),
    ]);
    assert!(
        stderr_of(&output).contains("line 2 is not JSON"),
        "{}",
        stderr_of(&output)
    );
    assert!(
        replica.consume("in").is_empty(),
        "a refused batch writes nothing"
    );
}

#[test]
fn fnctl_says_how_to_reach_a_replica_when_none_answers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let output = std::process::Command::new(crate::support::fnctl_path())
        .args(["list", "--admin", &format!("http://127.0.0.1:{port}")])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("cannot reach the replica") && stderr.contains("fnctl serve"),
        "{stderr}"
    );
}

#[test]
fn a_second_replica_on_the_same_data_directory_is_refused() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let _first = Replica::start(&data);
    let output = std::process::Command::new(crate::support::fnctl_path())
        .args(["serve", "--admin-listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = stderr_of(&output);
    assert!(stderr.contains("another replica"), "{stderr}");
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write");
    path.to_str().expect("utf-8").to_owned()
}

#[test]
fn a_replica_with_a_token_refuses_requests_without_it() {
    let dir = temp_dir();
    let replica = Replica::start_with(&dir.path().join("data"), &["--admin-token", "s3cret"]);
    let refused = replica.fnctl(&["list"]);
    assert!(!refused.status.success());
    assert!(
        stderr_of(&refused).contains("missing or wrong admin token"),
        "{}",
        stderr_of(&refused)
    );
    let wrong = replica.fnctl(&["list", "--token", "guess"]);
    assert!(!wrong.status.success());
    assert!(
        replica
            .ok(&["list", "--token", "s3cret"])
            .contains("no functions deployed")
    );
    assert_eq!(
        replica.http_get("/healthz").map(|(status, _)| status),
        Some(200)
    );

    let open = std::process::Command::new(crate::support::fnctl_path())
        .args(["serve", "--admin-listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("other"))
        .output()
        .expect("runs");
    assert!(!open.status.success());
    assert!(
        stderr_of(&open).contains("set --admin-token"),
        "{}",
        stderr_of(&open)
    );
}

#[test]
fn every_flag_of_deploy_has_one_meaning() {
    let help = std::process::Command::new(crate::support::fnctl_path())
        .args(["deploy", "--help"])
        .output()
        .expect("runs");
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    let flag = |name: &str| {
        text.lines()
            .filter(|l| l.trim_start().starts_with(name))
            .count()
    };
    assert_eq!(
        flag("--output <"),
        1,
        "--output names an output topic:\n{text}"
    );
    assert_eq!(flag("--format <"), 1, "--format names the format:\n{text}");
    assert!(
        !text.contains("-o,"),
        "no short flag means two things:\n{text}"
    );
    let topic = text
        .split("--output <")
        .nth(1)
        .and_then(|rest| rest.split("\n      --").next())
        .unwrap_or_default();
    assert!(topic.contains("Topic the function may emit to"), "{topic}");
}

#[test]
fn an_empty_admin_token_is_refused_and_plain_http_off_loopback_is_warned_of() {
    let dir = temp_dir();
    let empty = std::process::Command::new(crate::support::fnctl_path())
        .args([
            "serve",
            "--admin-listen",
            "127.0.0.1:0",
            "--admin-token",
            "",
            "--data-dir",
        ])
        .arg(dir.path().join("a"))
        .output()
        .expect("runs");
    assert!(!empty.status.success());
    assert!(
        stderr_of(&empty).contains("the admin token is empty"),
        "{}",
        stderr_of(&empty)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let log = dir.path().join("b.log");
    let mut open = std::process::Command::new(crate::support::fnctl_path())
        .args([
            "serve",
            "--admin-listen",
            &format!("0.0.0.0:{port}"),
            "--admin-token",
            "s3cret",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("b"))
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("fnctl serve");
    let attached = streamfn_demo::replica::Replica::attach(
        &crate::support::fnctl_path(),
        &format!("http://127.0.0.1:{port}"),
    );
    crate::support::wait_for(Duration::from_secs(30), "the replica", || {
        attached.http_get("/healthz")
    });
    let _ = open.kill();
    let _ = open.wait();
    let text = std::fs::read_to_string(&log).expect("the log");
    assert!(
        text.contains("WARN") && text.contains("plain HTTP") && text.contains("--admin-tls-cert"),
        "{text}"
    );
}

/// Runs openssl with `args` in `dir`; false when openssl cannot run here.
fn openssl(dir: &std::path::Path, args: &[&str]) -> bool {
    std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn the_admin_api_serves_tls_and_fnctl_checks_the_certificate() {
    let dir = temp_dir();
    let certs = dir.path();
    std::fs::write(
        certs.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write");
    let made = openssl(
        certs,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=streamfn test CA",
        ],
    ) && openssl(
        certs,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ) && openssl(
        certs,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    if !made {
        eprintln!("skipped: openssl cannot make test certificates here");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut serve = std::process::Command::new(crate::support::fnctl_path())
        .args([
            "serve",
            "--admin-listen",
            &format!("127.0.0.1:{port}"),
            "--admin-token",
            "t0k3n",
        ])
        .arg("--admin-tls-cert")
        .arg(certs.join("server.pem"))
        .arg("--admin-tls-key")
        .arg(certs.join("server.key"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("fnctl serve");
    let https = format!("https://127.0.0.1:{port}");
    let ca = certs.join("ca.pem");
    let fnctl = |admin: &str, extra: &[&str]| {
        std::process::Command::new(crate::support::fnctl_path())
            .args(["list", "--admin", admin])
            .args(extra)
            .output()
            .expect("runs")
    };
    let ca_arg = ca.to_str().expect("utf-8");
    let listed = crate::support::wait_for(Duration::from_secs(30), "the TLS replica", || {
        let out = fnctl(&https, &["--admin-ca", ca_arg, "--token", "t0k3n"]);
        out.status.success().then_some(out)
    });
    assert!(String::from_utf8_lossy(&listed.stdout).contains("no functions deployed"));
    let unknown = fnctl(&https, &["--token", "t0k3n"]);
    assert!(
        !unknown.status.success(),
        "a certificate of an unknown CA is refused"
    );
    assert!(
        stderr_of(&unknown).to_lowercase().contains("certificate"),
        "{}",
        stderr_of(&unknown)
    );
    let wrong = fnctl(&https, &["--admin-ca", ca_arg, "--token", "guess"]);
    assert!(
        stderr_of(&wrong).contains("missing or wrong admin token"),
        "{}",
        stderr_of(&wrong)
    );
    let plain = fnctl(&format!("http://127.0.0.1:{port}"), &["--token", "t0k3n"]);
    assert!(
        !plain.status.success(),
        "plain HTTP gets no answer from a TLS port"
    );
    let _ = serve.kill();
    let _ = serve.wait();
}
