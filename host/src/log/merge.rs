//! The order records of co-partitioned inputs are handed to a function in: by timestamp,
//! ties in input order, as Kafka Streams picks among a task's partitions.

use crate::model::event::{InputEvent, Positions};
use crate::model::record::Record;

type Queue = std::iter::Peekable<std::vec::IntoIter<(u64, Record)>>;

/// Merges the records of co-partitioned inputs in timestamp order (ties in input order),
/// taking at most `max`.
pub fn merge_by_timestamp(
    inputs: Vec<(String, Vec<(u64, Record)>)>,
    max: usize,
) -> Vec<InputEvent> {
    let mut queues: Vec<(String, Queue)> = inputs
        .into_iter()
        .map(|(topic, records)| (topic, records.into_iter().peekable()))
        .collect();
    let total = queues.iter().map(|(_, q)| q.len()).sum::<usize>();
    let mut merged = Vec::with_capacity(total.min(max));
    while merged.len() < max {
        let next = queues
            .iter_mut()
            .enumerate()
            .filter_map(|(i, (_, q))| q.peek().map(|(_, r)| (r.timestamp_ms, i)))
            .min();
        let Some((_, i)) = next else { break };
        let (topic, queue) = &mut queues[i];
        let Some((offset, record)) = queue.next() else {
            break;
        };
        merged.push(InputEvent {
            topic: topic.clone(),
            offset,
            record,
        });
    }
    merged
}

/// Merges as [`merge_by_timestamp`] does, and moves `cursor` past what it took.
pub fn merge_from(
    inputs: Vec<(String, Vec<(u64, Record)>)>,
    max: usize,
    cursor: &mut Positions,
) -> Vec<InputEvent> {
    let events = merge_by_timestamp(inputs, max);
    for event in &events {
        cursor.insert(event.topic.clone(), event.offset + 1);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ts: i64) -> Record {
        Record {
            timestamp_ms: ts,
            ..Record::default()
        }
    }

    fn order(merged: &[InputEvent]) -> Vec<(&str, u64)> {
        merged
            .iter()
            .map(|e| (e.topic.as_str(), e.offset))
            .collect()
    }

    #[test]
    fn co_partitioned_inputs_merge_by_timestamp_then_input_order() {
        let merged = merge_by_timestamp(
            vec![
                ("a".into(), vec![(0, at(5)), (1, at(9))]),
                ("b".into(), vec![(0, at(1)), (1, at(5)), (2, at(20))]),
            ],
            4,
        );
        assert_eq!(order(&merged), vec![("b", 0), ("a", 0), ("b", 1), ("a", 1)]);
    }

    #[test]
    fn one_input_keeps_its_offset_order_whatever_the_timestamps() {
        let merged = merge_by_timestamp(
            vec![("a".into(), vec![(3, at(9)), (4, at(1)), (5, at(5))])],
            2,
        );
        assert_eq!(order(&merged), vec![("a", 3), ("a", 4)]);
    }
}
