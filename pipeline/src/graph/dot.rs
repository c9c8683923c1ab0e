//! `km3mon graph`: the graph as Graphviz DOT.

use std::fmt::Write;

use super::Graph;
use crate::operator::Role;

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn to_dot(g: &Graph) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph km3mon {{");
    let _ = writeln!(out, "  rankdir=LR;");
    if let Some(d) = &g.description {
        let _ = writeln!(out, "  label={};", quote(d));
    }
    for n in &g.nodes {
        let shape = match n.role {
            Role::Source => "invhouse",
            Role::Transform => "box",
            Role::Sink => "house",
        };
        let _ = writeln!(
            out,
            "  {} [shape={shape}, label={}];",
            quote(&n.name),
            quote(&format!("{}\n({})", n.name, n.type_name))
        );
    }
    for n in &g.nodes {
        for i in &n.inputs {
            let accepts = n.node.accepts();
            let kinds: Vec<&str> = g
                .node(i)
                .map(|u| u.node.outputs())
                .unwrap_or_default()
                .into_iter()
                .filter(|k| accepts.contains(k))
                .map(|k| k.name())
                .collect();
            let kind = kinds.join(", ");
            let _ = writeln!(
                out,
                "  {} -> {} [label={}];",
                quote(i),
                quote(&n.name),
                quote(&kind)
            );
        }
    }
    out.push_str("}\n");
    out
}
