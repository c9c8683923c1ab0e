//! `type = "csv"`: appends table rows to a CSV file under `--out`.
//!
//! Rows from all workers reach the leader through the shell
//! (`crate::shell`) and are written in a deterministic order (by time,
//! then by content), so `-w 1`, `-w 2` and a cluster write identical files. The
//! file is appended, never rewritten: the header is written only when the
//! file is new or empty.

use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use pipeline::control::NodeControl;
use pipeline::item::{Item, Row, Time};
use pipeline::operator::{
    check_relative_file, BuildContext, ItemStream, Node, NodeConfig, Resource, Role,
};
use pipeline::runtime::io::RetryingAppender;
use pipeline::runtime::queue::WriterQueue;
use pipeline::runtime::Mode;
use pipeline::StreamKind;
use serde::Deserialize;

use crate::shell::{ordered_sink, Monitor, Out};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSink {
    /// File under the output directory, e.g. `data/tag_rates.csv`.
    pub path: PathBuf,
}

impl NodeConfig for CsvSink {
    const TYPE: &'static str = "csv";
    const ROLE: Role = Role::Sink;
    const ABOUT: &'static str = "appends table rows to a CSV file (header once)";
    const EXAMPLE: &'static str = r#"inputs = ["tag_rates"]
path = "data/example.csv""#;
}

impl Node for CsvSink {
    fn resources(&self) -> Vec<(String, Resource)> {
        vec![("path".into(), Resource::file(&self.path))]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Table]
    }
    fn produces(&self) -> Option<StreamKind> {
        None
    }
    fn check(&self) -> Vec<(String, String)> {
        check_relative_file("path", &self.path)
            .into_iter()
            .collect()
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("csv needs an input"))?;
        let mut tx: Option<WriterQueue<Vec<Row>>> = None;
        if ctx.is_leader() {
            let (s, r) = ctx.writer_queue("csv writer queue full");
            let path = ctx.out_path(&self.path);
            let control = ctx.node_control();
            let live = matches!(ctx.env.mode, Mode::Live);
            ctx.spawn_io("writer", move || writer(&path, r, &control, live))?;
            tx = Some(s);
        }
        ordered_sink(ctx, input, "csv", RowsTo { tx });
        Ok(None)
    }
}

/// The rows of each completed timestamp, sorted (full order: identical
/// files whatever the worker count), to the writer thread.
struct RowsTo {
    tx: Option<WriterQueue<Vec<Row>>>,
}

impl Monitor<Item> for RowsTo {
    fn on_data(&mut self, _t: Time, data: Vec<Item>, _out: &mut Out) {
        let mut rows: Vec<Row> = data
            .into_iter()
            .filter_map(|i| match i {
                Item::Row(r) => Some(*r),
                _ => None,
            })
            .collect();
        rows.sort();
        if let (Some(tx), false) = (&self.tx, rows.is_empty()) {
            let n = rows.len() as u64;
            tx.send(rows, n);
        }
    }
    fn on_end(&mut self, _last: Option<Time>, _out: &mut Out) {
        // Closing the channel lets the writer flush and finish.
        self.tx = None;
    }
}

/// A full disk: live, the rows wait and are retried with back-off (the
/// node FAILED naming the file until a write succeeds); a replay gives the
/// file up at once (`RetryingAppender`).
fn writer(path: &Path, rx: Receiver<Vec<Row>>, control: &NodeControl, live: bool) {
    let mut out = RetryingAppender::new(path, live);
    out.create(control);
    let mut header: Option<Vec<String>> = None;
    let mut header_done = None;
    loop {
        let rows = match out.retry_in() {
            Some(wait) => match rx.recv_timeout(wait) {
                Ok(rows) => rows,
                Err(RecvTimeoutError::Timeout) => {
                    out.flush(control);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(rows) => rows,
                Err(_) => break,
            },
        };
        let mut buf = String::new();
        for row in rows {
            match &header {
                None => header = Some(row.header.clone()),
                Some(h) if *h != row.header => {
                    tracing::error!(
                        "csv {}: row of table `{}` has a different header; dropped",
                        path.display(),
                        row.table
                    );
                    continue;
                }
                Some(_) => {}
            }
            if header_done.is_none() && !out.is_empty() {
                // Rows under another table's header would be read wrong
                // by every tool: refuse the file instead.
                if let Err(e) = same_header(path, &row.header) {
                    control.fail(e);
                    return;
                }
            }
            if !*header_done.get_or_insert_with(|| !out.is_empty()) {
                push_line(&mut buf, &row.header);
                header_done = Some(true);
            }
            push_line(&mut buf, &row.cells);
        }
        out.push(buf.as_bytes(), control);
    }
    out.finish(control);
}

/// Whether the first line of the existing file at `path` is `header`, as
/// [`push_line`] writes it; the error names both.
fn same_header(path: &Path, header: &[String]) -> Result<(), String> {
    use std::io::BufRead as _;
    let mut first = String::new();
    let read = std::fs::File::open(path)
        .map(std::io::BufReader::new)
        .and_then(|mut f| f.read_line(&mut first));
    if let Err(e) = read {
        return Err(format!("cannot read the header of {}: {e}", path.display()));
    }
    let mut expected = String::new();
    push_line(&mut expected, header);
    if first.trim_end_matches(['\r', '\n']) == expected.trim_end_matches('\n') {
        return Ok(());
    }
    Err(format!(
        "will not append to {}: its header is `{}` but the rows have the columns `{}`; \
         move the file aside or give the node another path",
        path.display(),
        first.trim_end(),
        expected.trim_end()
    ))
}

fn push_line(buf: &mut String, cells: &[String]) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            buf.push(',');
        }
        if c.contains([',', '"', '\n', '\r']) {
            buf.push('"');
            buf.push_str(&c.replace('"', "\"\""));
            buf.push('"');
        } else {
            buf.push_str(c);
        }
    }
    buf.push('\n');
}

#[cfg(test)]
mod tests {
    #[test]
    fn appending_needs_the_same_header() {
        let dir = std::env::temp_dir().join(format!("km3mon-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("rates.csv");
        let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        std::fs::write(&p, "timestamp,tag,\"a,b\"\n1,IO_SUM,2\n").unwrap();
        assert_eq!(
            super::same_header(&p, &cols(&["timestamp", "tag", "a,b"])),
            Ok(())
        );
        let err = super::same_header(&p, &cols(&["timestamp", "du", "rate"])).unwrap_err();
        assert!(
            err.contains("rates.csv") && err.contains("timestamp,du,rate"),
            "{err}"
        );
        assert!(err.contains("timestamp,tag,\"a,b\""), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cells_with_commas_and_quotes_are_quoted() {
        let mut b = String::new();
        super::push_line(&mut b, &["a".into(), "b,c".into(), "say \"hi\"".into()]);
        assert_eq!(b, "a,\"b,c\",\"say \"\"hi\"\"\"\n");
    }
}
