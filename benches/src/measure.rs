//! Measuring a run: CPU time of the calling thread, and resident memory of the process.
//!
//! CPU time rather than wall time, because the benchmark machine is shared: a workload that
//! is descheduled while another job runs is not charged for the wait. Per-thread, because
//! every workload runs in one thread.
//!
//! Memory comes from `/proc/self/status` (Linux): `VmRSS` is the resident set now, `VmHWM`
//! its peak ("high water mark"). Writing `5` to `/proc/self/clear_refs` resets the peak to
//! the current resident set (Linux 4.0+), so that a peak measured after it belongs to what
//! ran since.

use std::time::Duration;

/// CPU time consumed so far by the calling thread (`CLOCK_THREAD_CPUTIME_ID`, nanosecond
/// resolution).
///
/// # Panics
/// If the clock is not available (it is on Linux since 2.6.12, and on macOS and the BSDs).
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one `timespec` through the pointer, which points to a
    // live, exclusively borrowed `timespec` on this stack frame; it reads nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    let secs = u64::try_from(ts.tv_sec).expect("CPU time is not negative");
    let nanos = u32::try_from(ts.tv_nsec).expect("tv_nsec is below 10^9");
    Duration::new(secs, nanos)
}

/// Runs `f` and returns its result with the CPU time the calling thread spent in it.
pub fn cpu_time_of<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = thread_cpu_time();
    let out = f();
    let spent = thread_cpu_time().saturating_sub(start);
    (out, spent)
}

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`, ...), in KiB; `None` where there
/// is no such file or field (not Linux).
pub fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kib(&status, field)
}

/// Resets the process's peak resident set to its current one; false if the kernel does not
/// allow it (then a later `VmHWM` includes everything since the process started).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The 1-minute, 5-minute and 15-minute load averages, for the caveat under a table.
pub fn load_average() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let mut words = rest.split_whitespace();
        let value = words.next()?.parse().ok()?;
        (words.next() == Some("kB")).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_parsed_by_exact_name() {
        let status = "Name:\tx\nVmHWM:\t   6120 kB\nVmRSS:\t   5000 kB\nVmRSSX:\t 1 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(6120));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(5000));
        assert_eq!(parse_status_kib(status, "Name"), None);
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn thread_cpu_time_advances_with_work() {
        let (sum, spent) = cpu_time_of(|| (0..2_000_000u64).map(std::hint::black_box).sum::<u64>());
        assert_eq!(sum, 2_000_000 * 1_999_999 / 2);
        assert!(spent > Duration::ZERO);
    }

    #[test]
    fn peak_rss_is_at_least_the_current_rss_on_linux() {
        if let (Some(rss), Some(hwm)) = (proc_status_kib("VmRSS"), proc_status_kib("VmHWM")) {
            assert!(hwm >= rss);
        }
    }
}
