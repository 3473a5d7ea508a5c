//! Rebalance bookkeeping of one function on one replica: which input topic partitions the
//! consumer group gave it, and which partition numbers it runs. A partition number runs
//! here only while every co-partitioned input of it is assigned here, so that a join
//! never sees one side alone.

use std::collections::BTreeSet;

/// The assignment of one function's inputs to this replica.
#[derive(Debug, Default)]
pub struct Assignment {
    inputs: Vec<String>,
    /// Input topic partitions the group gave this replica.
    assigned: BTreeSet<(String, u32)>,
    /// Partition numbers that run here.
    owned: BTreeSet<u32>,
}

impl Assignment {
    /// The assignment of a function reading `inputs`, empty until the group assigns.
    pub fn new(inputs: Vec<String>) -> Self {
        Assignment {
            inputs,
            ..Assignment::default()
        }
    }

    /// Reads `inputs` from now on: partitions that do not run yet wait for each of them;
    /// those that run take a new one in as the group assigns it.
    pub fn set_inputs(&mut self, inputs: Vec<String>) {
        self.inputs = inputs;
    }

    /// Takes in topic partitions the group assigned.
    pub fn assign(&mut self, list: impl IntoIterator<Item = (String, u32)>) {
        self.assigned.extend(list);
    }

    /// Takes in topic partitions the group revoked; returns the partition numbers that no
    /// longer run here, in order.
    pub fn revoke(&mut self, list: impl IntoIterator<Item = (String, u32)>) -> Vec<u32> {
        let mut lost = Vec::new();
        for (topic, partition) in list {
            self.assigned.remove(&(topic, partition));
            if self.owned.remove(&partition) {
                lost.push(partition);
            }
        }
        lost
    }

    /// Partition numbers whose every input is now assigned but which do not run yet.
    pub fn whole(&self) -> Vec<u32> {
        let numbers: BTreeSet<u32> = self.assigned.iter().map(|(_, p)| *p).collect();
        numbers
            .into_iter()
            .filter(|p| !self.owned.contains(p))
            .filter(|p| {
                self.inputs
                    .iter()
                    .all(|t| self.assigned.contains(&(t.clone(), *p)))
            })
            .collect()
    }

    /// Records that `partition` runs here (its state restored).
    pub fn run(&mut self, partition: u32) {
        self.owned.insert(partition);
    }

    /// Whether `partition` runs here.
    pub fn runs(&self, partition: u32) -> bool {
        self.owned.contains(&partition)
    }

    /// The partition numbers that run here.
    pub fn running(&self) -> &BTreeSet<u32> {
        &self.owned
    }

    /// Gives every partition up; returns those that ran here.
    pub fn release_all(&mut self) -> BTreeSet<u32> {
        self.assigned.clear();
        std::mem::take(&mut self.owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: u32) -> (String, u32) {
        (topic.to_owned(), partition)
    }

    #[test]
    fn a_partition_runs_only_once_every_co_partitioned_input_is_assigned() {
        let mut a = Assignment::new(vec!["transactions".into(), "profiles".into()]);
        a.assign([
            tp("transactions", 0),
            tp("transactions", 1),
            tp("profiles", 1),
        ]);
        assert_eq!(a.whole(), vec![1], "partition 0 waits for its profiles");
        a.run(1);
        assert!(a.whole().is_empty());
        a.assign([tp("profiles", 0)]);
        assert_eq!(a.whole(), vec![0]);
        a.run(0);
        assert_eq!(a.running().iter().copied().collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn losing_one_input_of_a_partition_stops_it() {
        let mut a = Assignment::new(vec!["transactions".into(), "profiles".into()]);
        a.assign([
            tp("transactions", 2),
            tp("profiles", 2),
            tp("transactions", 3),
        ]);
        for p in a.whole() {
            a.run(p);
        }
        assert_eq!(a.revoke([tp("profiles", 2)]), vec![2]);
        assert!(!a.runs(2));
        assert_eq!(
            a.revoke([tp("transactions", 2)]),
            Vec::<u32>::new(),
            "already stopped"
        );
        assert_eq!(
            a.revoke([tp("transactions", 3)]),
            Vec::<u32>::new(),
            "never ran"
        );
        a.assign([tp("transactions", 2), tp("profiles", 2)]);
        assert_eq!(a.whole(), vec![2], "it runs again once reassigned");
    }

    #[test]
    fn an_incremental_rebalance_keeps_what_stays() {
        let mut a = Assignment::new(vec!["events".into()]);
        a.assign((0..4).map(|p| tp("events", p)));
        for p in a.whole() {
            a.run(p);
        }
        // Another replica joins and takes two partitions; the rest keep running untouched.
        assert_eq!(a.revoke([tp("events", 1), tp("events", 3)]), vec![1, 3]);
        assert!(a.whole().is_empty(), "nothing to restore again");
        assert_eq!(a.running().iter().copied().collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(a.release_all().len(), 2);
        assert!(a.running().is_empty() && a.whole().is_empty());
    }
}
