//! The example functions on Kafka give the same outputs for the same input as on the
//! embedded log: the demo's three, and the shop's order pipeline on Avro through a real
//! schema registry, which dead-letters every planted invalid order on both.

use std::collections::BTreeMap;
use std::time::Duration;

use streamfn_demo::generate::{self, Dataset};
use streamfn_demo::orders::{self, Orders};
use streamfn_demo::topology::{self, OrderOutputs, Outputs};

use crate::broker::Broker;
use crate::registry::Registry;
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

/// Produces the rest of the demo's input, and deploys the functions that run over it
/// once loaded.
pub fn feed_others(replica: &Replica, data: &Dataset) {
    for feed in topology::others(data) {
        must(feed.produce(replica));
    }
    must(topology::set_up_after_load(replica, &guests_dir(), &[]));
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
    assert_eq!(got.user_events, expected.user_events, "user events");
    assert!(
        got.traces > 0 && expected.traces > 0,
        "traces: {} on Kafka, {} embedded",
        got.traces,
        expected.traces
    );
}

/// Where the order pipeline's Avro schemas are.
fn order_schemas() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../guests/order-validator/schemas")
}

/// Runs the order pipeline on `replica` (started with `registry`) over `data`.
fn order_pipeline(replica: &Replica, registry: &Registry, data: &Orders) -> OrderOutputs {
    must(topology::set_up_orders(
        replica,
        &guests_dir(),
        &order_schemas(),
        4,
    ));
    must(topology::feed_orders(
        replica,
        data,
        &order_schemas(),
        &registry.url,
    ));
    must(topology::collect_orders(
        replica,
        &registry.url,
        Duration::from_secs(180),
    ))
}

#[test]
fn the_order_pipeline_gives_the_same_outputs_on_kafka_and_dead_letters_every_planted_invalid_order()
{
    let dir = temp_dir();
    let registry = Registry::start(&dir.path().join("registry"));
    let data = orders::orders(11, 80);
    let embedded = Replica::start_with(
        &dir.path().join("embedded"),
        &["--schema-registry", &registry.url],
    );
    let expected = order_pipeline(&embedded, &registry, &data);
    let rejected: BTreeMap<&str, &str> = expected
        .rejected
        .iter()
        .map(|(id, reason)| (id.as_str(), reason.as_str()))
        .collect();
    assert_eq!(
        rejected.keys().collect::<Vec<_>>(),
        data.planted.keys().collect::<Vec<_>>(),
        "every planted invalid order, and no other, is dead-lettered"
    );
    for (id, rule) in &data.planted {
        let words = orders::RULES
            .iter()
            .find(|(r, _)| r == rule)
            .map(|(_, words)| *words)
            .expect("a known rule");
        assert!(
            rejected[id.as_str()].contains(words),
            "{id} ({rule}): {}",
            rejected[id.as_str()]
        );
    }
    let sent = data.orders.len() - data.planted.len();
    assert_eq!(expected.valid.len(), sent, "every other order is valid");
    assert!(!expected.hours.is_empty() && !expected.stock.is_empty());

    let broker = Broker::start(&dir.path().join("kafka"));
    let replica = Replica::start_on_kafka(
        &dir.path().join("replica"),
        &broker.address,
        &["--schema-registry", &registry.url],
    );
    let got = order_pipeline(&replica, &registry, &data);
    assert_eq!(got, expected);
}
