//! Plot-grid layouts: rows of plot names from the site config, `*`
//! wildcards expanded against the plots present, in numeric order so that
//! `pmt_rates_du2` comes before `pmt_rates_du10` (the original sorted
//! lexicographically, which puts DU 10 between DU 1 and DU 2).

use std::cmp::Ordering;

/// One cell of an expanded layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// A plot name (file `<name>.png`), present or not yet.
    Plot(String),
    /// A wildcard that matched nothing yet: shown as a placeholder.
    Pending(String),
}

/// `*` matches any run of characters (also empty), `?` one character;
/// everything else literally — the workspace's one matcher (`wildmatch`).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    wildmatch::WildMatch::new(pattern).matches(name)
}

/// Compares names chunk by chunk, digit runs by value.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let la = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let lb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (trim_zeros(&a[..la]), trim_zeros(&b[..lb]));
                let ord = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[la..];
                b = &b[lb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let z = d.iter().take_while(|&&c| c == b'0').count();
    &d[z.min(d.len().saturating_sub(1))..]
}

/// Expands the wildcards of `rows` against the plot names present.
/// A row whose every cell is a wildcard without match keeps a `Pending`
/// placeholder, so the page still says what it is waiting for.
pub fn expand(rows: &[Vec<String>], present: &[String]) -> Vec<Vec<Cell>> {
    rows.iter()
        .map(|row| {
            let mut out = Vec::new();
            for item in row {
                if item.contains('*') {
                    let mut m: Vec<&String> =
                        present.iter().filter(|n| glob_match(item, n)).collect();
                    m.sort_by(|a, b| natural_cmp(a, b));
                    if m.is_empty() {
                        out.push(Cell::Pending(item.clone()));
                    } else {
                        out.extend(m.into_iter().map(|n| Cell::Plot(n.clone())));
                    }
                } else {
                    out.push(Cell::Plot(item.clone()));
                }
            }
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("pmt_rates_du*", "pmt_rates_du10"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(!glob_match("yaw_calib_du*", "pitch_calib_du1"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }

    #[test]
    fn numeric_order() {
        let mut v = vec!["du10", "du2", "du1", "du02", "dua", "du"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["du", "du1", "du2", "du02", "du10", "dua"]);
    }

    #[test]
    fn expands_rows() {
        let present: Vec<String> = ["pmt_rates_du10", "pmt_rates_du2", "dom_rates"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let rows = vec![
            vec!["dom_rates".to_string(), "dom_activity".to_string()],
            vec!["pmt_rates_du*".to_string()],
            vec!["yaw_calib_du*".to_string()],
        ];
        let e = expand(&rows, &present);
        assert_eq!(
            e[1],
            vec![
                Cell::Plot("pmt_rates_du2".into()),
                Cell::Plot("pmt_rates_du10".into())
            ]
        );
        assert_eq!(e[2], vec![Cell::Pending("yaw_calib_du*".into())]);
        assert_eq!(e[0].len(), 2);
    }
}
