//! km3mon's dataflow framework.
//!
//! A graph is a TOML file of named nodes (sources, operators, sinks). This
//! crate parses it with positions ([`graph`]), resolves references to the
//! site config ([`site`]) and the environment, validates it against the
//! operator [`registry`](operator::Registry) — all before anything runs — and
//! compiles it into a timely dataflow ([`runtime`]). It knows no particular
//! operator: those live in the `operators` crate and implement the contract
//! of [`operator`].

pub mod control;
pub mod diag;
pub mod graph;
pub mod health;
pub mod item;
pub mod logring;
pub mod operator;
pub mod plot;
pub mod runtime;
pub mod shell;
pub mod site;

pub use diag::{Diagnostic, Diagnostics};
pub use graph::{Graph, NodeSpec};
pub use item::{Item, StreamKind, Time};
pub use operator::{BuildContext, Node, NodeConfig, NodeType, Registry, Role};
