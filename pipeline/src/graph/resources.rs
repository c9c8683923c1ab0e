//! One owner per resource (`Node::resources`): one writer per file, one
//! owner per plot name and listening address.

use std::collections::BTreeMap;

use super::RawNode;
use crate::diag::{Diagnostic, Diagnostics};
use crate::operator::Resource;

/// One owner per exclusive resource (one writer per file): a second claim
/// is an error at its place, naming the first node and its place.
pub(super) fn check_resources(raw: &[RawNode], diags: &mut Diagnostics) {
    let mut owner: BTreeMap<&Resource, (&str, &Diagnostic)> = BTreeMap::new();
    for n in raw {
        for (r, at) in &n.claims {
            if !r.exclusive() {
                continue;
            }
            match owner.get(r) {
                Some((first, first_at)) if *first != n.spec.name => {
                    let mut d = at.clone();
                    let rule = match r {
                        Resource::DetectorHealth => "one detector_state node per graph",
                        _ => "one writer per file, one owner per plot and address",
                    };
                    d.message = format!(
                        "{} is also claimed by node `{first}` ({}:{}:{}{}): {rule}",
                        r.describe(),
                        first_at.file,
                        first_at.line,
                        first_at.column,
                        if first_at.path.is_empty() {
                            String::new()
                        } else {
                            format!(", {}", first_at.path)
                        }
                    );
                    diags.push(d);
                }
                Some(_) => {}
                None => {
                    owner.insert(r, (&n.spec.name, at));
                }
            }
        }
    }
}
