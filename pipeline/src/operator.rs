//! The operator contract and the registry type.
//!
//! An operator is a typed config struct (serde, `deny_unknown_fields`) that
//! implements [`Node`] (what it accepts, what it produces, how it builds
//! into timely) and [`NodeConfig`] (its type name and role). The `operators`
//! crate lists every such struct once in its registry; the framework parses
//! a node's table into the struct, checks the edges against the declared
//! kinds, and calls [`Node::build`] on every worker.

use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::item::StreamKind;
pub use crate::runtime::context::{BuildContext, ItemStream, Mode};

/// Where a node sits in the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// No inputs; produces a stream (Ligier subscriber, file replay).
    Source,
    /// Inputs and an output (monitors).
    Transform,
    /// Inputs, no output (CSV, plots, alerts out).
    Sink,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Transform => "operator",
            Role::Sink => "sink",
        }
    }
}

/// A parsed, validated node: what every worker builds from.
pub trait Node: Send + Sync + 'static {
    /// Kinds this node accepts on its inputs (empty for sources).
    fn accepts(&self) -> Vec<StreamKind>;

    /// Kind this node produces (`None` for sinks).
    fn produces(&self) -> Option<StreamKind>;

    /// Every kind this node emits; by default just [`Node::produces`]. A
    /// monitor that emits plots, table rows and alerts lists them all; a
    /// downstream node then receives only the kinds it accepts (the edge
    /// filters), and the edge is valid when at least one kind matches.
    fn outputs(&self) -> Vec<StreamKind> {
        self.produces().into_iter().collect()
    }

    /// The message tags this node reads, if only some: the compiler then
    /// hands it the messages of those tags alone (one pass over a shared
    /// message stream instead of a copy of every batch per reader). The
    /// node must still tolerate other items (a graph may not split).
    fn message_tags(&self) -> Option<Vec<String>> {
        None
    }

    /// Checks beyond what the types express, as `(key path within the node,
    /// message)`; they are reported with the rest of the validation errors.
    fn check(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// What this node owns while it runs, as `(key path within the node,
    /// resource)`: files under `--out` it writes, plot names, listening
    /// addresses, the detector. Validation refuses a graph in which two
    /// nodes claim one exclusive resource, pointing at both (the key, or
    /// the node's header when the value is a default). Default: nothing.
    fn resources(&self) -> Vec<(String, Resource)> {
        Vec::new()
    }

    /// Whether [`BuildContext::detector`] is called: `km3mon run/replay`
    /// then finds one (`--detector`, `[Detector] file`, or the KM3NeT DB).
    /// Derived from [`Node::resources`]: a node that uses the detector
    /// declares [`Resource::Detector`].
    fn needs_detector(&self) -> bool {
        self.resources()
            .iter()
            .any(|(_, r)| matches!(r, Resource::Detector))
    }

    /// Adds this node's timely operators to the scope. `input` is the
    /// concatenation of the node's inputs (`None` for sources). Called once
    /// per worker; any blocking I/O goes to a thread from
    /// [`BuildContext::spawn_io`].
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>>;
}

/// Something a node owns while it runs (see [`Node::resources`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// A file under `--out` that this node alone writes or appends to; a
    /// family of files as a pattern with `*` (`logs/MSG_*.png`).
    File(String),
    /// A plot (`<plots dir>/<name>.png|json`), by name.
    Plot(String),
    /// A listening address `host:port`; port 0 (any free one) never clashes.
    Listen(String),
    /// The detector layout (`--detector` or `[Detector] file`); shared.
    Detector,
    /// The run's one detector-health table (`detector_state`: `km3mon ctl
    /// health`, its gauges, the Detector page): two owners would publish
    /// into one table.
    DetectorHealth,
}

impl Resource {
    /// A file under `--out`, path normalised (`./a//b` = `a/b`).
    pub fn file(p: &std::path::Path) -> Resource {
        let parts: Vec<String> = p
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        Resource::File(parts.join("/"))
    }

    /// Whether two nodes may not both claim it.
    pub fn exclusive(&self) -> bool {
        match self {
            Resource::Detector => false,
            Resource::Listen(a) => !a.ends_with(":0"),
            _ => true,
        }
    }

    /// For messages: `file data/alerts.jsonl`, `plot dom_rates`, ….
    pub fn describe(&self) -> String {
        match self {
            Resource::File(f) => format!("file `{f}`"),
            Resource::Plot(p) => format!("plot `{p}`"),
            Resource::Listen(a) => format!("listening address `{a}`"),
            Resource::Detector => "the detector".into(),
            Resource::DetectorHealth => {
                "the detector-health table (ctl health, km3mon_doms_affected, /detector.html)"
                    .into()
            }
        }
    }
}

/// Ties a config struct to its type name; implemented by every operator.
pub trait NodeConfig: DeserializeOwned + Node {
    /// The `type = "..."` of the node in a graph.
    const TYPE: &'static str;
    const ROLE: Role;
    /// One line for `km3mon check` and the docs.
    const ABOUT: &'static str;
    /// An example node table (the body of `[nodes.NAME]`), checked by the
    /// compliance suite (tests/compliance.rs) in a graph whose upstream
    /// nodes are `daq` (ligier, all tags), `summaryslices`, `events`,
    /// `timeslices`, `monitoring` (tmch), `tag_rates`, and the monitors
    /// `dom_rates_example` (plots), `dom_activity_example` (alerts) and
    /// `royfit_example` (reco residual rows).
    /// Empty: the suite fails for the type.
    const EXAMPLE: &'static str = "";
}

/// A deserialisation error: key path within the node (serde_path_to_error
/// syntax, `.` for the node itself) and message.
#[derive(Debug, Clone)]
pub struct ParseError {
    pub path: String,
    pub message: String,
}

type ParseFn = fn(toml::Value) -> Result<Arc<dyn Node>, ParseError>;

/// One registered node type.
#[derive(Clone)]
pub struct NodeType {
    pub name: &'static str,
    pub role: Role,
    pub about: &'static str,
    pub example: &'static str,
    parse: ParseFn,
}

impl NodeType {
    pub fn of<C: NodeConfig>() -> NodeType {
        NodeType {
            name: C::TYPE,
            role: C::ROLE,
            about: C::ABOUT,
            example: C::EXAMPLE,
            parse: parse_node::<C>,
        }
    }

    pub fn parse(&self, value: toml::Value) -> Result<Arc<dyn Node>, ParseError> {
        (self.parse)(value)
    }
}

fn parse_node<C: NodeConfig>(value: toml::Value) -> Result<Arc<dyn Node>, ParseError> {
    match serde_path_to_error::deserialize::<_, C>(value) {
        Ok(c) => Ok(Arc::new(c)),
        Err(e) => {
            let path = e.path().to_string();
            Err(ParseError {
                path,
                message: e.into_inner().message().to_string(),
            })
        }
    }
}

/// The node types a graph may use.
#[derive(Clone, Default)]
pub struct Registry {
    types: Vec<NodeType>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers `C`; panics on a duplicate name (a programming error).
    #[must_use]
    pub fn with<C: NodeConfig>(mut self) -> Registry {
        assert!(
            self.get(C::TYPE).is_none(),
            "node type {} registered twice",
            C::TYPE
        );
        self.types.push(NodeType::of::<C>());
        self
    }

    pub fn get(&self, name: &str) -> Option<&NodeType> {
        self.types.iter().find(|t| t.name == name)
    }

    pub fn types(&self) -> &[NodeType] {
        &self.types
    }

    /// Sorted type names, for "unknown node type" messages.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v: Vec<_> = self.types.iter().map(|t| t.name).collect();
        v.sort_unstable();
        v
    }
}

/// A path under the output directory; sinks must not escape `--out`.
pub fn check_relative(path_key: &str, p: &std::path::Path) -> Option<(String, String)> {
    use std::os::unix::ffi::OsStrExt as _;
    /// Linux's PATH_MAX and NAME_MAX: longer paths fail at run time.
    const MAX_PATH: usize = 4096;
    const MAX_NAME: usize = 255;
    let bytes = p.as_os_str().as_bytes();
    let shown = || {
        let s = p.display().to_string();
        match s.char_indices().nth(60) {
            Some((i, _)) => format!("{}…", &s[..i]),
            None => s,
        }
    };
    let problem = if p.is_absolute()
        || p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        Some(format!(
            "`{}` must be relative and stay under the output directory (--out)",
            shown()
        ))
    } else if bytes.len() > MAX_PATH {
        Some(format!(
            "the path is {} bytes long; at most {MAX_PATH} work",
            bytes.len()
        ))
    } else {
        p.components()
            .find(|c| c.as_os_str().len() > MAX_NAME)
            .map(|c| {
                format!(
                    "the name `{}` has {} bytes; at most {MAX_NAME} work",
                    shown_name(c.as_os_str()),
                    c.as_os_str().len()
                )
            })
    };
    problem.map(|m| (path_key.to_string(), m))
}

/// [`check_relative`] for a key that names a file (a sink's `path`): it
/// must also be non-empty and not a folder (`""`, `"."`, `"data/"` failed
/// only at run time).
pub fn check_relative_file(path_key: &str, p: &std::path::Path) -> Option<(String, String)> {
    use std::os::unix::ffi::OsStrExt as _;
    let bytes = p.as_os_str().as_bytes();
    if bytes.is_empty() {
        return Some((
            path_key.to_string(),
            "the path is empty: name a file under the output directory".to_string(),
        ));
    }
    if p.file_name().is_none() || bytes.ends_with(b"/") || bytes.ends_with(b"/.") {
        return Some((
            path_key.to_string(),
            format!(
                "`{}` names a folder, not a file (e.g. `data/out.csv`)",
                shown_name(p.as_os_str())
            ),
        ));
    }
    check_relative(path_key, p)
}

fn shown_name(s: &std::ffi::OsStr) -> String {
    let s = s.to_string_lossy();
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.into_owned(),
    }
}

/// Resolves a sink path under the output directory.
pub fn out_path(out_dir: &std::path::Path, rel: &std::path::Path) -> PathBuf {
    out_dir.join(rel)
}
