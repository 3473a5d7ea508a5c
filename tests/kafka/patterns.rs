//! Input patterns on Kafka: the consumer group takes in a topic created after the deploy
//! within seconds, as on the embedded log.

use crate::broker::Broker;
use crate::scenarios::a_pattern_takes_in_a_topic_created_after_the_deploy;
use crate::support::{Replica, temp_dir};

#[test]
fn a_pattern_subscription_on_kafka_reads_a_topic_created_after_the_deploy() {
    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("kafka"));
    let replica = Replica::start_on_kafka(&dir.path().join("replica"), &broker.address, &[]);
    a_pattern_takes_in_a_topic_created_after_the_deploy(&replica);
}
