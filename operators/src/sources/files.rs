//! File replay: recordings made by `km3mon record` and `.dat` dumps
//! (recognised from their content), merged across files in data-time order
//! and paced at `--speed` (or as fast as possible).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use daq::dump::Record;
use pipeline::item::{time_of_ns, Item, Time, TICK_NS};
use pipeline::operator::{BuildContext, ItemStream, Mode, Node, NodeConfig, Role};
use pipeline::runtime::metrics::DropReason;
use pipeline::runtime::source::{channel_source, Feed, Ingress};
use pipeline::runtime::RunEnv;
use pipeline::StreamKind;
use serde::Deserialize;

use super::{message_of, wanted};

/// `type = "files"`: replays the given files (or, if `paths` is empty, the
/// files given to `km3mon replay`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Tags to keep; empty = all.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl NodeConfig for FileSource {
    const TYPE: &'static str = "files";
    const ROLE: Role = Role::Source;
    const ABOUT: &'static str = "replays recordings and .dat dumps in data-time order";
    const EXAMPLE: &'static str = r#"tags = ["IO_SUM"]"#;
}

impl Node for FileSource {
    fn accepts(&self) -> Vec<StreamKind> {
        Vec::new()
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Messages)
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        _input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let (files, speed) = match (&ctx.env.mode, self.paths.is_empty()) {
            (Mode::Replay { files, speed }, true) => (files.clone(), *speed),
            (Mode::Replay { speed, .. }, false) => (self.paths.clone(), *speed),
            (Mode::Live, _) => (self.paths.clone(), Some(1.0)),
        };
        replay_source(ctx, self.tags.clone(), files, speed).map(Some)
    }
}

/// A source replaying `files` (used by `files` and, in replay mode, by
/// `ligier`).
pub fn replay_source<'s>(
    ctx: &BuildContext<'s>,
    tags: Vec<String>,
    files: Vec<PathBuf>,
    speed: Option<f64>,
) -> anyhow::Result<ItemStream<'s>> {
    let env = ctx.env.clone();
    channel_source(ctx, false, |ingress| {
        let mut readers = Vec::new();
        for f in &files {
            let reader = rootio::RecordReader::open_tags(f, &tags)
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", f.display()))?;
            if let Some(warning) = reader.warning() {
                tracing::warn!("{warning}");
            }
            let size = match reader.reads_nothing() {
                true => 0,
                false => std::fs::metadata(f).map(|m| m.len()).unwrap_or(0),
            };
            env.progress.bytes_total.fetch_add(size, Ordering::Relaxed);
            readers.push(FileCursor {
                name: f.display().to_string(),
                reader,
                next: None,
                last: 0,
                done: false,
                position: 0,
            });
        }
        ctx.spawn_io("replay", move || {
            replay_thread(readers, tags, speed, ingress, env)
        })
    })
}

struct FileCursor {
    name: String,
    reader: rootio::RecordReader,
    next: Option<(Time, Item)>,
    /// Latest time of this file: untimed records (MSG) take it, and a
    /// record that goes back in time is placed here, so each file is
    /// monotonic and the merge's watermark holds.
    last: Time,
    done: bool,
    position: u64,
}

impl FileCursor {
    /// Makes `next` hold the next wanted record, if any.
    fn fill(&mut self, tags: &[String], ingress: &Ingress) {
        while self.next.is_none() && !self.done {
            match self.reader.next() {
                None => self.done = true,
                Some(Err(e)) => {
                    tracing::warn!("{}: {e}", self.name);
                    ingress.metrics().drop_record(DropReason::Corrupt, 1);
                }
                Some(Ok(record)) => self.accept(record, tags, ingress),
            }
            self.position = self.reader.position();
        }
    }

    fn accept(&mut self, record: Record, tags: &[String], ingress: &Ingress) {
        let Some(tag) = record.tag.as_ref().map(|t| t.as_str().to_string()) else {
            tracing::debug!(
                "{}: record at byte {} has no recognisable tag",
                self.name,
                record.offset
            );
            ingress.metrics().drop_record(DropReason::Corrupt, 1);
            return;
        };
        if !wanted(tags, &tag) {
            return;
        }
        let msg = message_of(tag, record);
        let t = msg.utc_ns.map_or(self.last, time_of_ns).max(self.last);
        self.last = t;
        self.next = Some((t, Item::Message(Arc::new(msg))));
    }
}

const BATCH: usize = 256;

fn replay_thread(
    mut files: Vec<FileCursor>,
    tags: Vec<String>,
    speed: Option<f64>,
    ingress: Ingress,
    env: Arc<RunEnv>,
) {
    let mut batch: Vec<(Time, Item)> = Vec::with_capacity(BATCH);
    let mut pace: Option<(Instant, Time)> = None;
    let mut base_position = 0;
    loop {
        if env.shutdown_requested() {
            return;
        }
        for f in files.iter_mut() {
            f.fill(&tags, &ingress);
        }
        // The earliest next record over all files.
        let Some(i) = (0..files.len())
            .filter(|&i| files[i].next.is_some())
            .min_by_key(|&i| files[i].next.as_ref().map(|n| n.0))
        else {
            break;
        };
        let (t, item) = files[i].next.take().expect("chosen file has a record");
        if let Some(speed) = speed {
            let (w0, t0) = *pace.get_or_insert((Instant::now(), t));
            let due = w0 + Duration::from_secs_f64((t - t0) as f64 * TICK_NS as f64 / 1e9 / speed);
            let now = Instant::now();
            if due > now {
                // Hand over what is ready before waiting, and count its
                // bytes: paced batches rarely fill up, and the progress
                // bar would otherwise stay at 0 % until the end.
                let position: u64 = files.iter().map(|f| f.position).sum();
                env.progress
                    .bytes_read
                    .fetch_add(position.saturating_sub(base_position), Ordering::Relaxed);
                base_position = position;
                if !batch.is_empty()
                    && !ingress.send(Feed {
                        items: std::mem::take(&mut batch),
                        low: t,
                    })
                {
                    return;
                }
                std::thread::sleep((due - now).min(Duration::from_millis(200)));
                if due > Instant::now() {
                    files[i].next = Some((t, item));
                    continue;
                }
            }
        }
        if let Item::Message(m) = &item {
            env.progress.records.fetch_add(1, Ordering::Relaxed);
            if let Some(ns) = m.utc_ns {
                env.progress.data_ns.fetch_max(ns, Ordering::Relaxed);
            }
        }
        batch.push((t, item));
        if batch.len() >= BATCH {
            files[i].fill(&tags, &ingress);
            let low = files
                .iter()
                .filter_map(|f| f.next.as_ref().map(|n| n.0))
                .min()
                .unwrap_or(t);
            let position: u64 = files.iter().map(|f| f.position).sum();
            env.progress
                .bytes_read
                .fetch_add(position - base_position, Ordering::Relaxed);
            base_position = position;
            if !ingress.send(Feed {
                items: std::mem::take(&mut batch),
                low,
            }) {
                return;
            }
        }
    }
    let position: u64 = files.iter().map(|f| f.position).sum();
    env.progress
        .bytes_read
        .fetch_add(position.saturating_sub(base_position), Ordering::Relaxed);
    if !batch.is_empty() {
        let low = batch.last().map_or(0, |b| b.0);
        ingress.send(Feed { items: batch, low });
    }
    // Dropping the ingress ends the stream: every window closes.
}
