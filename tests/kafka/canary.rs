//! A canary on Kafka: the same consumer group runs both versions, each on its own
//! partitions, through a promotion and a rollback, with every record counted once.

use crate::broker::Broker;
use crate::scenarios::a_canary_its_promotion_and_a_rollback_count_every_record_once;
use crate::support::{Replica, temp_dir};

#[test]
fn a_canary_on_kafka_promoted_then_another_rolled_back_count_every_record_once() {
    let dir = temp_dir();
    let broker = Broker::start(&dir.path().join("kafka"));
    let replica = Replica::start_on_kafka(&dir.path().join("replica"), &broker.address, &[]);
    a_canary_its_promotion_and_a_rollback_count_every_record_once(&replica);
}
