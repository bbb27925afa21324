//! Kernel time for xt_recent: the tick rate (`HZ`) and the current `jiffies`, so the raw
//! stamps in `/proc/net/xt_recent/NAME` become ages and wall-clock times.
//!
//! How HZ is found, in order (the first that answers wins, and says which it was):
//! 1. `CONFIG_HZ=` in `/boot/config-$(uname -r)`, else in `/proc/config.gz` (read with
//!    `gzip -dc`, since the crate carries no inflate code);
//! 2. calibration: two readings of `jiffies` from `/proc/timer_list` 200 ms apart, rounded
//!    to the nearest rate the kernel can be built with (100, 250, 300, 1000).
//!
//! The current jiffies come from `/proc/timer_list` (root only). Without it they are
//! derived from `/proc/uptime`: the kernel starts jiffies at `INITIAL_JIFFIES`, which on
//! 64-bit is `(unsigned long)(unsigned int)(-300*HZ)` (include/linux/jiffies.h, so that
//! 32-bit wrap bugs show five minutes after boot). That estimate drifts after a suspend
//! (boot time counts it, jiffies do not), which is why timer_list is preferred.
//! This module only reads; it never writes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Where the tick rate came from (shown in JSON so a reader can judge the ages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HzSource {
    BootConfig,
    ProcConfig,
    Calibrated,
    /// Nothing answered: 250, the most common distribution setting, is assumed.
    Assumed,
}

/// A reading of the kernel clock, taken once per look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    pub hz: u32,
    pub hz_from: HzSource,
    /// `jiffies` at `at`.
    pub jiffies: u64,
    /// Wall-clock time of the reading.
    pub at: SystemTime,
}

impl Clock {
    /// Read HZ (see the module doc) and the current jiffies.
    pub fn read() -> Clock {
        let (hz, hz_from) = hz();
        let at = SystemTime::now();
        let jiffies = timer_list_jiffies()
            .or_else(|| {
                let up = std::fs::read_to_string("/proc/uptime").ok()?;
                Some(jiffies_from_uptime(parse_uptime(&up)?, hz))
            })
            .unwrap_or(0);
        Clock {
            hz,
            hz_from,
            jiffies,
            at,
        }
    }

    /// A fixed clock (tests, fixtures).
    pub fn fixed(hz: u32, jiffies: u64, at: SystemTime) -> Clock {
        Clock {
            hz,
            hz_from: HzSource::Assumed,
            jiffies,
            at,
        }
    }

    /// How long ago `stamp` was. jiffies wrap, so the difference wraps too (the kernel's
    /// own `time_after` does the same); a stamp from the future reads as zero.
    pub fn age(&self, stamp: u64) -> Duration {
        let d = self.jiffies.wrapping_sub(stamp);
        if d > u64::MAX / 2 {
            return Duration::ZERO;
        }
        let hz = u64::from(self.hz.max(1));
        Duration::from_secs(d / hz) + Duration::from_nanos((d % hz) * 1_000_000_000 / hz)
    }

    /// Wall-clock time of `stamp`.
    pub fn when(&self, stamp: u64) -> SystemTime {
        self.at.checked_sub(self.age(stamp)).unwrap_or(self.at)
    }
}

/// The kernel's tick rate and where it was found.
pub fn hz() -> (u32, HzSource) {
    if let Some(hz) = boot_config() {
        return (hz, HzSource::BootConfig);
    }
    if let Some(hz) = proc_config() {
        return (hz, HzSource::ProcConfig);
    }
    if let Some(hz) = calibrate() {
        return (hz, HzSource::Calibrated);
    }
    (250, HzSource::Assumed)
}

/// `CONFIG_HZ=N` in a kernel config text.
pub fn config_hz(text: &str) -> Option<u32> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("CONFIG_HZ="))
        .and_then(|v| v.trim().parse().ok())
        .filter(|&hz| hz > 0)
}

fn boot_config() -> Option<u32> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let path = Path::new("/boot").join(format!("config-{}", release.trim()));
    config_hz(&std::fs::read_to_string(path).ok()?)
}

fn proc_config() -> Option<u32> {
    if !Path::new("/proc/config.gz").exists() {
        return None;
    }
    let out = Command::new("gzip")
        .args(["-dc", "/proc/config.gz"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| config_hz(&String::from_utf8_lossy(&out.stdout)))
        .flatten()
}

/// The first `jiffies: N` line of `/proc/timer_list`.
pub fn parse_timer_list(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("jiffies:"))
        .and_then(|v| v.trim().parse().ok())
}

fn timer_list_jiffies() -> Option<u64> {
    parse_timer_list(&std::fs::read_to_string("/proc/timer_list").ok()?)
}

/// Seconds since boot, the first field of `/proc/uptime`.
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// jiffies after `uptime` seconds at `hz`, starting from the kernel's `INITIAL_JIFFIES`.
pub fn jiffies_from_uptime(uptime: f64, hz: u32) -> u64 {
    let initial = u64::from((-300i64 * i64::from(hz)) as u32);
    initial.wrapping_add((uptime * f64::from(hz)) as u64)
}

/// Round a measured rate to the nearest HZ the kernel offers.
pub fn nearest_hz(measured: f64) -> u32 {
    [100u32, 250, 300, 1000]
        .into_iter()
        .min_by(|a, b| {
            let da = (f64::from(*a) - measured).abs();
            let db = (f64::from(*b) - measured).abs();
            da.total_cmp(&db)
        })
        .unwrap_or(250)
}

fn calibrate() -> Option<u32> {
    let t0 = std::time::Instant::now();
    let j0 = timer_list_jiffies()?;
    std::thread::sleep(Duration::from_millis(200));
    let j1 = timer_list_jiffies()?;
    let secs = t0.elapsed().as_secs_f64();
    (secs > 0.0).then(|| nearest_hz(j1.wrapping_sub(j0) as f64 / secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_proc_texts_parse() {
        assert_eq!(
            config_hz("# CONFIG_HZ_100 is not set\nCONFIG_HZ_250=y\nCONFIG_HZ=250\n"),
            Some(250)
        );
        assert_eq!(config_hz("CONFIG_HZ=\n"), None);
        assert_eq!(
            parse_timer_list("now at 1 nsecs\n  .clock: 0\njiffies: 4295559000\njiffies: 9\n"),
            Some(4_295_559_000)
        );
        assert_eq!(parse_uptime("3655.02 633.00\n"), Some(3655.02));
        assert_eq!(parse_uptime(""), None);
    }

    #[test]
    fn initial_jiffies_sit_five_minutes_before_the_32_bit_wrap() {
        // At boot jiffies are 2^32 - 300*HZ; 300 s later they reach 2^32.
        assert_eq!(jiffies_from_uptime(0.0, 250), (1u64 << 32) - 75_000);
        assert_eq!(jiffies_from_uptime(300.0, 250), 1u64 << 32);
        assert_eq!(jiffies_from_uptime(300.0, 1000), 1u64 << 32);
    }

    #[test]
    fn ages_use_hz_and_never_go_negative() {
        let c = Clock::fixed(
            250,
            10_000,
            SystemTime::UNIX_EPOCH + Duration::from_secs(100),
        );
        assert_eq!(c.age(9_750), Duration::from_secs(1));
        assert_eq!(c.age(9_875), Duration::from_millis(500));
        assert_eq!(c.age(10_001), Duration::ZERO);
        assert_eq!(
            c.when(7_500),
            SystemTime::UNIX_EPOCH + Duration::from_secs(90)
        );
        assert_eq!(nearest_hz(247.3), 250);
        assert_eq!(nearest_hz(990.0), 1000);
        assert_eq!(nearest_hz(290.0), 300);
    }
}
