//! A user starts a function in each language with `fnctl new`, runs its unit tests,
//! builds it with `fnctl build`, deploys it with the default limits and sees it work.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Replica, fnctl_path, target_dir, temp_dir};

/// Each language and the command that runs its template's native unit tests.
const LANGUAGES: [(&str, &[&str]); 4] = [
    ("rust", &["cargo", "test", "--quiet"]),
    ("js", &["npm", "test", "--silent"]),
    ("python", &["python3", "-m", "unittest", "--quiet"]),
    ("go", &["go", "test", "./..."]),
];

/// A command with the build caches projects may share: one cargo target directory and
/// one componentize-py virtualenv, kept in the workspace's target directory.
fn command(program: &str, dir: &Path) -> Command {
    let caches = target_dir().join("projects");
    let mut command = Command::new(program);
    command
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", caches.join("cargo"))
        .env(
            "STREAMFN_PY_VENV",
            target_dir().join("toolchains/python-venv"),
        )
        .env_remove("FNCTL_ADMIN");
    command
}

fn succeeded(what: &str, output: Output) -> String {
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_new_project_in_every_language_tests_builds_deploys_and_runs() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("data"));
    replica.ok(&["topics", "create", "events", "--partitions", "1"]);

    for (lang, unit_tests) in LANGUAGES {
        let name = format!("counter-{lang}");
        let created = command(fnctl_path().to_str().expect("utf-8"), dir.path())
            .args(["new", &name, "--lang", lang])
            .output()
            .expect("fnctl runs");
        succeeded(&format!("fnctl new --lang {lang}"), created);
        let project = dir.path().join(&name);
        assert!(project.join("streamfn.toml").is_file());

        let tested = command(unit_tests[0], &project)
            .args(&unit_tests[1..])
            .output()
            .expect("the unit test command runs");
        succeeded(&format!("{lang} unit tests"), tested);

        let built = command(fnctl_path().to_str().expect("utf-8"), &project)
            .args(["build", "--format", "json"])
            .output()
            .expect("fnctl runs");
        let built: Value =
            serde_json::from_str(&succeeded(&format!("fnctl build ({lang})"), built))
                .expect("fnctl build --output json prints JSON");
        let component = built["component"].as_str().expect("the component's path");
        assert!(component.ends_with(&format!("{name}.wasm")), "{built}");
        assert!(built["bytes"].as_u64().expect("bytes") > 0);

        // The default fuel, memory and time limits fit every template.
        replica.ok(&[
            "deploy",
            component,
            "--name",
            &name,
            "--input",
            "events",
            "--output",
            &format!("out-{lang}"),
            "--config",
            &format!("to=out-{lang}"),
        ]);
    }

    replica.ok_with_input(&["produce", "events", "--key", "a"], "x\ny\n");
    replica.ok_with_input(&["produce", "events", "--key", "b"], "z\n");
    for (lang, _) in LANGUAGES {
        let name = format!("counter-{lang}");
        let status = replica.wait_drained(&name, Duration::from_secs(120));
        let failures = status["failures"].as_object().expect("failures by kind");
        assert!(
            failures.values().all(|n| n.as_u64() == Some(0)),
            "{lang}: {status}"
        );
        let counts: Vec<Value> = replica
            .consume(&format!("out-{lang}"))
            .iter()
            .map(|r| serde_json::from_str(r["value"].as_str().expect("text value")).expect("JSON"))
            .collect();
        assert_eq!(
            counts,
            [
                json!({"key": "a", "count": 1}),
                json!({"key": "a", "count": 2}),
                json!({"key": "b", "count": 1}),
            ],
            "{lang}"
        );
    }
}

#[test]
fn fnctl_build_outside_a_project_says_what_to_do() {
    let dir = temp_dir();
    let output = command(fnctl_path().to_str().expect("utf-8"), dir.path())
        .arg("build")
        .output()
        .expect("fnctl runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("fnctl new"), "{stderr}");
}

#[test]
fn fnctl_build_without_the_toolchain_says_what_to_install() {
    let dir = temp_dir();
    // A PATH where no toolchain is found.
    let empty = dir.path().join("empty-path");
    std::fs::create_dir(&empty).expect("empty dir");
    let cases = [
        ("rust", "install Rust"),
        ("js", "install Node.js"),
        ("python", "install Python"),
        ("go", "install Go"),
    ];
    for (lang, advice) in cases {
        let name = format!("missing-{lang}");
        let created = command(fnctl_path().to_str().expect("utf-8"), dir.path())
            .args(["new", &name, "--lang", lang])
            .output()
            .expect("fnctl runs");
        succeeded(&format!("fnctl new --lang {lang}"), created);
        let output = command(
            fnctl_path().to_str().expect("utf-8"),
            &dir.path().join(&name),
        )
        .arg("build")
        .env("PATH", &empty)
        .output()
        .expect("fnctl runs");
        assert!(
            !output.status.success(),
            "{lang}: built without a toolchain"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("is not installed") && stderr.contains(advice),
            "{lang}: {stderr}"
        );
    }
}

#[test]
fn fnctl_build_aot_says_what_it_needs() {
    let dir = temp_dir();
    let fnctl = fnctl_path();
    let fnctl = fnctl.to_str().expect("utf-8");
    for lang in ["js", "go"] {
        let created = command(fnctl, dir.path())
            .args(["new", &format!("aot-{lang}"), "--lang", lang])
            .output()
            .expect("fnctl runs");
        succeeded(&format!("fnctl new --lang {lang}"), created);
    }
    let empty = dir.path().join("empty-path");
    std::fs::create_dir(&empty).expect("empty dir");
    let no_weval = command(fnctl, &dir.path().join("aot-js"))
        .args(["build", "--aot"])
        .env("PATH", &empty)
        .output()
        .expect("fnctl runs");
    assert!(!no_weval.status.success());
    let stderr = String::from_utf8_lossy(&no_weval.stderr);
    assert!(stderr.contains("cargo install weval"), "{stderr}");

    // Any existing file gets past the lookup; a Go project is refused before it is used.
    let go = command(fnctl, &dir.path().join("aot-go"))
        .args(["build", "--aot", "--weval", fnctl])
        .output()
        .expect("fnctl runs");
    assert!(!go.status.success());
    let stderr = String::from_utf8_lossy(&go.stderr);
    assert!(stderr.contains("JavaScript functions only"), "{stderr}");
}
