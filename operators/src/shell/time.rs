//! Data time as numbers and text: ticks to ns, and UTC formatting
//! (re-exported from `timefmt`, the workspace's one implementation).

use pipeline::item::{Time, TICK_NS};

/// UTC as text: one implementation for the workspace (`timefmt`, on jiff).
pub use timefmt::{hhmm, human, iso, iso_ns, mdhm};

/// Start of a tick in ns.
pub fn ns_of(t: Time) -> u64 {
    t.saturating_mul(TICK_NS)
}
