//! `km3mon dump` end to end (being written).
