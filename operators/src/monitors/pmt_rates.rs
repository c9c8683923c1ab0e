//! `type = "pmt_rates"`: mean rate per PMT per `interval` from the CLB
//! monitoring packets (IO_MONIT), one waterfall per DU with the high-rate
//! veto overlay (spec §3.3) — **one operator for all DUs** (the original
//! ran a process per DU).
//!
//! Two stages: per-DOM accumulation runs on the worker that owns the DOM
//! (exchange by DOM id, the decoder's routing, so packets do not move
//! again), and closes a window when the frontier passes it; the per-DOM
//! columns then meet on one worker, which appends one column per DU and
//! emits the plots.
//!
//! Fixes of the original: rows come from the detector (any number of
//! floors; a module with the standard 31-PMT layout is ordered by
//! `ORDERED_PMT_IDS`, others by channel), windows are event-time windows
//! (a silent interval is an empty column, not a shifted image), packets of
//! DOMs not in the detector are counted by the decoder.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use daq::detector::address::ORDERED_PMT_IDS;
use daq::detector::{Detector, IdMap};
use pipeline::item::{Item, Time, TICKS_PER_SECOND};
use pipeline::operator::{BuildContext, ItemStream, Node, NodeConfig, Resource, Role};
use pipeline::plot::{Colormap, Plot, PlotSpec, Waterfall, WaterfallColumn};
use pipeline::runtime::state::StateStore;
use pipeline::StreamKind;
use serde::{Deserialize, Serialize};

use crate::shell::iso;
use crate::shell::{ordered, partitioned, Monitor, Out, Tumbling};
use crate::sources::decode::dom_route;

/// (dom_id, floor, channel, rate Hz, HRV) of the newest column.
type PmtRow = (u32, i32, usize, f32, bool);

/// Rates are kept in 10 Hz units (u16): 0 … 655 kHz, far above the colour
/// range, at a fifth of the memory of f64 for 800 columns × all DUs.
pub const UNIT_HZ: f64 = 10.0;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PmtRates {
    /// Seconds of data time per column.
    #[serde(default = "default_interval", deserialize_with = "timespan::de::secs")]
    pub interval: u64,
    /// Colour range in Hz.
    #[serde(default = "default_lowest")]
    pub lowest_rate: f64,
    #[serde(default = "default_highest")]
    pub highest_rate: f64,
    /// A PMT is marked when more than this fraction of its packets in the
    /// interval reported a high-rate veto.
    #[serde(default = "default_hrv")]
    pub hrv_ratio_threshold: f64,
    /// Columns of the waterfall (the original's 800).
    #[serde(default = "default_columns")]
    pub columns: usize,
    /// File name per DU; `{du}` is replaced, `.png` dropped.
    #[serde(default = "default_filename")]
    pub filename: String,
}

fn default_interval() -> u64 {
    10
}
fn default_lowest() -> f64 {
    5000.0
}
fn default_highest() -> f64 {
    15000.0
}
fn default_hrv() -> f64 {
    0.95
}
fn default_columns() -> usize {
    800
}
fn default_filename() -> String {
    "pmt_rates_du{du}.png".into()
}

impl NodeConfig for PmtRates {
    const TYPE: &'static str = "pmt_rates";
    const ROLE: Role = Role::Transform;
    const ABOUT: &'static str =
        "mean PMT rates per interval from IO_MONIT, one waterfall per DU with the HRV overlay";
    const EXAMPLE: &'static str = r#"inputs = ["monitoring"]
interval = 10"#;
}

impl Node for PmtRates {
    fn resources(&self) -> Vec<(String, Resource)> {
        vec![
            (
                "filename".into(),
                Resource::Plot(self.filename.trim_end_matches(".png").to_string()),
            ),
            (String::new(), Resource::Detector),
        ]
    }
    fn accepts(&self) -> Vec<StreamKind> {
        vec![StreamKind::Tmch]
    }
    fn produces(&self) -> Option<StreamKind> {
        Some(StreamKind::Plots)
    }
    fn check(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        if self.interval == 0 {
            e.push(("interval".into(), "must be at least 1 second".into()));
        }
        if self.columns == 0 {
            e.push(("columns".into(), "must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&self.hrv_ratio_threshold) {
            e.push((
                "hrv_ratio_threshold".into(),
                "must be within 0 and 1".into(),
            ));
        }
        e
    }
    fn build<'s>(
        &self,
        ctx: &BuildContext<'s>,
        input: Option<ItemStream<'s>>,
    ) -> anyhow::Result<Option<ItemStream<'s>>> {
        let input = input.ok_or_else(|| anyhow::anyhow!("pmt_rates needs an input"))?;
        let det = ctx.detector()?;
        let columns = per_dom_columns(ctx, input, self.interval, self.hrv_ratio_threshold);
        let mut monitor = PmtRatesMonitor::new(self, &det);
        if ctx.is_leader() {
            if let Some(saved) = ctx.state().load_all::<Saved>().remove("state") {
                monitor.restore(saved);
            }
        }
        Ok(Some(ordered(
            ctx,
            columns,
            "pmt_rates",
            |c: &DomColumn| c.dom_id,
            monitor,
        )))
    }
}

/// One DOM's interval: mean rate per channel (Hz) and the channels marked HRV.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomColumn {
    pub end_s: u64,
    pub dom_id: u32,
    pub rates_hz: Vec<f32>,
    pub hrv: u32,
}

/// Accumulator of one DOM in one window.
#[derive(Default, Serialize, Deserialize)]
struct Acc {
    sums: [f64; 31],
    hrv: [u32; 31],
    packets: u32,
}

impl Acc {
    fn add(&mut self, p: &daq::tmch::TmchPacket) {
        self.packets += 1;
        for (c, count) in p.counts.iter().enumerate() {
            self.sums[c] += f64::from(*count) * 10.0;
        }
        for c in p.hrv_channels() {
            if let Some(h) = self.hrv.get_mut(usize::from(c)) {
                *h += 1;
            }
        }
    }

    /// Mean rate per channel; HRV where more than `threshold` of the
    /// packets reported it.
    fn finish(self, dom_id: u32, end_s: u64, threshold: f64) -> DomColumn {
        let n = f64::from(self.packets.max(1));
        let mut hrv = 0u32;
        for (c, k) in self.hrv.iter().enumerate() {
            if f64::from(*k) / n > threshold {
                hrv |= 1 << c;
            }
        }
        DomColumn {
            end_s,
            dom_id,
            rates_hz: self.sums.iter().map(|s| (s / n) as f32).collect(),
            hrv,
        }
    }
}

/// Stage 1: per DOM and window, on the DOM's worker (exchanged by DOM,
/// a stable key); a window closes with a shell timer at its last tick. A
/// partial window at the end of a replay is written too (the waterfall's
/// last column, as live would show it).
fn per_dom_columns<'s>(
    ctx: &BuildContext<'s>,
    input: ItemStream<'s>,
    interval: u64,
    threshold: f64,
) -> timely::dataflow::Stream<'s, Time, Vec<DomColumn>> {
    let window: Time = interval * TICKS_PER_SECOND;
    // A stopped run's open windows, of every worker: each worker keeps
    // the DOMs routed to it (`Exchange` sends a DOM to `route % peers`).
    let store = ctx.state().part("doms");
    let saved = store.load_all::<Tumbling<IdMap<Acc>>>();
    let (index, peers) = (ctx.index(), ctx.peers() as u64);
    let mut saved = Some(saved);
    partitioned(
        ctx,
        input,
        "pmt_rates_dom",
        |i: &Item| match i {
            Item::Tmch(p) => dom_route(p.dom_id),
            _ => 0,
        },
        // Sums of whole numbers: any order gives the same bits.
        |_: &Item| (),
        move || {
            let mut windows = Tumbling::new(window);
            for part in saved.take().into_iter().flat_map(|s| s.into_values()) {
                windows.merge(part, |mine: &mut IdMap<Acc>, theirs| {
                    mine.extend(
                        theirs
                            .into_iter()
                            .filter(|(dom, _)| dom_route(*dom) % peers == index as u64),
                    );
                });
            }
            Some(DomWindows {
                windows,
                window,
                threshold,
                key: format!("w{index}"),
                doms: None,
            })
        },
    )
}

struct DomWindows {
    windows: Tumbling<IdMap<Acc>>,
    window: Time,
    threshold: f64,
    /// This worker's key in the `doms` part of the node's state.
    key: String,
    /// That part's store, made once: it remembers a failing save, so a
    /// full disk is logged once, not at every save.
    doms: Option<StateStore>,
}

impl DomWindows {
    fn emit(&self, end: Time, accs: IdMap<Acc>, out: &mut Out<DomColumn>) {
        let end_s = end / TICKS_PER_SECOND;
        let mut cols: Vec<DomColumn> = accs
            .into_iter()
            .map(|(dom_id, a)| a.finish(dom_id, end_s, self.threshold))
            .collect();
        cols.sort_by_key(|c| c.dom_id);
        for c in cols {
            out.give(end - 1, c);
        }
    }
}

impl Monitor<Item, DomColumn> for DomWindows {
    fn on_data(&mut self, t: Time, data: Vec<Item>, out: &mut Out<DomColumn>) {
        let accs = self.windows.at(t, out);
        for item in data {
            let Item::Tmch(p) = item else { continue };
            accs.entry(p.dom_id).or_default().add(&p);
        }
    }

    fn on_timer(&mut self, t: Time, out: &mut Out<DomColumn>) {
        if let Some((w, accs)) = self.windows.close(t) {
            self.emit(w.end, accs, out);
        }
    }

    fn on_end(&mut self, _last: Option<Time>, out: &mut Out<DomColumn>) {
        for (w, accs) in self.windows.drain() {
            debug_assert_eq!(w.end - w.start, self.window);
            self.emit(w.end, accs, out);
        }
    }

    /// Stopped: the open windows are saved, not written partial.
    fn on_stop(&mut self, _last: Option<Time>, _out: &mut Out<DomColumn>) {}

    fn save(&mut self, store: &StateStore) {
        self.doms
            .get_or_insert_with(|| store.part("doms"))
            .save(&BTreeMap::from([(self.key.clone(), &self.windows)]));
    }
}

/// Where a DOM's channels go in its DU's waterfall.
struct Slot {
    du: usize,
    floor: i32,
    first_row: usize,
    standard: bool,
    n_pmts: usize,
}

struct DuImage {
    du: u32,
    n_rows: usize,
    bands: Vec<(usize, usize, String)>,
    columns: VecDeque<Arc<WaterfallColumn>>,
    empty: Arc<WaterfallColumn>,
    has_data: bool,
}

pub struct PmtRatesMonitor {
    det_id: i32,
    interval_s: u64,
    n_columns: usize,
    lowest: f64,
    highest: f64,
    threshold: f64,
    filename: String,
    slots: HashMap<u32, Slot>,
    dus: Vec<DuImage>,
    last_end_s: Option<u64>,
    /// The input ended or stopped: the next save is the last of the run.
    finished: bool,
}

/// The waterfalls of a run that ended or stopped (megabytes for a large
/// detector: saved then only, not at every state interval). Per DU: its
/// columns, `None` for an empty one.
#[derive(Serialize, Deserialize)]
struct Saved {
    last_end_s: Option<u64>,
    dus: BTreeMap<u32, (bool, Vec<Option<WaterfallColumn>>)>,
}

impl PmtRatesMonitor {
    pub fn new(c: &PmtRates, det: &Detector) -> PmtRatesMonitor {
        let mut slots = HashMap::new();
        let mut dus = Vec::new();
        for (i, du) in det.dus().into_iter().enumerate() {
            let mut modules: Vec<_> = det.modules_of_du(du).filter(|m| m.is_optical()).collect();
            modules.sort_by_key(|m| m.floor);
            let mut row = 0;
            let mut bands = Vec::new();
            for m in modules {
                let n = m.n_pmts();
                slots.insert(
                    m.dom_id,
                    Slot {
                        du: i,
                        floor: m.floor,
                        first_row: row,
                        standard: m.has_standard_layout(),
                        n_pmts: n,
                    },
                );
                bands.push((row, n, format!("Floor {}", m.floor)));
                row += n;
            }
            dus.push(DuImage {
                du,
                n_rows: row,
                bands,
                columns: VecDeque::new(),
                empty: Arc::new(empty_column(0, row)),
                has_data: false,
            });
        }
        PmtRatesMonitor {
            det_id: det.det_id(),
            interval_s: c.interval,
            n_columns: c.columns,
            lowest: c.lowest_rate,
            highest: c.highest_rate,
            threshold: c.hrv_ratio_threshold,
            filename: c.filename.trim_end_matches(".png").to_string(),
            slots,
            dus,
            last_end_s: None,
            finished: false,
        }
    }

    fn restore(&mut self, mut saved: Saved) {
        self.last_end_s = saved.last_end_s;
        for img in &mut self.dus {
            let Some((has_data, columns)) = saved.dus.remove(&img.du) else {
                continue;
            };
            img.has_data = has_data;
            img.columns = columns
                .into_iter()
                .map(|c| c.map_or_else(|| img.empty.clone(), Arc::new))
                .collect();
            while img.columns.len() > self.n_columns {
                img.columns.pop_front();
            }
        }
    }

    fn row_of(slot: &Slot, channel: usize) -> Option<usize> {
        if channel >= slot.n_pmts {
            return None;
        }
        let within = if slot.standard {
            ORDERED_PMT_IDS[channel]
        } else {
            channel
        };
        Some(slot.first_row + within)
    }

    fn push(&mut self, col: Vec<Option<WaterfallColumn>>) {
        for (img, c) in self.dus.iter_mut().zip(col) {
            let c = c.map_or_else(|| img.empty.clone(), Arc::new);
            img.columns.push_back(c);
            while img.columns.len() > self.n_columns {
                img.columns.pop_front();
            }
        }
    }
}

fn empty_column(end_s: u64, rows: usize) -> WaterfallColumn {
    WaterfallColumn {
        end_s,
        values: vec![WaterfallColumn::NO_DATA; rows],
        marks: vec![0; rows.div_ceil(64)],
    }
}

impl Monitor<DomColumn> for PmtRatesMonitor {
    fn on_data(&mut self, t: Time, data: Vec<DomColumn>, out: &mut Out) {
        let Some(end_s) = data.first().map(|c| c.end_s) else {
            return;
        };
        // Silent intervals are empty columns, so the time axis stays true.
        if let Some(last) = self.last_end_s {
            let missing = ((end_s.saturating_sub(last)) / self.interval_s.max(1)).saturating_sub(1);
            for _ in 0..(missing as usize).min(self.n_columns) {
                self.push(vec![None; self.dus.len()]);
            }
        }
        self.last_end_s = Some(end_s);
        let mut cols: Vec<Option<WaterfallColumn>> = vec![None; self.dus.len()];
        let mut json_rows: Vec<Vec<PmtRow>> = vec![Vec::new(); self.dus.len()];
        for c in &data {
            let Some(slot) = self.slots.get(&c.dom_id) else {
                continue;
            };
            let img = &self.dus[slot.du];
            let col = cols[slot.du].get_or_insert_with(|| empty_column(end_s, img.n_rows));
            for (ch, r) in c.rates_hz.iter().enumerate() {
                let Some(row) = Self::row_of(slot, ch) else {
                    continue;
                };
                col.values[row] = (f64::from(*r) / UNIT_HZ).round().min(65_534.0) as u16;
                let hrv = c.hrv & (1 << ch) != 0;
                if hrv {
                    col.marks[row / 64] |= 1 << (row % 64);
                }
                json_rows[slot.du].push((c.dom_id, slot.floor, ch, *r, hrv));
            }
        }
        for (img, c) in self.dus.iter_mut().zip(&cols) {
            img.has_data |= c.is_some();
        }
        self.push(cols);
        for (i, img) in self.dus.iter().enumerate() {
            if !img.has_data {
                continue;
            }
            let wf = Waterfall {
                title: format!(
                    "Mean PMT Rates for DetID-{} DU-{} - colours from {:.1}kHz to {:.1}kHz (HRV ratio threshold {})",
                    self.det_id,
                    img.du,
                    self.lowest / 1000.0,
                    self.highest / 1000.0,
                    self.threshold
                ),
                subtitle: "PMTs ordered from top to bottom".into(),
                data_time_ns: end_s * 1_000_000_000,
                interval_s: self.interval_s,
                unit: UNIT_HZ,
                vmin: self.lowest,
                vmax: self.highest,
                colormap: Colormap::Cividis,
                colorbar_label: "rate [Hz]".into(),
                n_rows: img.n_rows,
                bands: img.bands.clone(),
                n_columns: self.n_columns,
                columns: img.columns.iter().cloned().collect(),
            };
            let json = du_json(self.det_id, img.du, end_s, self.interval_s, &json_rows[i]);
            let plot = Plot {
                name: self.filename.replace("{du}", &img.du.to_string()),
                spec: PlotSpec::Waterfall(wf),
                json: Some(json),
            };
            out.give(t, Item::Plot(Arc::new(plot)));
        }
    }

    fn on_end(&mut self, _last: Option<Time>, _out: &mut Out) {
        self.finished = true;
    }

    fn save(&mut self, store: &StateStore) {
        if !self.finished {
            return;
        }
        let dus = self
            .dus
            .iter()
            .map(|img| {
                let columns = img
                    .columns
                    .iter()
                    .map(|c| (!Arc::ptr_eq(c, &img.empty)).then(|| (**c).clone()))
                    .collect();
                (img.du, (img.has_data, columns))
            })
            .collect();
        let saved = Saved {
            last_end_s: self.last_end_s,
            dus,
        };
        store.save(&BTreeMap::from([("state".to_string(), saved)]));
    }
}

/// The latest column of a DU: what the rightmost pixels show.
fn du_json(det_id: i32, du: u32, end_s: u64, interval_s: u64, rows: &[PmtRow]) -> String {
    #[derive(Serialize)]
    struct Pmt {
        dom_id: u32,
        floor: i32,
        channel: usize,
        rate_hz: f32,
        hrv: bool,
    }
    #[derive(Serialize)]
    struct Doc {
        det_id: i32,
        du: u32,
        time_utc: String,
        interval_s: u64,
        pmts: Vec<Pmt>,
    }
    let doc = Doc {
        det_id,
        du,
        time_utc: iso(end_s as i64),
        interval_s,
        pmts: rows
            .iter()
            .map(|&(dom_id, floor, channel, rate_hz, hrv)| Pmt {
                dom_id,
                floor,
                channel,
                rate_hz,
                hrv,
            })
            .collect(),
    };
    serde_json::to_string(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::run_by_hand;
    use crate::shell::testing::tmch;

    #[test]
    fn interval_means_and_hrv_ratio() {
        let mut a = Acc::default();
        for i in 0..10u64 {
            // channel 0 in HRV in 9 of 10 packets, channel 1 in 5 of 10
            let hrv = if i < 9 { 1 } else { 0 } | if i < 5 { 2 } else { 0 };
            a.add(&tmch(i * 100_000_000, 5, 100 + i as u32, hrv));
        }
        let c = a.finish(5, 10, 0.85);
        assert!((c.rates_hz[7] - 1045.0).abs() < 1e-3, "{}", c.rates_hz[7]);
        assert_eq!(c.hrv, 1);
    }

    #[test]
    fn rows_follow_the_detector_and_the_vertical_pmt_order() {
        // 2 DUs of 20 floors (more than 18) with 31 PMTs, plus base modules.
        let det = Detector::generate(7, 2, 20, 31);
        let cfg: PmtRates = serde_json::from_str(r#"{"columns": 4}"#).unwrap();
        let mut m = PmtRatesMonitor::new(&cfg, &det);
        let top = det.module_at(2, 20).unwrap().dom_id;
        let mut rates = vec![0.0f32; 31];
        rates[22] = 5000.0; // channel 22 = the downward PMT, rank 0
        rates[7] = 9000.0; // rank 30, the top
        let col = DomColumn {
            end_s: 100,
            dom_id: top,
            rates_hz: rates,
            hrv: 1 << 7,
        };
        let out = run_by_hand(&mut m, vec![(999, vec![col])]);
        assert_eq!(out.len(), 1, "only the DU with data is drawn");
        let Item::Plot(p) = &out[0].1 else { panic!() };
        assert_eq!(p.name, "pmt_rates_du2");
        let PlotSpec::Waterfall(w) = &p.spec else {
            panic!()
        };
        assert_eq!(w.n_rows, 20 * 31);
        let c = w.columns.last().unwrap();
        let band = 19 * 31;
        assert_eq!(c.values[band], 500);
        assert_eq!(c.values[band + 30], 900);
        assert!(c.marked(band + 30) && !c.marked(band));
        assert_eq!(c.values[0], WaterfallColumn::NO_DATA);
    }
}
