//! km3mon's operators: sources, monitors and sinks, one module each, and
//! the registry that names them.
//!
//! Adding an operator: write a module with a config struct that implements
//! `pipeline::Node` and `pipeline::NodeConfig`, then add one line to
//! [`registry`]. See CONTRIBUTING.md.

pub mod sinks;
pub mod sources;
pub mod tag_rates;

use pipeline::Registry;

/// Every node type a graph may use — one line per operator.
pub fn registry() -> Registry {
    Registry::new()
        .with::<sources::ligier::LigierSource>()
        .with::<sources::files::FileSource>()
        .with::<tag_rates::TagRates>()
        .with::<sinks::csv::CsvSink>()
}
