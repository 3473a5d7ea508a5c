//! Input patterns on the embedded log: a function reads every topic whose whole name
//! matches, one created after the deploy too, with the partition count it was deployed
//! with; `fnctl status` lists the topics it reads.

use crate::scenarios::a_pattern_takes_in_a_topic_created_after_the_deploy;
use std::time::Duration;

use crate::support::{Replica, guest, header, temp_dir, value, wait_for};

#[test]
fn a_pattern_subscription_reads_a_topic_created_after_the_deploy() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("replica"));
    a_pattern_takes_in_a_topic_created_after_the_deploy(&replica);
}

#[test]
fn a_pattern_that_matches_nothing_yet_or_is_no_regular_expression_is_refused() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("replica"));
    for (pattern, said) in [
        ("logs-.*", "no topic matches"),
        ("logs-(", "is not a regular expression"),
    ] {
        let out = replica.fnctl(&[
            "deploy",
            &guest("passthrough").to_string_lossy(),
            "--name",
            "collector",
            "--input-pattern",
            pattern,
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(said), "{stderr}");
    }
}

#[test]
fn the_pattern_names_the_format_of_the_topics_it_matches() {
    let dir = temp_dir();
    let replica = Replica::start(&dir.path().join("replica"));
    replica.ok(&["topics", "create", "events-a", "--partitions", "1"]);
    replica.deploy(
        &guest("passthrough"),
        "checker",
        &[
            "--input-pattern",
            "events-.*",
            "--input-format",
            "events-.*=json",
            "--output",
            "checked",
            "--config",
            "to=checked",
        ],
    );
    replica.ok(&["topics", "create", "events-b", "--partitions", "1"]);
    let lines = ["{\"n\": 1}".to_owned(), "not json".to_owned()];
    replica.produce("events-b", &lines, &[]);
    let dead = wait_for(Duration::from_secs(30), "a dead letter", || {
        let dead = replica.consume("checker-dlq");
        (!dead.is_empty()).then_some(dead)
    });
    assert_eq!(header(&dead[0], "streamfn.failure.kind"), "decode-error");
    assert_eq!(value(&dead[0]), "not json");
    assert_eq!(replica.sorted_values("checked"), ["{\"n\": 1}"]);
}
