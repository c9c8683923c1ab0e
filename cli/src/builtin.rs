//! Files compiled into the binary, so that an operator with only the
//! binary has everything `km3mon init` writes and `km3mon run` needs.

/// The full suite (`graphs/km3mon.toml`): what `run`, `replay`, `check`
/// and `graph` use without `--graph`, and what `demo` runs.
pub const GRAPH: &str = include_str!("../../graphs/km3mon.toml");
pub const GRAPH_NAME: &str = "km3mon.toml (built in)";

/// The site's environment file, as the compose setup and the systemd units
/// read it.
pub const EXAMPLE_ENV: &str = include_str!("../../deploy/compose/example.env");
