//! Replay progress (data time reached, bytes, rate, ETA), drawn on stderr
//! only when it is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Default, Debug)]
pub struct Progress {
    pub bytes_total: AtomicU64,
    pub bytes_read: AtomicU64,
    pub records: AtomicU64,
    /// Latest data time read, UTC ns.
    pub data_ns: AtomicU64,
}

/// The replay's progress bar (indicatif): bytes, rate, ETA and the data
/// time reached. Hidden when stderr is not a terminal. While it is shown,
/// log lines go through [`log_writer`], which lifts the bar for the line, so
/// a warning no longer glues onto the bar.
pub struct Bar {
    bar: Option<ProgressBar>,
}

/// The bar being shown, for [`log_writer`].
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

impl Bar {
    pub fn new() -> Bar {
        if !std::io::stderr().is_terminal() {
            return Bar { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "[{bar:30}] {percent:>3}%  data {msg}  {bytes}/{total_bytes}  {bytes_per_sec}  ETA {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        *SHOWN.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        Bar { bar: Some(bar) }
    }

    /// A bar of `total` steps of something other than bytes (`simulate -o`:
    /// seconds of data written), with `what` after the count.
    pub fn steps(total: u64, what: &str) -> Bar {
        if !std::io::stderr().is_terminal() {
            return Bar { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(total.max(1)), ProgressDrawTarget::stderr());
        let template = format!("[{{bar:30}}] {{percent:>3}}%  {{pos}}/{{len}} {what}  ETA {{eta}}");
        bar.set_style(
            ProgressStyle::with_template(&template)
                .expect("a valid template")
                .progress_chars("=> "),
        );
        *SHOWN.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
        Bar { bar: Some(bar) }
    }

    /// Steps done, for a bar made by [`Bar::steps`].
    pub fn set_steps(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    /// Removes the bar of [`Bar::steps`] (its last state stays on screen).
    pub fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
            SHOWN.lock().unwrap_or_else(|e| e.into_inner()).take();
            // The finished bar leaves the cursor at its end: the next log
            // line would glue onto it.
            eprintln!();
        }
    }

    pub fn draw(&self, p: &Progress) {
        let Some(bar) = &self.bar else { return };
        bar.set_length(p.bytes_total.load(Ordering::Relaxed).max(1));
        bar.set_position(p.bytes_read.load(Ordering::Relaxed));
        let data_s = p.data_ns.load(Ordering::Relaxed) / 1_000_000_000;
        bar.set_message(format!(
            "{}  {} records",
            utc_string(data_s),
            p.records.load(Ordering::Relaxed)
        ));
    }

    pub fn finish(&self, p: &Progress) {
        if let Some(bar) = &self.bar {
            self.draw(p);
            bar.finish();
            SHOWN.lock().unwrap_or_else(|e| e.into_inner()).take();
            // The finished bar leaves the cursor at its end: the next log
            // line would glue onto it.
            eprintln!();
        }
    }
}

impl Default for Bar {
    fn default() -> Self {
        Bar::new()
    }
}

/// Where log lines go: stderr, with the progress bar (if one is shown)
/// lifted while the line is written. Give it to the log subscriber
/// (`tracing_subscriber::fmt::layer().with_writer(log_writer)`).
pub fn log_writer() -> LogWriter {
    LogWriter
}

/// See [`log_writer`].
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match shown {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
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
