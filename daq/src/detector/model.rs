//! The detector model: modules (DOMs and base modules) with their PMTs, and
//! the lookups the monitors need for every hit.
//!
//! Nothing about the detector's size is assumed: DUs, floors and PMTs per
//! module all come from the description, so the same code serves a 1-DU
//! test bench, ORCA and ARCA.

use std::collections::HashMap;

use super::idhash::IdMap;

/// One PMT of a module.
#[derive(Debug, Clone, PartialEq)]
pub struct Pmt {
    /// Detector-wide PMT identifier (serial number in DB files).
    pub pmt_id: u32,
    /// Position of the PMT line inside its module record = the TDC channel
    /// the DAQ reports its hits and rates on.
    pub channel: usize,
    /// Photocathode position, m (detector frame).
    pub pos: [f64; 3],
    /// Unit vector of the PMT axis.
    pub dir: [f64; 3],
    /// Time offset added to raw hit times, ns.
    pub t0: f64,
    /// Status bit field (bit set = feature disabled); 0 before DETX v3.
    pub status: u32,
}

/// One module record: an optical module (DOM) or a base module.
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    /// DOM id = CLB id, as found in every DAQ data structure.
    pub dom_id: u32,
    /// Detection unit number.
    pub du: u32,
    /// Floor counted from the bottom; 0 is the base module.
    pub floor: i32,
    /// Module position, m. DETX v1–v3 carry none: the reader then uses the
    /// centre of the PMT positions.
    pub pos: [f64; 3],
    /// Orientation quaternion `[q0, qx, qy, qz]`; identity before DETX v4.
    pub orientation: [f64; 4],
    /// Module time offset, ns (0 before DETX v4). Hits are calibrated with
    /// the PMT t0s, not with this.
    pub t0: f64,
    /// Module status bit field (DETX v5; 0 before).
    pub status: u32,
    /// PMTs in channel order.
    pub pmts: Vec<Pmt>,
}

impl Module {
    /// Base modules (floor 0) hold no PMTs; they are kept because the CLB
    /// and acoustic monitors know them, but they are not DOMs.
    pub fn is_base(&self) -> bool {
        self.floor == 0
    }

    pub fn is_optical(&self) -> bool {
        !self.is_base()
    }

    /// PMTs of this module, read from the file (31 for a standard KM3NeT
    /// DOM, but never assumed).
    pub fn n_pmts(&self) -> usize {
        self.pmts.len()
    }

    pub fn pmt(&self, channel: usize) -> Option<&Pmt> {
        self.pmts.get(channel)
    }

    /// Whether the channel tables of [`super::address`] apply: only a
    /// module with the standard KM3NeT DOM's PMT count.
    pub fn has_standard_layout(&self) -> bool {
        self.pmts.len() == super::address::STANDARD_DOM_N_PMTS
    }
}

/// Centre of the PMT positions; the module position DETX v1–v3 lack.
pub(crate) fn pmt_centre(pmts: &[Pmt]) -> [f64; 3] {
    if pmts.is_empty() {
        return [0.0; 3];
    }
    let mut sum = [0.0; 3];
    for pmt in pmts {
        for (s, p) in sum.iter_mut().zip(pmt.pos) {
            *s += p;
        }
    }
    sum.map(|s| s / pmts.len() as f64)
}

/// Validity period of a DETX (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Validity {
    pub from: f64,
    pub until: f64,
}

impl Validity {
    /// What Jpp writes for an unrestricted detector description.
    pub const ALWAYS: Validity = Validity {
        from: 0.0,
        until: 9_999_999_999.0,
    };

    pub fn contains(&self, unix_seconds: f64) -> bool {
        self.from <= unix_seconds && unix_seconds < self.until
    }
}

/// Reference point of the detector frame in UTM coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct UtmReference {
    /// E.g. `WGS84`.
    pub ellipsoid: String,
    /// Grid zone token, e.g. `32N`.
    pub grid: String,
    pub easting: f64,
    pub northing: f64,
    pub z: f64,
}

impl UtmReference {
    /// Zone number of the grid token (`32N` → 32).
    pub fn zone_number(&self) -> Option<u32> {
        let digits: String = self.grid.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    }

    /// Latitude band letter of the grid token (`32N` → `N`).
    pub fn zone_letter(&self) -> Option<char> {
        self.grid.chars().find(char::is_ascii_alphabetic)
    }
}

/// Building a [`Detector`] from parts failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("DOM id {0} used by two modules")]
    DuplicateDomId(u32),
}

/// A detector description with its lookup tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Detector {
    det_id: i32,
    version: u32,
    validity: Option<Validity>,
    utm: Option<UtmReference>,
    comments: Vec<String>,
    modules: Vec<Module>,
    by_dom: IdMap<usize>,
    by_location: HashMap<(u32, i32), usize>,
    by_pmt_id: HashMap<u32, (usize, usize)>,
    dus_sorted: Vec<u32>,
    dus_file_order: Vec<u32>,
}

impl Detector {
    /// Builds a detector from modules in file order. PMT channels are
    /// renumbered to their position in each module, which is what the DAQ
    /// channel means.
    pub fn new(
        det_id: i32,
        version: u32,
        mut modules: Vec<Module>,
    ) -> Result<Detector, ModelError> {
        let mut seen = HashMap::with_capacity(modules.len());
        for module in &modules {
            if seen.insert(module.dom_id, ()).is_some() {
                return Err(ModelError::DuplicateDomId(module.dom_id));
            }
        }
        for module in &mut modules {
            for (channel, pmt) in module.pmts.iter_mut().enumerate() {
                pmt.channel = channel;
            }
        }
        Ok(Detector::from_checked(det_id, version, modules))
    }

    /// Modules must have unique DOM ids and channels equal to positions.
    pub(crate) fn from_checked(det_id: i32, version: u32, modules: Vec<Module>) -> Detector {
        let mut by_dom = IdMap::with_capacity_and_hasher(modules.len(), Default::default());
        let mut by_location = HashMap::with_capacity(modules.len());
        let mut by_pmt_id = HashMap::new();
        let mut dus_file_order = Vec::new();
        for (i, module) in modules.iter().enumerate() {
            by_dom.insert(module.dom_id, i);
            // First module wins, as in a file-order scan.
            by_location.entry((module.du, module.floor)).or_insert(i);
            for (channel, pmt) in module.pmts.iter().enumerate() {
                by_pmt_id.entry(pmt.pmt_id).or_insert((i, channel));
            }
            if !dus_file_order.contains(&module.du) {
                dus_file_order.push(module.du);
            }
        }
        let mut dus_sorted = dus_file_order.clone();
        dus_sorted.sort_unstable();
        Detector {
            det_id,
            version,
            validity: None,
            utm: None,
            comments: Vec::new(),
            modules,
            by_dom,
            by_location,
            by_pmt_id,
            dus_sorted,
            dus_file_order,
        }
    }

    pub fn with_validity(mut self, validity: Option<Validity>) -> Detector {
        self.validity = validity;
        self
    }

    pub fn with_utm(mut self, utm: Option<UtmReference>) -> Detector {
        self.utm = utm;
        self
    }

    /// Comment texts without the leading `#`; a multi-line comment is one
    /// entry containing `\n`.
    pub fn with_comments(mut self, comments: Vec<String>) -> Detector {
        self.comments = comments;
        self
    }

    /// Detector id from the header (negative in some simulation files).
    pub fn det_id(&self) -> i32 {
        self.det_id
    }

    /// DETX format version the description was read from (1–5).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Validity period; `None` for DETX v1, which has no such header line.
    pub fn validity(&self) -> Option<Validity> {
        self.validity
    }

    /// UTM reference; `None` for DETX v1 or a v2+ header without UTM line.
    pub fn utm(&self) -> Option<&UtmReference> {
        self.utm.as_ref()
    }

    /// Comment texts in file order (see [`Detector::with_comments`]).
    pub fn comments(&self) -> &[String] {
        &self.comments
    }

    /// All module records in file order (not sorted: the files are not).
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }

    pub fn optical_modules(&self) -> impl Iterator<Item = &Module> {
        self.modules.iter().filter(|m| m.is_optical())
    }

    pub fn base_modules(&self) -> impl Iterator<Item = &Module> {
        self.modules.iter().filter(|m| m.is_base())
    }

    /// Modules of one DU in file order.
    pub fn modules_of_du(&self, du: u32) -> impl Iterator<Item = &Module> {
        self.modules.iter().filter(move |m| m.du == du)
    }

    pub fn module(&self, dom_id: u32) -> Option<&Module> {
        self.by_dom.get(&dom_id).map(|&i| &self.modules[i])
    }

    /// Position of the module in [`Detector::modules`]; a dense index for
    /// per-DOM arrays.
    pub fn module_index(&self, dom_id: u32) -> Option<usize> {
        self.by_dom.get(&dom_id).copied()
    }

    /// The PMT a hit on `(dom_id, channel)` comes from.
    pub fn pmt(&self, dom_id: u32, channel: usize) -> Option<&Pmt> {
        self.module(dom_id)?.pmts.get(channel)
    }

    /// The module and PMT with this detector-wide PMT id.
    pub fn pmt_by_id(&self, pmt_id: u32) -> Option<(&Module, &Pmt)> {
        let &(m, c) = self.by_pmt_id.get(&pmt_id)?;
        let module = &self.modules[m];
        Some((module, &module.pmts[c]))
    }

    /// The module at a location (the first in file order if a file lists
    /// two at the same place).
    pub fn module_at(&self, du: u32, floor: i32) -> Option<&Module> {
        self.by_location
            .get(&(du, floor))
            .map(|&i| &self.modules[i])
    }

    /// The base module (floor 0) of a DU, if the file lists one.
    pub fn base_module(&self, du: u32) -> Option<&Module> {
        self.module_at(du, 0)
    }

    /// DU numbers in ascending numeric order.
    pub fn dus(&self) -> Vec<u32> {
        self.dus_sorted.clone()
    }

    /// DU numbers in order of first appearance in the file.
    pub fn dus_in_file_order(&self) -> &[u32] {
        &self.dus_file_order
    }

    /// Floors present in a DU, ascending, including 0 when the DU has a
    /// base module.
    pub fn floors(&self, du: u32) -> Vec<i32> {
        let mut floors: Vec<i32> = self.modules_of_du(du).map(|m| m.floor).collect();
        floors.sort_unstable();
        floors.dedup();
        floors
    }

    /// Highest floor of any module; 0 for a detector without modules.
    pub fn max_floor(&self) -> i32 {
        self.modules.iter().map(|m| m.floor).max().unwrap_or(0)
    }

    /// All module records (DOMs and base modules).
    pub fn n_modules(&self) -> usize {
        self.modules.len()
    }

    /// DOMs: modules not on floor 0.
    pub fn n_optical_modules(&self) -> usize {
        self.optical_modules().count()
    }

    pub fn n_base_modules(&self) -> usize {
        self.base_modules().count()
    }

    pub fn n_pmts(&self) -> usize {
        self.modules.iter().map(Module::n_pmts).sum()
    }

    /// Largest PMT count of any module: the width of per-channel arrays.
    pub fn max_pmts_per_module(&self) -> usize {
        self.modules.iter().map(Module::n_pmts).max().unwrap_or(0)
    }
}
