//! km3mon's operators: sources, monitors and sinks, one module each, and
//! the registry that names them.
//!
//! Adding an operator: write a module with a config struct that implements
//! `pipeline::Node` and `pipeline::NodeConfig`, then add one line to
//! [`registry`]. See CONTRIBUTING.md.

pub mod acoustics;
pub mod ahrs;
pub mod alerting;
pub mod decode;
pub mod detector_state;
pub mod dom_activity;
pub mod dom_rates;
pub mod monitor;
pub mod msg;
pub mod plot;
pub mod pmt_rates;
pub mod reco;
pub mod rttc;
pub mod sinks;
pub mod sources;
pub mod synth;
pub mod tag_rates;
#[cfg(test)]
pub mod testing;
pub mod timeslice_rates;
pub mod timesync;
pub mod trigger_rates;
pub mod triggermap;
pub mod util;
pub mod ztplot;

use pipeline::Registry;

/// Every node type a graph may use — one line per operator.
pub fn registry() -> Registry {
    Registry::new()
        .with::<sources::ligier::LigierSource>()
        .with::<sources::files::FileSource>()
        .with::<tag_rates::TagRates>()
        .with::<timeslice_rates::TimesliceRates>()
        .with::<sinks::csv::CsvSink>()
        .with::<decode::Decode>()
        .with::<dom_rates::DomRates>()
        .with::<dom_activity::DomActivity>()
        .with::<pmt_rates::PmtRates>()
        .with::<trigger_rates::TriggerRates>()
        .with::<triggermap::TriggerMap>()
        .with::<timesync::TimeSync>()
        .with::<detector_state::DetectorState>()
        .with::<plot::PlotSink>()
        .with::<sinks::alerts::AlertsJsonl>()
        .with::<sinks::alerts::AlertsMsg>()
        .with::<sinks::notify::AlertsNotify>()
        .with::<msg::dumper::MsgDumper>()
        .with::<msg::stats::LogStats>()
        .with::<ztplot::ZtPlot>()
        .with::<reco::royfit::RoyFit>()
        .with::<reco::time_residuals::TimeResiduals>()
        .with::<ahrs::AhrsCalibration>()
        .with::<rttc::Rttc>()
        .with::<acoustics::Acoustics>()
}
