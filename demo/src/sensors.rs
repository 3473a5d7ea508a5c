//! Synthetic, seeded IoT readings for sensor-anomaly: devices reporting temperature and
//! humidity every 30 seconds, one topic per sensor type, with planted spikes and planted
//! late readings (some within the grace period, some after their window closed). It knows
//! what it planted, so the demo can score the function.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::generate::{MINUTE_MS, Rng, SPAN_MS, START_MS};

/// A sensor type: its topic, its usual level and how much its readings wander.
struct Sensor {
    name: &'static str,
    low: f64,
    high: f64,
    noise: f64,
}

const SENSORS: [Sensor; 2] = [
    Sensor {
        name: "temperature",
        low: 18.0,
        high: 26.0,
        noise: 0.3,
    },
    Sensor {
        name: "humidity",
        low: 35.0,
        high: 65.0,
        noise: 1.5,
    },
];

/// How often a device reports each sensor.
const EVERY_MS: i64 = 30_000;
/// The spikes come after the function has seen this much of each device.
const WARM_UP_MS: i64 = 40 * MINUTE_MS;
/// How late a reading is that arrives after its window closed: more than a window and
/// sensor-anomaly's default grace period. Only readings with others that late after
/// them are planted so, for those to move stream time past their window.
const TOO_LATE_MS: i64 = 8 * MINUTE_MS;

/// The readings, and what was planted in them.
#[derive(Debug, Clone, PartialEq)]
pub struct Readings {
    /// Records per topic (`sensors-temperature`, `sensors-humidity`; key: `device_id`,
    /// time: `timestamp_ms`), in the order they arrive, which is not quite time order.
    pub topics: Vec<(String, Vec<Value>)>,
    /// `(device, sensor, timestamp_ms)` of each planted spike.
    pub spikes: BTreeSet<(String, String, i64)>,
    /// `(device, sensor, timestamp_ms)` of each reading planted to arrive after its
    /// window closed.
    pub too_late: BTreeSet<(String, String, i64)>,
}

/// Readings of about `scale / 10` devices for `seed`: the same seed and scale always give
/// the same readings.
pub fn readings(seed: u64, scale: usize) -> Readings {
    let mut rng = Rng::stream(seed, 6);
    let devices = (scale / 10).max(4);
    let mut spikes = BTreeSet::new();
    let mut too_late = BTreeSet::new();
    let mut topics = Vec::new();
    for sensor in &SENSORS {
        // (arrival, reading) pairs: arrival is the reading's time but for the late ones.
        let mut arrivals: Vec<(i64, Value)> = Vec::new();
        for d in 0..devices {
            let device = format!("dev-{d:03}");
            let level = rng.uniform(sensor.low, sensor.high);
            let spike_at = rng.chance(0.3).then(|| {
                START_MS + WARM_UP_MS + rng.between(0, (SPAN_MS - WARM_UP_MS) / EVERY_MS) * EVERY_MS
            });
            let mut at = START_MS + rng.between(0, EVERY_MS - 1);
            while at < START_MS + SPAN_MS {
                let mut value = level + sensor.noise * rng.normal();
                let mut arrival = at;
                if spike_at.is_some_and(|s| at >= s && at < s + EVERY_MS) {
                    value += sensor.noise * 20.0 + 5.0;
                    spikes.insert((device.clone(), sensor.name.to_owned(), at));
                } else if at > START_MS + WARM_UP_MS
                    && at + TOO_LATE_MS + EVERY_MS < START_MS + SPAN_MS
                    && rng.chance(0.002)
                {
                    arrival = at + TOO_LATE_MS;
                    too_late.insert((device.clone(), sensor.name.to_owned(), at));
                } else if rng.chance(0.01) {
                    // Late, but within the grace period.
                    arrival = at + 40_000;
                }
                let reading = json!({
                    "device_id": device,
                    "sensor": sensor.name,
                    "value": (value * 100.0).round() / 100.0,
                    "timestamp_ms": at,
                });
                arrivals.push((arrival, reading));
                at += EVERY_MS;
            }
            // A reading well after the rest closes the device's last windows, as later
            // traffic would.
            let closing = json!({
                "device_id": device,
                "sensor": sensor.name,
                "value": (level * 100.0).round() / 100.0,
                "timestamp_ms": at + 30 * MINUTE_MS,
            });
            arrivals.push((at + 30 * MINUTE_MS, closing));
        }
        arrivals.sort_by_key(|(arrival, _)| *arrival);
        let records = arrivals.into_iter().map(|(_, reading)| reading).collect();
        topics.push((format!("sensors-{}", sensor.name), records));
    }
    Readings {
        topics,
        spikes,
        too_late,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_readings_with_spikes_and_late_ones() {
        let first = readings(4, 400);
        assert_eq!(first, readings(4, 400));
        assert!(!first.spikes.is_empty() && !first.too_late.is_empty());
        for (topic, records) in &first.topics {
            assert!(topic.starts_with("sensors-"));
            assert!(records.len() > 40 * 200, "{topic}: {}", records.len());
        }
    }
}
