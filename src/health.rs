//! Box health (issue 13 item 4): version, uptime, CPU temperature, memory and whether the clock
//! is synchronised, read from procfs/sysfs and `adjtimex(2)`.
//!
//! The parsers are pure (text in, numbers out) and the readers take the `/proc` and `/sys`
//! directories as parameters ([`HealthPaths`]), so tests feed a fake tree. Nothing here shells
//! out (`timedatectl` needs D-Bus and a fork every sample). A value the box cannot read is
//! `None` — the page says "not available"; it never shows a made-up number. Disk space is the
//! journal's (`StorageStatus::free_bytes/total_bytes`), not measured again here.

use std::path::{Path, PathBuf};

use crate::status::{BoxHealth, ClockSync};

/// Where the kernel's files are: `/proc` and `/sys` on a box, a temp dir in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPaths {
    pub proc_dir: PathBuf,
    pub sys_dir: PathBuf,
}

impl Default for HealthPaths {
    fn default() -> Self {
        HealthPaths {
            proc_dir: PathBuf::from("/proc"),
            sys_dir: PathBuf::from("/sys"),
        }
    }
}

/// Temperatures outside this range (millidegrees Celsius) are sensor faults or unused ACPI
/// zones (some report -273 °C or 255 °C); showing them would be a fake number.
const PLAUSIBLE_MILLI_C: std::ops::RangeInclusive<i64> = -40_000..=150_000;

/// The kernel's `maxerror` ceiling (`NTP_PHASE_LIMIT`, 16 s in µs): it sits there while
/// nothing disciplines the clock.
const MAXERROR_UNSYNC_US: i64 = 16_000_000;

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, in bytes.
pub fn parse_meminfo(text: &str) -> (Option<u64>, Option<u64>) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(parse_kb)
    };
    (field("MemTotal"), field("MemAvailable"))
}

/// `VmRSS` of `/proc/<pid>/status`, in bytes.
pub fn parse_vm_rss(text: &str) -> Option<u64> {
    parse_status_kb(text, "VmRSS:")
}

/// A `kB` line of `/proc/<pid>/status` (`key` with its colon: `"VmRSS:"`, `"VmHWM:"`), in bytes.
pub fn parse_status_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(parse_kb)
}

/// A `kB` line of process `pid`'s `/proc/<pid>/status` in KiB, 0 when it cannot be read: the
/// benchmarks' resident and peak memory of a box they started.
pub fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| parse_status_kb(&t, key))
        .map_or(0, |bytes| bytes / 1024)
}

/// `"   123456 kB"` → bytes.
fn parse_kb(value: &str) -> Option<u64> {
    let mut parts = value.split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => n.checked_mul(1024),
        _ => None,
    }
}

/// The first number of `/proc/uptime` (seconds since boot, fractional), whole seconds.
pub fn parse_uptime(text: &str) -> Option<u64> {
    let first = text.split_whitespace().next()?;
    let secs: f64 = first.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some(secs as u64)
}

/// A thermal zone's `temp` file (millidegrees Celsius), if plausible.
pub fn parse_zone_temp(text: &str) -> Option<i64> {
    let v: i64 = text.trim().parse().ok()?;
    PLAUSIBLE_MILLI_C.contains(&v).then_some(v)
}

/// The CPU's temperature and its zone's type from `<sys>/class/thermal/thermal_zone*/`: the
/// zone whose type names the CPU or SoC (a Pi's `cpu-thermal`), else the lowest-numbered
/// zone that reads. `None` when there is no zone (a VM) or none reads plausibly.
pub fn cpu_temperature(sys_dir: &Path) -> Option<(i64, String)> {
    let dir = sys_dir.join("class/thermal");
    let mut zones: Vec<(u32, PathBuf)> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let n = name.to_str()?.strip_prefix("thermal_zone")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    zones.sort();
    let readings: Vec<(i64, String)> = zones
        .iter()
        .filter_map(|(_, p)| {
            let temp = parse_zone_temp(&std::fs::read_to_string(p.join("temp")).ok()?)?;
            let kind = std::fs::read_to_string(p.join("type"))
                .map(|t| t.trim().to_owned())
                .unwrap_or_default();
            Some((temp, kind))
        })
        .collect();
    let is_cpu = |k: &str| {
        let k = k.to_ascii_lowercase();
        k.contains("cpu") || k.contains("soc") || k.contains("x86_pkg")
    };
    readings
        .iter()
        .find(|(_, k)| is_cpu(k))
        .or_else(|| readings.first())
        .cloned()
}

/// The decision from one `adjtimex(2)` read (modes 0): `state` is its return value (the clock
/// state, `TIME_ERROR` = 5 while unsynchronised), `status` its `STA_*` bits, `maxerror_us`
/// the kernel's bound on the clock's error. Synchronised only when the kernel says so on all
/// three counts — an NTP daemon that lost its servers leaves STA_UNSYNC clear for a while but
/// lets maxerror grow to 16 s.
pub fn clock_sync(state: i32, status: i32, maxerror_us: i64) -> ClockSync {
    const TIME_ERROR: i32 = 5;
    const STA_UNSYNC: i32 = 0x0040;
    let max_error_ms = maxerror_us / 1000;
    if state == TIME_ERROR || status & STA_UNSYNC != 0 || maxerror_us >= MAXERROR_UNSYNC_US {
        ClockSync::NotSynchronised { max_error_ms }
    } else {
        ClockSync::Synchronised { max_error_ms }
    }
}

/// Reads the kernel's clock state (`adjtimex(2)` with modes 0 only reads; no privilege needed).
pub fn read_clock_sync() -> ClockSync {
    // SAFETY: a zeroed `timex` is a valid argument; modes = 0 asks the kernel to fill it in
    // and change nothing.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::adjtimex(&mut t) };
    if rc < 0 {
        return ClockSync::Unknown {
            reason: format!("adjtimex failed: {}", std::io::Error::last_os_error()),
        };
    }
    #[allow(clippy::unnecessary_cast)] // c_long is i32 on armv7, i64 on aarch64
    clock_sync(rc, t.status, t.maxerror as i64)
}

/// One sample of the box's health at `now` (Unix seconds); `started_utc` is when this box
/// process started.
pub fn sample(paths: &HealthPaths, started_utc: i64, now: i64, clock: ClockSync) -> BoxHealth {
    let read = |p: PathBuf| std::fs::read_to_string(p).ok();
    let (mem_total_bytes, mem_available_bytes) = read(paths.proc_dir.join("meminfo"))
        .map(|t| parse_meminfo(&t))
        .unwrap_or((None, None));
    let temp = cpu_temperature(&paths.sys_dir);
    BoxHealth {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_utc,
        uptime_seconds: (now - started_utc).max(0),
        system_uptime_seconds: read(paths.proc_dir.join("uptime")).and_then(|t| parse_uptime(&t)),
        cpu_temp_millicelsius: temp.as_ref().map(|t| t.0),
        cpu_temp_zone: temp.map(|t| t.1),
        rss_bytes: read(paths.proc_dir.join("self/status")).and_then(|t| parse_vm_rss(&t)),
        mem_total_bytes,
        mem_available_bytes,
        clock,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_rss_parse_and_refuse_garbage() {
        let mem =
            "MemTotal:        3884328 kB\nMemFree:          123 kB\nMemAvailable:    2000000 kB\n";
        assert_eq!(
            parse_meminfo(mem),
            (Some(3_884_328 * 1024), Some(2_000_000 * 1024))
        );
        assert_eq!(parse_meminfo("MemTotal: lots\n"), (None, None));
        // A line that merely starts with the name (MemTotalX) is not the field.
        assert_eq!(parse_meminfo("MemTotalX: 5 kB\n").0, None);
        assert_eq!(
            parse_vm_rss("Name:\tcdrbox\nVmRSS:\t   20480 kB\n"),
            Some(20480 * 1024)
        );
        assert_eq!(parse_vm_rss("VmRSS:\t20480 MB\n"), None, "unknown unit");
        assert_eq!(parse_vm_rss(""), None);
    }

    #[test]
    fn uptime_and_temperature_parse() {
        assert_eq!(parse_uptime("12345.67 4000.00\n"), Some(12345));
        assert_eq!(parse_uptime("-1 0"), None);
        assert_eq!(parse_uptime("nan 0"), None);
        assert_eq!(parse_zone_temp("48312\n"), Some(48312));
        assert_eq!(parse_zone_temp("-273000"), None, "an unused ACPI zone");
        assert_eq!(parse_zone_temp("255000"), None);
        assert_eq!(parse_zone_temp(""), None);
    }

    /// The decision a Pi without a real-time clock relies on: before NTP answers the kernel
    /// says TIME_ERROR + STA_UNSYNC and maxerror 16 s (this VM's own reading: 5, 0x40, 16 s).
    #[test]
    fn clock_sync_decision() {
        let table = [
            // (state, status, maxerror µs, synchronised)
            (5, 0x40, 16_000_000, false), // boot, nothing disciplines the clock
            (0, 0x2001, 12_000, true),    // TIME_OK, STA_PLL|STA_NANO, 12 ms
            (0, 0x40, 12_000, false),     // STA_UNSYNC set
            (5, 0x01, 12_000, false),     // TIME_ERROR
            (0, 0x01, 16_000_000, false), // daemon lost its servers, error at the ceiling
            (1, 0x11, 500, true),         // TIME_INS (leap second pending) is still synced
        ];
        for (state, status, maxerror, synced) in table {
            let got = clock_sync(state, status, maxerror);
            assert_eq!(
                matches!(got, ClockSync::Synchronised { .. }),
                synced,
                "state {state} status {status:#x} maxerror {maxerror}: {got:?}"
            );
        }
        assert_eq!(
            clock_sync(0, 0, 12_345),
            ClockSync::Synchronised { max_error_ms: 12 }
        );
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn sample_reads_a_fake_tree_and_says_none_where_nothing_is() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HealthPaths {
            proc_dir: dir.path().join("proc"),
            sys_dir: dir.path().join("sys"),
        };
        // Nothing there (a VM without thermal zones, a procfs we may not read): all None.
        let h = sample(&paths, 100, 160, ClockSync::default());
        assert_eq!(h.uptime_seconds, 60);
        assert_eq!(h.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(
            (h.cpu_temp_millicelsius, h.rss_bytes, h.mem_available_bytes),
            (None, None, None)
        );
        write(
            &paths.proc_dir,
            "meminfo",
            "MemTotal: 1000 kB\nMemAvailable: 400 kB\n",
        );
        write(&paths.proc_dir, "self/status", "VmRSS:\t 30 kB\n");
        write(&paths.proc_dir, "uptime", "99.5 1.0\n");
        // zone0 is an ACPI zone reading nonsense, zone2 a board sensor, zone10 the CPU: the
        // CPU wins, and the numeric sort does not put zone10 before zone2.
        write(
            &paths.sys_dir,
            "class/thermal/thermal_zone0/temp",
            "-273000\n",
        );
        write(
            &paths.sys_dir,
            "class/thermal/thermal_zone0/type",
            "acpitz\n",
        );
        write(
            &paths.sys_dir,
            "class/thermal/thermal_zone2/temp",
            "30000\n",
        );
        write(
            &paths.sys_dir,
            "class/thermal/thermal_zone2/type",
            "board\n",
        );
        write(
            &paths.sys_dir,
            "class/thermal/thermal_zone10/temp",
            "51234\n",
        );
        write(
            &paths.sys_dir,
            "class/thermal/thermal_zone10/type",
            "cpu-thermal\n",
        );
        let h = sample(&paths, 100, 160, ClockSync::default());
        assert_eq!(h.mem_total_bytes, Some(1000 * 1024));
        assert_eq!(h.mem_available_bytes, Some(400 * 1024));
        assert_eq!(h.rss_bytes, Some(30 * 1024));
        assert_eq!(h.system_uptime_seconds, Some(99));
        assert_eq!(h.cpu_temp_millicelsius, Some(51234));
        assert_eq!(h.cpu_temp_zone.as_deref(), Some("cpu-thermal"));
        // Without a CPU zone the first zone that reads plausibly is shown.
        std::fs::remove_dir_all(paths.sys_dir.join("class/thermal/thermal_zone10")).unwrap();
        assert_eq!(
            cpu_temperature(&paths.sys_dir),
            Some((30000, "board".into()))
        );
    }

    /// The real kernel answers (whatever it says on this machine, it is not an error).
    #[test]
    fn adjtimex_reads_on_this_machine() {
        let c = read_clock_sync();
        assert!(!matches!(c, ClockSync::Unknown { .. }), "{c:?}");
    }
}
