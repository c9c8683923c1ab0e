//! Sinks: where results leave the dataflow. I/O happens on a writer
//! thread, never on a worker.

pub mod alerts;
pub mod csv;
pub mod msg_dumper;
pub mod notify;
pub mod plot;
