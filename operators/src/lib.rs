//! km3mon's operators: [`sources`], [`monitors`] and [`sinks`], one module
//! each, on what they share ([`shell`]), and the registry that names them.
//! The table in ARCHITECTURE.md ("operators/src") says what goes where.
//!
//! Adding an operator: write a module with a config struct that implements
//! `pipeline::Node` and `pipeline::NodeConfig`, then add one line to
//! [`registry`]. See CONTRIBUTING.md.

pub mod monitors;
pub mod shell;
pub mod sinks;
pub mod sources;

use pipeline::Registry;

/// Every node type a graph may use — one line per operator.
pub fn registry() -> Registry {
    Registry::new()
        .with::<sources::ligier::LigierSource>()
        .with::<sources::files::FileSource>()
        .with::<monitors::tag_rates::TagRates>()
        .with::<monitors::timeslice_rates::TimesliceRates>()
        .with::<sinks::csv::CsvSink>()
        .with::<sources::decode::Decode>()
        .with::<monitors::dom_rates::DomRates>()
        .with::<monitors::dom_activity::DomActivity>()
        .with::<monitors::pmt_rates::PmtRates>()
        .with::<monitors::trigger_rates::TriggerRates>()
        .with::<monitors::triggermap::TriggerMap>()
        .with::<monitors::timesync::TimeSync>()
        .with::<monitors::detector_state::DetectorState>()
        .with::<sinks::plot::PlotSink>()
        .with::<sinks::alerts::AlertsJsonl>()
        .with::<sinks::alerts::AlertsMsg>()
        .with::<sinks::notify::AlertsNotify>()
        .with::<sinks::msg_dumper::MsgDumper>()
        .with::<monitors::log_stats::LogStats>()
        .with::<monitors::ztplot::ZtPlot>()
        .with::<monitors::reco::royfit::RoyFit>()
        .with::<monitors::reco::time_residuals::TimeResiduals>()
        .with::<monitors::ahrs::AhrsCalibration>()
        .with::<monitors::rttc::Rttc>()
        .with::<monitors::acoustics::Acoustics>()
}
