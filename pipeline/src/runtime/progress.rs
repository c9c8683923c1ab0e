//! Replay progress (data time reached, bytes, rate), drawn on stderr only
//! when it is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Default, Debug)]
pub struct Progress {
    pub bytes_total: AtomicU64,
    pub bytes_read: AtomicU64,
    pub records: AtomicU64,
    /// Latest data time read, UTC ns.
    pub data_ns: AtomicU64,
}

pub struct Bar {
    start: Instant,
    enabled: bool,
}

impl Bar {
    pub fn new() -> Bar {
        Bar {
            start: Instant::now(),
            enabled: std::io::stderr().is_terminal(),
        }
    }

    pub fn draw(&self, p: &Progress) {
        if !self.enabled {
            return;
        }
        let total = p.bytes_total.load(Ordering::Relaxed).max(1);
        let read = p.bytes_read.load(Ordering::Relaxed);
        let frac = (read as f64 / total as f64).min(1.0);
        let width = 30;
        let filled = (frac * width as f64) as usize;
        let secs = self.start.elapsed().as_secs_f64().max(1e-3);
        let data_s = p.data_ns.load(Ordering::Relaxed) / 1_000_000_000;
        let _ = write!(
            std::io::stderr(),
            "\r[{}{}] {:5.1}%  data {}  {:.1}/{:.1} MB  {:.1} MB/s  {} records ",
            "=".repeat(filled),
            " ".repeat(width - filled),
            frac * 100.0,
            utc_string(data_s),
            read as f64 / 1e6,
            total as f64 / 1e6,
            read as f64 / 1e6 / secs,
            p.records.load(Ordering::Relaxed),
        );
    }

    pub fn finish(&self, p: &Progress) {
        if self.enabled {
            self.draw(p);
            let _ = writeln!(std::io::stderr());
        }
    }
}

impl Default for Bar {
    fn default() -> Self {
        Bar::new()
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` of Unix seconds.
pub fn utc_string(secs: u64) -> String {
    timefmt::human(secs as i64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_string_of_a_sample_time() {
        assert_eq!(super::utc_string(1_574_432_873), "2019-11-22 14:27:53 UTC");
        assert_eq!(super::utc_string(0), "1970-01-01 00:00:00 UTC");
    }
}
