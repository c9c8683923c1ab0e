//! Turns a spanned TOML value of the graph into a plain `toml::Value`,
//! resolving `${VAR}` / `${VAR:-default}` from the environment,
//! `"@config.Section.key"` and whole sections `"@config.Section"` from the
//! site config, and remembering the span of every key path so that
//! typed-config errors point at the right column — for a whole section, in
//! the site config where the bad key is written.

use std::ops::Range;
use std::sync::Arc;

use toml::de::DeValue;
use toml::Spanned;

use crate::diag::{Diagnostic, Diagnostics, SourceFile};
use crate::site::{lookup_env, SiteConfig};

/// Where a key or value of a node's config is written.
#[derive(Debug, Clone)]
pub(crate) struct Loc {
    /// In the graph file, or in the site config when `via` is set.
    pub span: Range<usize>,
    pub via: Option<Arc<Via>>,
}

/// A whole site-config section pulled into a node by `"@config.Section"`.
#[derive(Debug)]
pub(crate) struct Via {
    /// Span of the `"@config.Section"` string in the graph.
    pub reference: Range<usize>,
    /// Node-relative path of the key holding the reference (e.g. `alerts`).
    pub rel: String,
    pub section: String,
}

impl Loc {
    pub fn graph(span: Range<usize>) -> Loc {
        Loc { span, via: None }
    }
}

pub(crate) struct Converter<'a> {
    pub src: &'a SourceFile,
    pub site: &'a SiteConfig,
    pub diags: &'a mut Diagnostics,
    /// Node-relative key path (serde_path_to_error syntax) → where the value is.
    pub spans: Vec<(String, Loc)>,
    /// Node-relative key path → where the key itself is.
    pub keys: Vec<(String, Loc)>,
    /// Set while converting a whole site-config section.
    pub via: Option<Arc<Via>>,
}

fn join(rel: &str, key: &str) -> String {
    if rel.is_empty() {
        key.to_string()
    } else {
        format!("{rel}.{key}")
    }
}

impl Converter<'_> {
    /// `full` is the dotted path from the document root (for messages),
    /// `rel` the path inside the node (for serde error mapping).
    pub fn convert(
        &mut self,
        v: &Spanned<DeValue<'_>>,
        full: &str,
        rel: &str,
    ) -> Option<toml::Value> {
        let here = self.loc(v.span());
        self.spans.push((rel.to_string(), here));
        Some(match v.get_ref() {
            DeValue::String(s) => return self.string(s, v.span(), full, rel),
            DeValue::Integer(i) => {
                match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                    Ok(n) => toml::Value::Integer(n),
                    Err(e) => {
                        self.diags.push(Diagnostic::at(
                            self.src,
                            v.span(),
                            full,
                            format!("bad integer: {e}"),
                        ));
                        return None;
                    }
                }
            }
            DeValue::Float(f) => toml::Value::Float(parse_float(f.as_str())),
            DeValue::Boolean(b) => toml::Value::Boolean(*b),
            DeValue::Datetime(d) => toml::Value::Datetime(*d),
            DeValue::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for (i, e) in a.iter().enumerate() {
                    out.push(self.convert(e, &format!("{full}[{i}]"), &format!("{rel}[{i}]"))?);
                }
                toml::Value::Array(out)
            }
            DeValue::Table(t) => {
                let mut out = toml::Table::new();
                for (k, e) in t.iter() {
                    let key = k.get_ref().to_string();
                    let at = self.loc(k.span());
                    self.keys.push((join(rel, &key), at));
                    let val = self.convert(e, &join(full, &key), &join(rel, &key))?;
                    out.insert(key, val);
                }
                toml::Value::Table(out)
            }
        })
    }

    fn loc(&self, span: Range<usize>) -> Loc {
        Loc {
            span,
            via: self.via.clone(),
        }
    }

    fn string(
        &mut self,
        s: &str,
        span: Range<usize>,
        full: &str,
        rel: &str,
    ) -> Option<toml::Value> {
        if let Some(reference) = s.strip_prefix("@config.") {
            return self.config_ref(reference, span, full, rel);
        }
        let (out, whole_var) = self.interpolate(s, span, full)?;
        // "${PORT}" alone may stand for a number or a boolean.
        if whole_var {
            if let Ok(n) = out.parse::<i64>() {
                return Some(toml::Value::Integer(n));
            }
            if let Ok(b) = out.parse::<bool>() {
                return Some(toml::Value::Boolean(b));
            }
        }
        Some(toml::Value::String(out))
    }

    fn config_ref(
        &mut self,
        reference: &str,
        span: Range<usize>,
        full: &str,
        rel: &str,
    ) -> Option<toml::Value> {
        let Some((section, key)) = reference.split_once('.') else {
            return self.section_ref(reference, span, full, rel);
        };
        // A key the site config lacks takes the built-in example's value
        // (`km3mon check --config` says which).
        let builtin = SiteConfig::builtin();
        let found = match self.site.get(section, key) {
            Some(v) => Some((v, self.site)),
            None if !self.site.is_builtin() && self.via.is_none() => {
                builtin.get(section, key).map(|v| (v, builtin))
            }
            None => None,
        };
        let Some((value, site)) = found else {
            self.diags.push(Diagnostic::at(
                self.src,
                span,
                full,
                format!(
                    "undefined site-config key `[{section}] {key}` (site config: {})",
                    self.site.src.name
                ),
            ));
            return None;
        };
        // Errors inside the referenced value still point at the reference.
        let at = self.loc(span.clone());
        let site_src = site.src.clone();
        let mut inner = Converter {
            src: &site_src,
            site,
            diags: self.diags,
            spans: Vec::new(),
            keys: Vec::new(),
            via: None,
        };
        let v = inner.convert(value, &format!("{section}.{key}"), rel);
        self.spans
            .extend(inner.spans.into_iter().map(|(p, _)| (p, at.clone())));
        self.keys
            .extend(inner.keys.into_iter().map(|(p, _)| (p, at.clone())));
        v
    }

    /// `"@config.Section"`: the whole table, e.g. `[Alerts]` with its
    /// sub-tables. Errors inside it point into the site config.
    fn section_ref(
        &mut self,
        section: &str,
        span: Range<usize>,
        full: &str,
        rel: &str,
    ) -> Option<toml::Value> {
        let value = match self.site.section(section) {
            Some(v) if self.via.is_none() => v,
            Some(_) => {
                self.diags.push(Diagnostic::at(
                    self.src,
                    span,
                    full,
                    "a site-config section cannot reference another section",
                ));
                return None;
            }
            None => {
                self.diags.push(Diagnostic::at(
                    self.src,
                    span,
                    full,
                    format!(
                        "undefined site-config section `[{section}]` (site config: {}); a single key is `@config.Section.key`",
                        self.site.src.name
                    ),
                ));
                return None;
            }
        };
        let site_src = self.site.src.clone();
        let mut inner = Converter {
            src: &site_src,
            site: self.site,
            diags: self.diags,
            spans: Vec::new(),
            keys: Vec::new(),
            via: Some(Arc::new(Via {
                reference: span,
                rel: rel.to_string(),
                section: section.to_string(),
            })),
        };
        let v = inner.convert(value, section, rel);
        self.spans.extend(inner.spans);
        self.keys.extend(inner.keys);
        v
    }

    /// Replaces `${NAME}` and `${NAME:-default}`; `$$` is a literal `$`.
    /// Returns the text and whether it was a single reference and nothing else.
    fn interpolate(&mut self, s: &str, span: Range<usize>, full: &str) -> Option<(String, bool)> {
        if !s.contains('$') {
            return Some((s.to_string(), false));
        }
        let mut out = String::new();
        let mut rest = s;
        let mut ok = true;
        let mut refs = 0;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                rest = tail;
                continue;
            }
            let Some(body) = after.strip_prefix('{') else {
                out.push('$');
                rest = after;
                continue;
            };
            let Some(end) = closing_brace(body) else {
                self.diags.push(Diagnostic::at(
                    self.src,
                    self.offset_of(&span, "${"),
                    full,
                    "unterminated `${` in string",
                ));
                return None;
            };
            let expr = &body[..end];
            refs += 1;
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            // A default may itself hold references (`${A:-${B:-x}}`),
            // resolved only when it is used.
            let value = match (lookup_env(self.site, name), default) {
                (Some(v), _) => Some(v),
                (None, Some(d)) => match self.interpolate(d, span.clone(), full) {
                    Some((v, _)) => Some(v),
                    None => return None,
                },
                (None, None) => None,
            };
            match value {
                Some(v) => out.push_str(&v),
                None => {
                    ok = false;
                    self.diags.push(Diagnostic::at(
                        self.src,
                        self.offset_of(&span, &format!("${{{expr}}}")),
                        full,
                        format!("undefined variable `{name}` (set it in the environment, in the site config's [env], or write `${{{name}:-default}}`)"),
                    ));
                }
            }
            rest = &body[end + 1..];
        }
        out.push_str(rest);
        let whole =
            refs == 1 && s.starts_with("${") && s.ends_with('}') && s.matches("${").count() == 1;
        ok.then_some((out, whole))
    }

    /// Span of `needle` inside the raw string token, else the token start.
    fn offset_of(&self, span: &Range<usize>, needle: &str) -> Range<usize> {
        let raw = &self.src.text[span.clone()];
        match raw.find(needle) {
            Some(i) => span.start + i..span.start + i + needle.len(),
            None => span.clone(),
        }
    }
}

/// Index of the `}` that closes a `${` whose body starts `body`, counting
/// nested `${…}` (`$$` is an escaped dollar, not a reference).
fn closing_brace(body: &str) -> Option<usize> {
    let b = body.as_bytes();
    let mut depth = 1;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn parse_float(s: &str) -> f64 {
    let s = s.replace('_', "");
    match s.as_str() {
        "inf" | "+inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        "nan" | "+nan" | "-nan" => f64::NAN,
        _ => s.parse().unwrap_or(f64::NAN),
    }
}
