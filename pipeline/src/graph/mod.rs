//! The graph language: parse, resolve, validate — everything before running.
//!
//! ```toml
//! [graph]
//! description = "message rates per tag"
//!
//! [nodes.daq]
//! type = "ligier"
//! host = "${DAQ_LIGIER_IP}"
//! tags = ["IO_EVT", "IO_SUM"]
//!
//! [nodes.rates]
//! type = "tag_rates"
//! inputs = ["daq"]
//! interval = "@config.TimesliceRate.interval"
//! ```
//!
//! All problems are collected (syntax, unknown keys, types, unknown node
//! types, dangling and cyclic inputs, kind mismatches, undefined variables)
//! and reported at once with `file:line:column` and the key path.

mod dot;
mod resources;
mod subst;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::diag::{Diagnostic, Diagnostics, SourceFile};
use crate::operator::{Node, Registry, Resource, Role};
use crate::site::SiteConfig;
use subst::Loc;

pub use dot::to_dot;

/// One validated node.
#[derive(Clone)]
pub struct NodeSpec {
    pub name: String,
    pub type_name: String,
    pub role: Role,
    pub inputs: Vec<String>,
    /// The control group (`km3mon ctl stop GROUP:*`): the node's `group`
    /// key, else [`default_group`] of its role.
    pub group: String,
    pub node: Arc<dyn Node>,
}

/// A node's group when its table names none: sources `daq`, operators
/// `monitoring_process`, sinks `output`. (The graph sets the original's
/// groups — logging, alerts, … — explicitly where they differ.)
pub fn default_group(role: Role) -> &'static str {
    match role {
        Role::Source => "daq",
        Role::Transform => "monitoring_process",
        Role::Sink => "output",
    }
}

/// A validated graph, nodes in topological order (inputs first).
#[derive(Clone)]
pub struct Graph {
    pub file: String,
    pub description: Option<String>,
    pub nodes: Vec<NodeSpec>,
}

impl Graph {
    pub fn load(path: &Path, site: &SiteConfig, registry: &Registry) -> Result<Graph, Diagnostics> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics(vec![Diagnostic {
                file: path.display().to_string(),
                line: 1,
                column: 1,
                path: String::new(),
                message: format!("cannot read graph: {e}"),
            }])
        })?;
        Graph::parse(&path.display().to_string(), &text, site, registry)
    }

    pub fn parse(
        name: &str,
        text: &str,
        site: &SiteConfig,
        registry: &Registry,
    ) -> Result<Graph, Diagnostics> {
        let src = SourceFile::new(name, text);
        let mut diags = Diagnostics::default();
        let (doc, errors) = DeTable::parse_recoverable(text);
        for e in &errors {
            // The parser gives some errors (a too deeply nested table
            // header) no position: point at the most deeply nested line
            // rather than at 1:1.
            let span = e.span().unwrap_or_else(|| crate::diag::deepest_line(text));
            diags.push(Diagnostic::at(&src, span, "", e.message().to_string()));
        }
        if !errors.is_empty() {
            diags.sort();
            return Err(diags);
        }
        let doc_span = doc.span();
        let doc = doc.into_inner();
        let mut description = None;
        let mut raw_nodes: Vec<RawNode> = Vec::new();
        // Nodes whose own table has errors: edges to them are not errors too.
        let mut broken: Vec<String> = Vec::new();
        for (k, v) in doc.iter() {
            match k.get_ref().as_ref() {
                "graph" => description = graph_header(&src, v, &mut diags),
                "nodes" => match v.get_ref().as_table() {
                    Some(t) => {
                        for (nk, nv) in t.iter() {
                            match raw_node(&src, site, registry, nk, nv, &mut diags) {
                                Some(n) => raw_nodes.push(n),
                                None => broken.push(nk.get_ref().to_string()),
                            }
                        }
                    }
                    None => diags.push(Diagnostic::at(
                        &src,
                        v.span(),
                        "nodes",
                        "`nodes` must be a table of [nodes.NAME] tables",
                    )),
                },
                other => diags.push(Diagnostic::at(
                    &src,
                    k.span(),
                    other,
                    format!("unknown top-level key `{other}`, expected `graph` or `nodes`"),
                )),
            }
        }
        if doc.get("nodes").is_none() {
            diags.push(Diagnostic::at(
                &src,
                doc_span.start..doc_span.start,
                "",
                "the graph has no [nodes.NAME] tables",
            ));
        }
        resources::check_resources(&raw_nodes, &mut diags);
        let nodes = check_edges(&src, raw_nodes, &broken, &mut diags);
        if diags.is_empty() {
            Ok(Graph {
                file: name.to_string(),
                description,
                nodes,
            })
        } else {
            diags.sort();
            Err(diags)
        }
    }

    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

pub(super) struct RawNode {
    pub(super) spec: NodeSpec,
    name_span: Range<usize>,
    /// (input name, span of the string) for each input.
    input_spans: Vec<Range<usize>>,
    inputs_span: Option<Range<usize>>,
    /// What the node owns, and where that is written.
    pub(super) claims: Vec<(Resource, Diagnostic)>,
}

fn graph_header(
    src: &SourceFile,
    v: &Spanned<DeValue<'_>>,
    diags: &mut Diagnostics,
) -> Option<String> {
    let Some(t) = v.get_ref().as_table() else {
        diags.push(Diagnostic::at(
            src,
            v.span(),
            "graph",
            "`graph` must be a table",
        ));
        return None;
    };
    let mut description = None;
    for (k, v) in t.iter() {
        match (k.get_ref().as_ref(), v.get_ref()) {
            ("description", DeValue::String(s)) => description = Some(s.to_string()),
            ("description", other) => diags.push(Diagnostic::at(
                src,
                v.span(),
                "graph.description",
                format!("expected a string, found {}", other.type_str()),
            )),
            (other, _) => diags.push(Diagnostic::at(
                src,
                k.span(),
                format!("graph.{other}"),
                format!("unknown key `{other}` in [graph], expected `description`"),
            )),
        }
    }
    description
}

fn raw_node(
    src: &SourceFile,
    site: &SiteConfig,
    registry: &Registry,
    key: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
    diags: &mut Diagnostics,
) -> Option<RawNode> {
    let name = key.get_ref().to_string();
    let base = format!("nodes.{name}");
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        diags.push(Diagnostic::at(
            src,
            key.span(),
            &base,
            "node names may use only letters, digits, `_` and `-`",
        ));
    }
    let Some(table) = value.get_ref().as_table() else {
        diags.push(Diagnostic::at(
            src,
            value.span(),
            &base,
            "a node must be a table ([nodes.NAME])",
        ));
        return None;
    };
    let type_name = match table.get("type") {
        None => {
            diags.push(Diagnostic::at(src, key.span(), &base, "missing `type`"));
            return None;
        }
        Some(t) => match t.get_ref().as_str() {
            Some(s) => (s.to_string(), t.span()),
            None => {
                diags.push(Diagnostic::at(
                    src,
                    t.span(),
                    format!("{base}.type"),
                    "`type` must be a string",
                ));
                return None;
            }
        },
    };
    let Some(ty) = registry.get(&type_name.0) else {
        diags.push(Diagnostic::at(
            src,
            type_name.1,
            format!("{base}.type"),
            format!(
                "unknown node type `{}`; known types: {}",
                type_name.0,
                registry.names().join(", ")
            ),
        ));
        return None;
    };

    let mut inputs = Vec::new();
    let mut input_spans = Vec::new();
    let mut inputs_span = None;
    if let Some(v) = table.get("inputs") {
        inputs_span = Some(v.span());
        match v.get_ref().as_array() {
            Some(a) => {
                for (i, e) in a.iter().enumerate() {
                    match e.get_ref().as_str() {
                        Some(s) => {
                            inputs.push(s.to_string());
                            input_spans.push(e.span());
                        }
                        None => diags.push(Diagnostic::at(
                            src,
                            e.span(),
                            format!("{base}.inputs[{i}]"),
                            "an input must be a node name (string)",
                        )),
                    }
                }
            }
            None => diags.push(Diagnostic::at(
                src,
                v.span(),
                format!("{base}.inputs"),
                "`inputs` must be an array of node names",
            )),
        }
    }
    let mut group = default_group(ty.role).to_string();
    if let Some(v) = table.get("group") {
        match v.get_ref().as_str() {
            Some(g)
                if !g.is_empty()
                    && g != "all"
                    && g.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
            {
                group = g.to_string()
            }
            _ => diags.push(Diagnostic::at(
                src,
                v.span(),
                format!("{base}.group"),
                "`group` must be a name of letters, digits, `_` and `-` (not `all`), e.g. \"monitoring_process\"",
            )),
        }
    }
    let role_article = if ty.role == Role::Transform {
        "an"
    } else {
        "a"
    };
    match (ty.role, inputs_span.is_some()) {
        (Role::Source, true) => diags.push(Diagnostic::at(
            src,
            inputs_span.clone().unwrap_or_default(),
            format!("{base}.inputs"),
            format!("`{}` is a source and takes no inputs", ty.name),
        )),
        (Role::Transform | Role::Sink, false) => diags.push(Diagnostic::at(
            src,
            key.span(),
            &base,
            format!(
                "missing `inputs` ({role_article} {} needs at least one input)",
                ty.role.name()
            ),
        )),
        (Role::Transform | Role::Sink, true) if inputs.is_empty() && input_spans.is_empty() => {
            diags.push(Diagnostic::at(
                src,
                inputs_span.clone().unwrap_or_default(),
                format!("{base}.inputs"),
                "`inputs` is empty",
            ))
        }
        _ => {}
    }

    // Everything but the framework keys goes to the typed config.
    let mut conv = subst::Converter {
        src,
        site,
        diags,
        spans: Vec::new(),
        keys: Vec::new(),
        via: None,
    };
    let mut params = toml::Table::new();
    let mut ok = true;
    for (k, v) in table.iter() {
        let k_str = k.get_ref().as_ref();
        if k_str == "type" || k_str == "inputs" || k_str == "group" {
            continue;
        }
        conv.keys.push((k_str.to_string(), Loc::graph(k.span())));
        match conv.convert(v, &format!("{base}.{k_str}"), k_str) {
            Some(val) => {
                params.insert(k_str.to_string(), val);
            }
            None => ok = false,
        }
    }
    let spans = std::mem::take(&mut conv.spans);
    let keys = std::mem::take(&mut conv.keys);
    if !ok {
        return None;
    }
    let node = match ty.parse(toml::Value::Table(params)) {
        Ok(n) => n,
        Err(e) => {
            let (at, path) = locate(&spans, &keys, &e.path, &e.message, key.span());
            diags.push(located(src, site, &base, at, &path, e.message));
            return None;
        }
    };
    if ty.role == Role::Source {
        // Already reported; no edges into a source.
        inputs.clear();
        input_spans.clear();
    }
    for (path, message) in node.check() {
        // The longest known prefix: a check may name a key that was left
        // out (a missing e-mail recipient list, say).
        let at = locate(&spans, &keys, &path, "", key.span()).0;
        diags.push(located(src, site, &base, at, &path, message));
    }
    // Where each claim is written: the key, else (a default) the header.
    let claims = node
        .resources()
        .into_iter()
        .map(|(path, r)| {
            let at = locate(&spans, &keys, &path, "", key.span()).0;
            (r, located(src, site, &base, at, &path, String::new()))
        })
        .collect();
    Some(RawNode {
        spec: NodeSpec {
            name,
            type_name: type_name.0,
            role: ty.role,
            inputs,
            group,
            node,
        },
        name_span: key.span(),
        input_spans,
        inputs_span,
        claims,
    })
}

/// A diagnostic at `at`: in the graph, or in the site config for a value
/// that came from a whole `"@config.Section"` (then the path is the site
/// config's, and the message says which node pulled it in).
fn located(
    src: &SourceFile,
    site: &SiteConfig,
    base: &str,
    at: Loc,
    path: &str,
    message: String,
) -> Diagnostic {
    if let Some(via) = &at.via {
        let inner = path.strip_prefix(via.rel.as_str()).unwrap_or(path);
        let (l, c) = src.line_col(via.reference.start);
        return Diagnostic::at(
            &site.src,
            at.span,
            format!("{}{inner}", via.section),
            format!(
                "{message} (in `{base}.{}` = \"@config.{}\", {}:{l}:{c})",
                via.rel, via.section, src.name
            ),
        );
    }
    let full = if path.is_empty() {
        base.to_string()
    } else {
        format!("{base}.{path}")
    };
    Diagnostic::at(src, at.span, full, message)
}

/// Maps a serde error path to where it is written: the unknown key itself
/// for `unknown field`, else the longest known prefix, else the node header.
fn locate(
    spans: &[(String, Loc)],
    keys: &[(String, Loc)],
    path: &str,
    message: &str,
    node_span: Range<usize>,
) -> (Loc, String) {
    let path = if path == "." { "" } else { path };
    let find = |p: &str| spans.iter().find(|(k, _)| k == p).map(|(_, s)| s.clone());
    if let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|m| m.split('`').next())
    {
        let candidate = if path.is_empty() || path == field || path.ends_with(&format!(".{field}"))
        {
            if path.is_empty() {
                field.to_string()
            } else {
                path.to_string()
            }
        } else {
            format!("{path}.{field}")
        };
        if let Some(s) = keys
            .iter()
            .find(|(k, _)| *k == candidate)
            .map(|(_, s)| s.clone())
        {
            return (s, candidate);
        }
    }
    let mut p = path.to_string();
    loop {
        if let Some(s) = find(&p) {
            return (s, path.to_string());
        }
        match p.rfind(['.', '[']) {
            Some(i) => p.truncate(i),
            None => return (Loc::graph(node_span), path.to_string()),
        }
    }
}

/// A node that accepts the detector-state table (`health`) must take it
/// from the graph's producer of it: without that edge its texts would
/// place and count DOMs by themselves and could tell another story than
/// `km3mon ctl health` and the gauges at the same data time.
fn one_health_table(
    src: &SourceFile,
    raw: &[RawNode],
    deps: &[Vec<usize>],
    diags: &mut Diagnostics,
) {
    use crate::item::StreamKind;
    let producers: Vec<usize> = (0..raw.len())
        .filter(|&j| raw[j].spec.node.outputs().contains(&StreamKind::Health))
        .collect();
    for (i, n) in raw.iter().enumerate() {
        if !n.spec.node.accepts().contains(&StreamKind::Health) {
            continue;
        }
        for &j in producers
            .iter()
            .filter(|&&j| j != i && !deps[i].contains(&j))
        {
            let up = &raw[j].spec;
            let span = n.inputs_span.clone().unwrap_or_else(|| n.name_span.clone());
            diags.push(Diagnostic::at(
                src,
                span,
                format!("nodes.{}.inputs", n.spec.name),
                format!(
                    "`{}` ({}) produces the detector-state table (`health`) that `{}` ({}) takes its DU placement and counts from: add `{}` to its inputs, or its texts may disagree with `km3mon ctl health`",
                    up.name, up.type_name, n.spec.name, n.spec.type_name, up.name
                ),
            ));
        }
    }
}

/// Dangling inputs, kind mismatches and cycles; returns the nodes in
/// topological order.
fn check_edges(
    src: &SourceFile,
    raw: Vec<RawNode>,
    broken: &[String],
    diags: &mut Diagnostics,
) -> Vec<NodeSpec> {
    let index: HashMap<String, usize> = raw
        .iter()
        .enumerate()
        .map(|(i, n)| (n.spec.name.clone(), i))
        .collect();
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); raw.len()];
    for (i, n) in raw.iter().enumerate() {
        let accepts = n.spec.node.accepts();
        for (input, span) in n.spec.inputs.iter().zip(&n.input_spans) {
            let path = format!("nodes.{}.inputs", n.spec.name);
            let Some(&j) = index.get(input) else {
                if broken.contains(input) {
                    continue;
                }
                let mut known: Vec<&str> = index
                    .keys()
                    .map(String::as_str)
                    .chain(broken.iter().map(String::as_str))
                    .collect();
                known.sort_unstable();
                diags.push(Diagnostic::at(
                    src,
                    span.clone(),
                    path,
                    format!(
                        "input `{input}` is not a node of this graph (nodes: {})",
                        known.join(", ")
                    ),
                ));
                continue;
            };
            let up = &raw[j].spec;
            let outputs = up.node.outputs();
            if outputs.is_empty() {
                diags.push(Diagnostic::at(
                    src,
                    span.clone(),
                    path,
                    format!(
                        "`{input}` is a sink ({}) and produces no stream",
                        up.type_name
                    ),
                ));
            } else if !outputs.iter().any(|k| accepts.contains(k)) {
                let acc: Vec<_> = accepts.iter().map(|k| k.name()).collect();
                let out: Vec<_> = outputs.iter().map(|k| format!("`{k}`")).collect();
                diags.push(Diagnostic::at(
                    src,
                    span.clone(),
                    path,
                    format!("stream kind mismatch: `{input}` ({}) produces {}, but `{}` ({}) accepts {}", up.type_name, out.join(", "), n.spec.name, n.spec.type_name, acc.join(", ")),
                ));
            }
            deps[i].push(j);
        }
    }
    one_health_table(src, &raw, &deps, diags);
    // Kahn's algorithm, stable in file order.
    let mut indegree: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut users: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, d) in deps.iter().enumerate() {
        for &j in d {
            users.entry(j).or_default().push(i);
        }
    }
    let mut order = Vec::new();
    let mut ready: Vec<usize> = (0..raw.len()).filter(|&i| indegree[i] == 0).rev().collect();
    while let Some(i) = ready.pop() {
        order.push(i);
        for &u in users.get(&i).map(Vec::as_slice).unwrap_or(&[]) {
            indegree[u] -= 1;
            if indegree[u] == 0 {
                ready.push(u);
            }
        }
    }
    if order.len() < raw.len() {
        // Left over: nodes on cycles and nodes downstream of them. Peel off
        // those that feed no other left-over node until only cycles remain.
        let mut cyclic: Vec<usize> = (0..raw.len()).filter(|i| !order.contains(i)).collect();
        loop {
            let feeds = |j: usize, set: &[usize]| set.iter().any(|&i| deps[i].contains(&j));
            let keep: Vec<usize> = cyclic
                .iter()
                .copied()
                .filter(|&j| feeds(j, &cyclic))
                .collect();
            if keep.len() == cyclic.len() {
                break;
            }
            cyclic = keep;
        }
        let names: Vec<_> = cyclic.iter().map(|&i| raw[i].spec.name.as_str()).collect();
        for &i in &cyclic {
            let n = &raw[i];
            let span = n.inputs_span.clone().unwrap_or(n.name_span.clone());
            diags.push(Diagnostic::at(
                src,
                span,
                format!("nodes.{}.inputs", n.spec.name),
                format!("input cycle through nodes {}", names.join(", ")),
            ));
        }
    }
    let mut raw: Vec<Option<RawNode>> = raw.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|i| raw[i].take().map(|n| n.spec))
        .collect()
}
