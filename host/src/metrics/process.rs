//! The process's own metrics, read from `/proc` at each scrape under the names Prometheus
//! clients use: CPU seconds, resident and virtual memory, open files, start time.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Reads the process's figures when scraped.
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// What `/proc` says of this process.
#[derive(Debug, Default, PartialEq)]
struct Figures {
    cpu_seconds: f64,
    resident_bytes: i64,
    virtual_bytes: i64,
    open_fds: i64,
    start_time_seconds: f64,
}

impl Figures {
    fn read() -> Option<Figures> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot: f64 = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as i64;
        parse_stat(
            &stat,
            rustix::param::clock_ticks_per_second() as f64,
            rustix::param::page_size() as i64,
            boot,
            open_fds,
        )
    }
}

/// The figures in `/proc/self/stat`, whose fields after the command name (in parentheses,
/// and free to hold spaces) are counted from the state, field 3.
fn parse_stat(stat: &str, ticks: f64, page: i64, boot: f64, open_fds: i64) -> Option<Figures> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    Some(Figures {
        cpu_seconds: (field(14)? + field(15)?) / ticks,
        start_time_seconds: boot + field(22)? / ticks,
        virtual_bytes: field(23)? as i64,
        resident_bytes: field(24)? as i64 * page,
        open_fds,
    })
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(figures) = Figures::read() else {
            return Ok(());
        };
        let counter = encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(figures.cpu_seconds).encode(counter)?;
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                figures.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                figures.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                figures.open_fds,
            ),
        ] {
            let gauge = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value).encode(gauge)?;
        }
        let start = encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(figures.start_time_seconds).encode(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_in_the_name_is_read() {
        let mut fields = vec!["S"; 50];
        fields[14 - 3] = "150";
        fields[15 - 3] = "50";
        fields[22 - 3] = "1000";
        fields[23 - 3] = "8192000";
        fields[24 - 3] = "300";
        let stat = format!("42 (fnctl (a) b) {}", fields.join(" "));
        let figures = parse_stat(&stat, 100.0, 4096, 1_700_000_000.0, 9).expect("parses");
        assert_eq!(
            figures,
            Figures {
                cpu_seconds: 2.0,
                resident_bytes: 300 * 4096,
                virtual_bytes: 8_192_000,
                open_fds: 9,
                start_time_seconds: 1_700_000_010.0,
            }
        );
        assert!(Figures::read().is_some_and(|f| f.resident_bytes > 0 && f.open_fds > 0));
    }
}
