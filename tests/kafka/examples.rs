//! The example functions on Kafka give the same outputs for the same input as on the
//! embedded log.

use std::time::Duration;

use streamfn_demo::generate::{self, Dataset};
use streamfn_demo::topology::{self, Outputs};

use crate::broker::Broker;
use crate::support::{Replica, guests_dir, must, temp_dir};

/// The demo's input, small.
pub fn dataset() -> Dataset {
    generate::generate(21, 40)
}

/// Creates the demo's topics and deploys its functions.
pub fn set_up(replica: &Replica) {
    must(topology::set_up(replica, &guests_dir(), 4, &[]));
}

/// Produces the customer profiles and transactions.
pub fn feed_payments(replica: &Replica, data: &Dataset) {
    for feed in topology::payments(data) {
        must(feed.produce(replica));
    }
}

/// Produces the rest of the demo's input.
pub fn feed_others(replica: &Replica, data: &Dataset) {
    for feed in topology::others(data) {
        must(feed.produce(replica));
    }
}

/// Waits for every function to catch up, then reads the outputs.
pub fn collect(replica: &Replica) -> Outputs {
    must(topology::collect(replica, Duration::from_secs(180)))
}

#[test]
fn the_examples_give_the_same_outputs_on_kafka_as_on_the_embedded_log() {
    let dir = temp_dir();
    let data = dataset();
    let embedded = Replica::start(&dir.path().join("embedded"));
    set_up(&embedded);
    feed_payments(&embedded, &data);
    feed_others(&embedded, &data);
    let expected = collect(&embedded);
    assert!(
        !expected.alerts.is_empty()
            && !expected.error_alerts.is_empty()
            && !expected.recommendations.is_empty()
    );

    let broker = Broker::start(&dir.path().join("kafka"));
    let replica = Replica::start_on_kafka(&dir.path().join("replica"), &broker.address, &[]);
    set_up(&replica);
    feed_payments(&replica, &data);
    feed_others(&replica, &data);
    let got = collect(&replica);
    assert_eq!(got.alerts, expected.alerts, "fraud alerts");
    assert_eq!(got.error_alerts, expected.error_alerts, "error alerts");
    assert_eq!(
        got.recommendations, expected.recommendations,
        "recommendations"
    );
    assert!(
        got.traces > 0 && expected.traces > 0,
        "traces: {} on Kafka, {} embedded",
        got.traces,
        expected.traces
    );
}
