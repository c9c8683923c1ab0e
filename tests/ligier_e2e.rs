//! Ligier, mirror, record and publish end to end (being written).
