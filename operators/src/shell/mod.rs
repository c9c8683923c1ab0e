//! What the monitors and sinks share. First the shell proper,
//! [`pipeline::shell`] (data sorted per timestamp, event-time timers, end
//! of input), re-exported here; then the alert state machine
//! ([`alerting`]), the detector's map order ([`layout`]), data time as
//! text ([`time`]), the MSG line parser ([`msg`]), synthetic recordings
//! ([`synth`]) and, for unit tests, frame builders (`testing`).
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

pub mod alerting;
pub mod layout;
pub mod msg;
pub mod synth;
#[cfg(test)]
pub mod testing;
pub mod time;

pub use layout::{DomLayout, MapWindow};
pub use time::{hhmm, human, iso, iso_ns, mdhm, ns_of};
