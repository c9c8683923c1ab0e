//! The monitors' shell: [`pipeline::shell`] (data sorted per timestamp,
//! event-time timers, end of input), re-exported where the operators
//! have always found it.
//!
//! A monitor implements [`Monitor`] and is built with [`ordered_items`]
//! (whole-detector, on worker 0) or [`partitioned`] (by a stable key);
//! every decision that depends on elapsed data time is a timer
//! ([`Out::timer`] → [`Monitor::on_timer`]); windows use
//! [`Tumbling`]. Unit tests drive a monitor with [`run_by_hand`] or, for
//! chosen frontier steps, [`drive`].

pub use pipeline::shell::window::{Tumbling, Window};
pub use pipeline::shell::{
    drive, ordered, ordered_combined, ordered_items, ordered_sink, partitioned, random_steps,
    run_by_hand, Monitor, Out, Step,
};
