//! The standard `process_*` families every Prometheus exporter serves, read
//! from `/proc` at each scrape.
//!
//! `prometheus-client` 0.23 has no process collector and `metrics-process`
//! serves the `metrics` crate's registry, so this reads `/proc` through the
//! `procfs` crate and writes the families client_golang writes, with its
//! names and meanings (dashboards chart them as they are).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// The process family names, as they appear in a scrape.
pub const METRIC_NAMES: &[&str] = &[
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_start_time_seconds",
    "process_open_fds",
    "process_max_fds",
];

/// Reads this process's CPU, memory, start time and file descriptors when scraped.
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// One reading of `/proc/self`; a family whose file cannot be read is left out.
#[derive(Debug, Default, PartialEq)]
struct Reading {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<f64>,
    virtual_bytes: Option<f64>,
    start_time_seconds: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
}

impl Reading {
    fn now() -> Reading {
        let Ok(process) = procfs::process::Process::myself() else {
            return Reading::default();
        };
        let ticks = procfs::ticks_per_second() as f64;
        let stat = process.stat().ok();
        let max_fds = process.limits().ok().map(|limits| match limits.max_open_files.soft_limit {
            procfs::process::LimitValue::Value(value) => value as f64,
            // client_golang reports an unlimited soft limit as the largest value.
            procfs::process::LimitValue::Unlimited => u64::MAX as f64,
        });
        Reading {
            cpu_seconds: stat.as_ref().map(|stat| (stat.utime + stat.stime) as f64 / ticks),
            resident_bytes: stat.as_ref().map(|stat| (stat.rss.saturating_mul(procfs::page_size())) as f64),
            virtual_bytes: stat.as_ref().map(|stat| stat.vsize as f64),
            start_time_seconds: stat
                .as_ref()
                .zip(procfs::boot_time_secs().ok())
                .map(|(stat, boot)| boot as f64 + stat.starttime as f64 / ticks),
            open_fds: process.fd_count().ok().map(|count| count as f64),
            max_fds,
        }
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let reading = Reading::now();
        if let Some(seconds) = reading.cpu_seconds {
            let counter = ConstCounter::new(seconds);
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        let gauges = [
            ("process_resident_memory_bytes", "Resident memory size in bytes", reading.resident_bytes),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes", reading.virtual_bytes),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                reading.start_time_seconds,
            ),
            ("process_open_fds", "Number of open file descriptors", reading.open_fds),
            ("process_max_fds", "Maximum number of open file descriptors", reading.max_fds),
        ];
        for (name, help, value) in gauges {
            let Some(value) = value else { continue };
            let gauge = ConstGauge::new(value);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_family_on_linux() {
        let reading = Reading::now();
        let started = reading.start_time_seconds.expect("start time");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
        assert!(started > now - 86_400.0 * 365.0 && started <= now + 1.0, "start time {started}, now {now}");
        assert!(reading.resident_bytes.expect("rss") > 1_000_000.0, "{reading:?}");
        assert!(reading.virtual_bytes.expect("vsize") >= reading.resident_bytes.expect("rss"), "{reading:?}");
        assert!(reading.open_fds.expect("open fds") >= 3.0, "{reading:?}");
        assert!(reading.max_fds.expect("max fds") >= reading.open_fds.expect("open fds"), "{reading:?}");
        assert!(reading.cpu_seconds.expect("cpu") >= 0.0, "{reading:?}");
    }
}
