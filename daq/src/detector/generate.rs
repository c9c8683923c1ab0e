//! Synthetic detectors for tests and simulations at full scale (ORCA-115,
//! ARCA-230) where no real DETX of that size is at hand.
//!
//! The geometry is plausible rather than real: DUs on a staggered grid,
//! evenly spaced floors, a base module per DU, KM3NeT DOM PMT directions
//! and t0s near the 10⁵ ns of real files. All "randomness" is a hash of the
//! module/PMT index, so a given call always yields the same detector.

use std::f64::consts::PI;

use super::address::{pmt_address, Ring, STANDARD_DOM_N_PMTS};
use super::model::{Detector, Module, Pmt, UtmReference, Validity};

/// Geometry parameters of a generated detector.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorLayout {
    /// Distance between neighbouring DUs, m.
    pub du_spacing: f64,
    /// Vertical distance between floors, m.
    pub floor_spacing: f64,
    /// Height of floor 1 above the seabed, m.
    pub first_floor_z: f64,
    /// Height of the base modules, m.
    pub base_z: f64,
    /// Distance of the photocathodes from the DOM centre, m.
    pub pmt_radius: f64,
    /// Typical PMT t0, ns.
    pub pmt_t0: f64,
    pub utm: UtmReference,
}

impl GeneratorLayout {
    /// ORCA-like: DUs 20 m apart, floors every 9 m from 40 m up.
    pub fn orca() -> GeneratorLayout {
        GeneratorLayout {
            du_spacing: 20.0,
            floor_spacing: 9.0,
            first_floor_z: 40.0,
            base_z: 0.91,
            pmt_radius: 0.2,
            pmt_t0: 2.0e5,
            utm: UtmReference {
                ellipsoid: "WGS84".into(),
                grid: "32N".into(),
                easting: 256_500.0,
                northing: 4_743_000.0,
                z: -2440.0,
            },
        }
    }

    /// ARCA-like: DUs 90 m apart, floors every 36 m from 80 m up.
    pub fn arca() -> GeneratorLayout {
        GeneratorLayout {
            du_spacing: 90.0,
            floor_spacing: 36.0,
            first_floor_z: 80.0,
            utm: UtmReference {
                ellipsoid: "WGS84".into(),
                grid: "33N".into(),
                easting: 587_600.0,
                northing: 4_016_800.0,
                z: -3450.0,
            },
            ..GeneratorLayout::orca()
        }
    }
}

impl Default for GeneratorLayout {
    fn default() -> GeneratorLayout {
        GeneratorLayout::orca()
    }
}

/// SplitMix64: a fixed bijective mix, our stand-in for an RNG.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Deterministic value in [−1, 1) for a (kind, index) pair.
fn jitter(kind: u64, index: u64) -> f64 {
    let bits = mix(mix(kind) ^ index) >> 11;
    bits as f64 / (1u64 << 52) as f64 - 1.0
}

fn round_to(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// DOM ids spread over 800 000 000…899 999 999 like real CLB ids; a
/// multiplication by a number coprime to the range keeps them unique.
fn dom_id(det_id: i32, index: u64) -> u32 {
    const RANGE: u64 = 100_000_000;
    let offset = u64::from(det_id.unsigned_abs()).wrapping_mul(104_729) % RANGE;
    let spread = (index % RANGE) * 7_919 % RANGE;
    (800_000_000 + (spread + offset) % RANGE) as u32
}

/// PMT axis of `channel` in a DOM with `n_pmts` PMTs, turned by `heading`.
/// A standard DOM gets the real ring layout; any other count is spread
/// evenly over the sphere from the bottom up.
fn pmt_direction(channel: usize, n_pmts: usize, heading: f64) -> [f64; 3] {
    let (z, phi) = match pmt_address(channel).filter(|_| n_pmts == STANDARD_DOM_N_PMTS) {
        Some(address) => {
            // Neighbouring rings are staggered by half a position.
            let ring_offset = if matches!(address.ring, Ring::A | Ring::C | Ring::E) {
                PI / 6.0
            } else {
                0.0
            };
            let phi = f64::from(address.position - 1) * PI / 3.0 + ring_offset;
            (address.ring.axis_z(), phi)
        }
        None => {
            let golden_angle = PI * (3.0 - 5f64.sqrt());
            let z = -1.0 + (2 * channel + 1) as f64 / n_pmts as f64;
            (z, channel as f64 * golden_angle)
        }
    };
    if z <= Ring::A.axis_z() {
        return [0.0, 0.0, -1.0];
    }
    let rho = (1.0 - z * z).max(0.0).sqrt();
    let phi = phi + heading;
    [rho * phi.cos(), rho * phi.sin(), z].map(|c| round_to(c, 6))
}

impl Detector {
    /// An ORCA-like synthetic detector ([`GeneratorLayout::orca`]) with DUs
    /// 1…`n_dus`, each with floors 1…`n_floors` of `n_pmts_per_dom`-PMT
    /// DOMs plus a base module on floor 0; DETX version 5.
    pub fn generate(det_id: i32, n_dus: u32, n_floors: u32, n_pmts_per_dom: usize) -> Detector {
        Detector::generate_with(
            det_id,
            n_dus,
            n_floors,
            n_pmts_per_dom,
            &GeneratorLayout::orca(),
        )
    }

    /// As [`Detector::generate`] with an explicit geometry.
    pub fn generate_with(
        det_id: i32,
        n_dus: u32,
        n_floors: u32,
        n_pmts_per_dom: usize,
        layout: &GeneratorLayout,
    ) -> Detector {
        let columns = (f64::from(n_dus).sqrt().ceil() as u32).max(1);
        let centre = f64::from(columns - 1) / 2.0;
        let mut modules = Vec::new();
        let mut module_index: u64 = 0;
        let mut pmt_id: u32 = 10_000;
        for du in 1..=n_dus {
            let (row, column) = ((du - 1) / columns, (du - 1) % columns);
            let stagger = if row % 2 == 1 { 0.5 } else { 0.0 };
            let du_key = u64::from(du);
            let x = (f64::from(column) + stagger - centre) * layout.du_spacing
                + 0.1 * layout.du_spacing * jitter(1, du_key);
            let y = (f64::from(row) - centre) * layout.du_spacing * 3f64.sqrt() / 2.0
                + 0.1 * layout.du_spacing * jitter(2, du_key);
            let du_t0 = layout.pmt_t0 + 1000.0 * jitter(3, du_key);
            for floor in 1..=n_floors {
                let key = (du_key << 32) | u64::from(floor);
                let z = layout.first_floor_z
                    + f64::from(floor - 1) * layout.floor_spacing
                    + 0.05 * jitter(4, key);
                let pos = [x, y, z].map(|c| round_to(c, 3));
                let heading = PI * jitter(5, key);
                let half = heading / 2.0;
                let dom_t0 = du_t0 + 300.0 * jitter(6, key);
                let pmts = (0..n_pmts_per_dom)
                    .map(|channel| {
                        let dir = pmt_direction(channel, n_pmts_per_dom, heading);
                        pmt_id = pmt_id.wrapping_add(1);
                        let pmt_key = (key << 8) ^ channel as u64;
                        Pmt {
                            pmt_id,
                            channel,
                            pos: [0, 1, 2]
                                .map(|i| round_to(pos[i] + layout.pmt_radius * dir[i], 3)),
                            dir,
                            t0: round_to(dom_t0 + 5.0 * jitter(7, pmt_key), 3),
                            status: 0,
                        }
                    })
                    .collect();
                modules.push(Module {
                    dom_id: dom_id(det_id, module_index),
                    du,
                    floor: floor as i32,
                    pos,
                    orientation: [half.cos(), 0.0, 0.0, half.sin()].map(|c| round_to(c, 6)),
                    t0: 0.0,
                    status: 0,
                    pmts,
                });
                module_index += 1;
            }
            modules.push(Module {
                dom_id: dom_id(det_id, module_index),
                du,
                floor: 0,
                pos: [x, y, layout.base_z].map(|c| round_to(c, 3)),
                orientation: [1.0, 0.0, 0.0, 0.0],
                t0: -50_000.0,
                status: 0,
                pmts: Vec::new(),
            });
            module_index += 1;
        }
        let comment = format!(
            "generated by km3mon: synthetic detector {det_id}, {n_dus} DUs x {n_floors} floors, \
             {n_pmts_per_dom} PMTs per DOM"
        );
        Detector::from_checked(det_id, 5, modules)
            .with_validity(Some(Validity::ALWAYS))
            .with_utm(Some(layout.utm.clone()))
            .with_comments(vec![comment])
    }
}
