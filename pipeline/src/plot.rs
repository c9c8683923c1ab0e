//! What a plot request carries: a declarative description of the figure
//! and the numbers shown, not pixels. Monitors build these on the worker
//! threads (cheap: large data is shared through `Arc`); the plot sink
//! renders them on its own thread.
//!
//! Every type here is plain serde (no untagged enums, no `serde_json::Value`)
//! because items cross process boundaries with bincode in cluster mode.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// One plot request: `NAME.png`, and `NAME.json` beside it when `json` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plot {
    /// File stem under the plot directory, e.g. `dom_rates`, `pmt_rates_du3`.
    pub name: String,
    pub spec: PlotSpec,
    /// The numbers shown, as a JSON document written next to the PNG.
    pub json: Option<String>,
}

impl Plot {
    /// Data time of the newest data shown, ns since the epoch.
    pub fn data_time_ns(&self) -> u64 {
        match &self.spec {
            PlotSpec::DomMap(m) => m.data_time_ns,
            PlotSpec::TimeSeries(s) => s.data_time_ns,
            PlotSpec::Waterfall(w) => w.data_time_ns,
            PlotSpec::HitMatrix(m) => m.data_time_ns,
            PlotSpec::Panels(p) => p.data_time_ns,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rgb(pub u8, pub u8, pub u8);

/// Colour maps of the original's plots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Colormap {
    Cividis,
    Coolwarm,
    Plasma,
    Viridis,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PlotSpec {
    DomMap(DomMap),
    TimeSeries(TimeSeries),
    Waterfall(Waterfall),
    HitMatrix(HitMatrix),
    Panels(Panels),
}

/// The detector-layout map of one value per DOM (spec §1.7): DU on x,
/// floor on y, colour bar, under/over/missing colours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomMap {
    pub title: String,
    /// End of the data shown (ns since the epoch), printed as "data up to".
    pub data_time_ns: u64,
    pub colorbar_label: String,
    pub vmin: f64,
    pub vmax: f64,
    pub colormap: Colormap,
    pub under: Rgb,
    pub over: Rgb,
    pub missing: Rgb,
    /// Every DU of the detector, ascending numerically.
    pub dus: Vec<u32>,
    pub max_floor: i32,
    /// Every DOM of the detector; `value: None` is drawn as missing.
    pub doms: Vec<DomCell>,
    /// A map of states instead of a scale: a DOM whose value equals a
    /// category's is drawn in its colour, and the legend names each
    /// category in place of the colour bar. Empty = the colour scale.
    #[serde(default)]
    pub categories: Vec<Category>,
    /// Per entry of `dus`, its x label and the axis title (e.g. a DU's
    /// beacon columns). Empty = the DU numbers, "DU".
    #[serde(default)]
    pub columns: Option<Columns>,
}

/// The x axis of a [`DomMap`] whose columns are not DUs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Columns {
    pub title: String,
    pub labels: Vec<String>,
}

/// One state of a categorical DOM map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    pub value: f64,
    pub color: Rgb,
    pub label: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DomCell {
    pub du: u32,
    pub floor: i32,
    pub value: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Marker {
    Diamond,
    Cross,
    TriangleDown,
    TriangleUp,
    Circle,
}

/// Rates over time (trigger rates, tag rates), linear or log y.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeSeries {
    pub title: String,
    pub data_time_ns: u64,
    pub y_label: String,
    pub log_y: bool,
    pub minor_ticks: bool,
    pub series: Vec<Series>,
    /// Vertical annotations, e.g. run changes.
    pub markers: Vec<TimeMarker>,
    /// Linear y from the data's minimum to its maximum (angles, times)
    /// instead of from 0 (rates).
    #[serde(default)]
    pub y_auto: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    pub color: Rgb,
    pub marker: Marker,
    /// Dotted line between the points.
    pub line: bool,
    /// (UTC Unix seconds, value).
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeMarker {
    pub time_s: f64,
    pub label: String,
}

/// One column of a waterfall: an interval of data time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaterfallColumn {
    /// End of the interval, UTC Unix seconds.
    pub end_s: u64,
    /// Per row, the value in units of `Waterfall::unit`; `u16::MAX` = no data.
    pub values: Vec<u16>,
    /// Per row, marked (e.g. high-rate veto), as a bitset of 64-bit words.
    pub marks: Vec<u64>,
}

impl WaterfallColumn {
    pub const NO_DATA: u16 = u16::MAX;

    pub fn marked(&self, row: usize) -> bool {
        self.marks
            .get(row / 64)
            .is_some_and(|w| w & (1 << (row % 64)) != 0)
    }
}

/// Rows × time image (PMT rates per DU) with a mark overlay (HRV).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waterfall {
    pub title: String,
    pub subtitle: String,
    pub data_time_ns: u64,
    pub interval_s: u64,
    /// Value of one unit of `WaterfallColumn::values` (e.g. 10 Hz).
    pub unit: f64,
    pub vmin: f64,
    pub vmax: f64,
    pub colormap: Colormap,
    pub colorbar_label: String,
    pub n_rows: usize,
    /// Labelled bands of rows from the bottom: (first row, rows, label).
    pub bands: Vec<(usize, usize, String)>,
    /// Width of the image in columns; the newest column is the rightmost.
    pub n_columns: usize,
    /// Oldest first, at most `n_columns`.
    pub columns: Vec<Arc<WaterfallColumn>>,
}

/// DOM slots × recent events (hit map, trigger map).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HitMatrix {
    pub title: String,
    pub data_time_ns: u64,
    pub colorbar_label: String,
    pub n_rows: usize,
    /// Sparse row labels: (row, label).
    pub row_labels: Vec<(usize, String)>,
    /// Row where each DU's band starts (for separators).
    pub du_starts: Vec<usize>,
    pub n_columns: usize,
    /// Oldest first: per event, (row, hits) of the rows with hits.
    pub events: Vec<Arc<Vec<(u32, u16)>>>,
    /// (column of the first event of a run, label).
    pub markers: Vec<(usize, String)>,
}

/// A grid of small time-series panels, one per unit (e.g. one per DU),
/// all over the same time span, each with its own y range. The layout is
/// fixed here (not in the renderer) so the JSON beside the PNG can say
/// where each panel is: `columns` panels a row, in order, each
/// [`Panels::PANEL`] pixels (wider when few columns would make the
/// picture narrower than [`Panels::MIN_WIDTH`]) below a
/// [`Panels::HEADER`]-pixel title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Panels {
    pub title: String,
    pub data_time_ns: u64,
    /// Seconds shown, ending at `data_time_ns`.
    pub span_s: u64,
    pub y_label: String,
    pub columns: usize,
    pub panels: Vec<Panel>,
}

impl Panels {
    /// Pixels of one panel (width, height).
    pub const PANEL: (u32, u32) = (320, 160);
    pub const HEADER: u32 = 72;
    pub const MIN_WIDTH: u32 = 1280;
    /// At most this many columns: 1920 pixels, the width of a screen, so
    /// a large detector grows downwards (scrolled) instead of being shrunk
    /// to unreadable panels by the browser.
    pub const MAX_COLUMNS: usize = 6;

    /// Columns for `n` panels.
    pub fn columns_for(n: usize) -> usize {
        n.clamp(1, Self::MAX_COLUMNS)
    }

    /// (panel width, panel height) in pixels.
    pub fn panel_px(&self) -> (u32, u32) {
        let c = self.columns.max(1) as u32;
        (
            Self::PANEL.0.max(Self::MIN_WIDTH.div_ceil(c)),
            Self::PANEL.1,
        )
    }

    pub fn rows(&self) -> usize {
        self.panels.len().div_ceil(self.columns.max(1)).max(1)
    }

    /// The picture's size in pixels.
    pub fn size(&self) -> (u32, u32) {
        let (w, h) = self.panel_px();
        (
            w * self.columns.max(1) as u32,
            Self::HEADER + h * self.rows() as u32,
        )
    }
}

/// One panel of [`Panels`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Panel {
    /// Top left, bold, e.g. `DU 3`.
    pub label: String,
    /// Top right, e.g. the median or the deviation.
    pub note: String,
    /// Drawn in red (frame, label, note): needs a look.
    pub highlight: bool,
    /// (UTC Unix seconds, value).
    pub points: Vec<(f64, f64)>,
    pub color: Rgb,
    /// A shaded range of values (e.g. the alert band).
    pub shade: Option<(f64, f64)>,
    /// Horizontal lines: (value, dashed).
    pub lines: Vec<(f64, bool)>,
}
