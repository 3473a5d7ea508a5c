//! Input patterns on the embedded log: a function reads every topic whose whole name
//! matches, one created after the deploy too, with the partition count it was deployed
//! with; `fnctl status` lists the topics it reads.

use crate::scenarios::a_pattern_takes_in_a_topic_created_after_the_deploy;
use crate::support::{Replica, guest, temp_dir};

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
