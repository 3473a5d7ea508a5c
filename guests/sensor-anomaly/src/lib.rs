//! sensor-anomaly: watches IoT sensor readings, one topic per sensor type (deployed with
//! `--input-pattern 'sensors-.*'`, so a new sensor type's topic is taken in as it is
//! created), keyed by device. Each device's readings of each sensor are summed up in
//! 5-minute tumbling windows on stream time (count, min, max, mean, standard deviation),
//! reported to `sensor-windows` when a window closes; a reading far from the device's
//! recent windows is alerted at once to `sensor-alerts`.
//!
//! Windows close on stream time, the largest reading time the partition has seen, plus a
//! grace period (config `grace_ms`, default 1 minute), so a replay closes the same
//! windows with the same contents. A reading that arrives out of order within the grace
//! period is counted (and the window says how many did); one that arrives after its
//! window closed is rejected as late, to the dead-letter topic.
//!
//! A reading is anomalous when it lies more than config `threshold` (default 5) standard
//! deviations from the mean of the device's last closed windows (at least 3 of them, at
//! most 12): the deviation of their readings around their means and of the means
//! themselves, taken at least config `min_deviation` (default 0.5) so that a sensor that
//! never moves does not alert on the smallest change.

use serde::{Deserialize, Serialize};
use streamfn::{Context, Event, Failure, Timer};

const WINDOWS: &str = "sensor-windows";
const ALERTS: &str = "sensor-alerts";

const WINDOW_MS: i64 = 5 * 60_000;
const DEFAULT_GRACE_MS: i64 = 60_000;
const DEFAULT_THRESHOLD: f64 = 5.0;
const DEFAULT_MIN_DEVIATION: f64 = 0.5;
/// Closed windows a baseline needs before it judges a reading...
const MIN_HISTORY: usize = 3;
/// ...and the most it keeps.
const MAX_HISTORY: usize = 12;

/// State keys: open windows `window/DEVICE/SENSOR/START`, baselines `baseline/DEVICE/SENSOR`.
const WINDOW_PREFIX: &str = "window/";
const BASELINE_PREFIX: &str = "baseline/";

/// A reading.
#[derive(Debug, Deserialize)]
struct Reading {
    device_id: String,
    sensor: String,
    value: f64,
}

/// An open window: what is needed for its summary.
#[derive(Debug, Serialize, Deserialize)]
struct Window {
    device_id: String,
    sensor: String,
    start_ms: i64,
    count: u64,
    min: f64,
    max: f64,
    sum: f64,
    sum_squares: f64,
    /// Readings that arrived after stream time had passed the window's end.
    late: u64,
}

/// A closed window, as `sensor-windows` reports it.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    device_id: String,
    sensor: String,
    window_start_ms: i64,
    window_end_ms: i64,
    count: u64,
    min: f64,
    max: f64,
    mean: f64,
    stddev: f64,
    late: u64,
}

/// An anomaly, as `sensor-alerts` reports it.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    device_id: String,
    sensor: String,
    timestamp_ms: i64,
    value: f64,
    expected: f64,
    deviation: f64,
    /// How many deviations the value lies from what was expected.
    score: f64,
}

/// The (mean, variance) of a device's last closed windows of one sensor.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Baseline {
    windows: Vec<(f64, f64)>,
}

impl Baseline {
    /// (mean, deviation) of the readings of the recent windows, once there are enough:
    /// their variance is that within the windows plus that of the windows' means.
    fn expected(&self, min_deviation: f64) -> Option<(f64, f64)> {
        if self.windows.len() < MIN_HISTORY {
            return None;
        }
        let n = self.windows.len() as f64;
        let mean = self.windows.iter().map(|w| w.0).sum::<f64>() / n;
        let within = self.windows.iter().map(|w| w.1).sum::<f64>() / n;
        let between = self
            .windows
            .iter()
            .map(|w| (w.0 - mean).powi(2))
            .sum::<f64>()
            / n;
        Some((mean, (within + between).sqrt().max(min_deviation)))
    }
}

/// Takes in one reading.
pub fn handle(event: &Event, ctx: &mut Context) -> Result<(), Failure> {
    if !event.topic.starts_with("sensors-") {
        return Err(Failure::reject(format!(
            "sensor-anomaly reads sensors-* topics, not `{}`",
            event.topic
        )));
    }
    let reading: Reading = event.json()?;
    if !reading.value.is_finite() {
        return Err(Failure::reject(format!(
            "{} sent {} = {}, not a number",
            reading.device_id, reading.sensor, reading.value
        )));
    }
    let grace: i64 = ctx.config_or("grace_ms", DEFAULT_GRACE_MS)?;
    let ts = event.timestamp_ms;
    let start = ts - ts.rem_euclid(WINDOW_MS);
    let end = start + WINDOW_MS;
    if event.stream_time_ms >= end + grace {
        return Err(Failure::reject(format!(
            "late: a reading of {} {} at {ts} arrived after its window [{start}, {end}) closed at stream time {}",
            reading.device_id,
            reading.sensor,
            end + grace
        )));
    }
    check_anomaly(&reading, ts, ctx)?;
    let key = format!(
        "{WINDOW_PREFIX}{}/{}/{start}",
        reading.device_id, reading.sensor
    );
    let mut window = match ctx.load::<Window>(&key)? {
        Some(window) => window,
        None => {
            ctx.schedule_timer(&key, end + grace);
            Window {
                device_id: reading.device_id.clone(),
                sensor: reading.sensor.clone(),
                start_ms: start,
                count: 0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                sum: 0.0,
                sum_squares: 0.0,
                late: 0,
            }
        }
    };
    window.count += 1;
    window.min = window.min.min(reading.value);
    window.max = window.max.max(reading.value);
    window.sum += reading.value;
    window.sum_squares += reading.value * reading.value;
    if event.stream_time_ms >= end {
        window.late += 1;
    }
    ctx.store(&key, &window);
    Ok(())
}

/// Closes a window: reports it and adds it to the device's baseline.
pub fn on_timer(timer: &Timer, ctx: &mut Context) -> Result<(), Failure> {
    let Some(key) = timer.key_str().filter(|k| k.starts_with(WINDOW_PREFIX)) else {
        return Err(Failure::reject(format!(
            "sensor-anomaly schedules no timer {:?}",
            String::from_utf8_lossy(&timer.key)
        )));
    };
    let Some(window) = ctx.load::<Window>(key)? else {
        return Ok(());
    };
    ctx.delete(key);
    let n = window.count as f64;
    let mean = window.sum / n;
    let variance = (window.sum_squares / n - mean * mean).max(0.0);
    let summary = Summary {
        device_id: window.device_id.clone(),
        sensor: window.sensor.clone(),
        window_start_ms: window.start_ms,
        window_end_ms: window.start_ms + WINDOW_MS,
        count: window.count,
        min: window.min,
        max: window.max,
        mean,
        stddev: variance.sqrt(),
        late: window.late,
    };
    ctx.emit_json(WINDOWS, Some(&window.device_id), &summary);
    let baseline_key = format!("{BASELINE_PREFIX}{}/{}", window.device_id, window.sensor);
    let mut baseline: Baseline = ctx.load(&baseline_key)?.unwrap_or_default();
    baseline.windows.push((mean, variance));
    if baseline.windows.len() > MAX_HISTORY {
        baseline.windows.remove(0);
    }
    ctx.store(&baseline_key, &baseline);
    Ok(())
}

streamfn::export!(handle, timers = on_timer);

/// Alerts `reading` when it lies far from the device's recent windows.
fn check_anomaly(reading: &Reading, ts: i64, ctx: &mut Context) -> Result<(), Failure> {
    let threshold: f64 = ctx.config_or("threshold", DEFAULT_THRESHOLD)?;
    let min_deviation: f64 = ctx.config_or("min_deviation", DEFAULT_MIN_DEVIATION)?;
    let baseline_key = format!("{BASELINE_PREFIX}{}/{}", reading.device_id, reading.sensor);
    let baseline: Baseline = ctx.load(&baseline_key)?.unwrap_or_default();
    let Some((expected, deviation)) = baseline.expected(min_deviation) else {
        return Ok(());
    };
    let score = (reading.value - expected).abs() / deviation;
    if score > threshold {
        let alert = Alert {
            device_id: reading.device_id.clone(),
            sensor: reading.sensor.clone(),
            timestamp_ms: ts,
            value: reading.value,
            expected,
            deviation,
            score,
        };
        ctx.emit_json(ALERTS, Some(&reading.device_id), &alert);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use streamfn::testing::TestHost;

    use super::*;

    const TEMPERATURE: &str = "sensors-temperature";

    fn read(host: &mut TestHost, value: f64, at: i64) -> Result<(), Failure> {
        let reading = json!({"device_id": "d1", "sensor": "temperature", "value": value});
        host.deliver(
            handle,
            on_timer,
            TEMPERATURE,
            Some("d1"),
            &reading.to_string(),
            at,
        )
    }

    #[test]
    fn windows_close_on_stream_time_with_their_summary() {
        let mut host = TestHost::new().with_config("grace_ms", "0");
        for (value, at) in [(20.0, 0), (22.0, 60_000), (21.0, 120_000)] {
            read(&mut host, value, at).expect("counted");
        }
        assert!(host.outputs().is_empty(), "the window is open");
        read(&mut host, 21.0, WINDOW_MS).expect("the next window");
        let windows: Vec<Summary> = host.outputs_json(WINDOWS);
        assert_eq!(windows.len(), 1);
        let w = &windows[0];
        assert_eq!((w.count, w.min, w.max, w.mean), (3, 20.0, 22.0, 21.0));
        assert!(
            (w.stddev - (2.0f64 / 3.0).sqrt()).abs() < 1e-9,
            "{}",
            w.stddev
        );
    }

    #[test]
    fn a_reading_far_from_the_recent_windows_is_alerted() {
        let mut host = TestHost::new().with_config("grace_ms", "0");
        // Four quiet windows around 21 degrees make the baseline.
        for w in 0..4 {
            for i in 0..5 {
                let value = 21.0 + if i % 2 == 0 { 0.2 } else { -0.2 } + w as f64 * 0.1;
                read(&mut host, value, w * WINDOW_MS + i * 60_000).expect("counted");
            }
        }
        read(&mut host, 21.3, 4 * WINDOW_MS).expect("normal");
        assert!(
            host.outputs_json::<Alert>(ALERTS).is_empty(),
            "no alert on normal readings"
        );
        read(&mut host, 35.0, 4 * WINDOW_MS + 60_000).expect("a spike");
        let alerts: Vec<Alert> = host.outputs_json(ALERTS);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].value, 35.0);
        assert!(alerts[0].score > DEFAULT_THRESHOLD, "{:?}", alerts[0]);
    }

    #[test]
    fn late_readings_within_grace_are_counted_and_later_ones_rejected() {
        let mut host = TestHost::new().with_config("grace_ms", "60000");
        read(&mut host, 20.0, 0).expect("counted");
        read(&mut host, 20.0, WINDOW_MS + 10_000).expect("the next window opens");
        read(&mut host, 21.0, WINDOW_MS - 1).expect("late, within the grace period");
        read(&mut host, 20.0, WINDOW_MS + 60_000).expect("stream time closes the first window");
        let windows: Vec<Summary> = host.outputs_json(WINDOWS);
        assert_eq!((windows[0].count, windows[0].late), (2, 1));
        let err = read(&mut host, 22.0, 1_000).expect_err("after its window closed");
        assert!(err.reason().starts_with("late:"), "{}", err.reason());
    }
}
