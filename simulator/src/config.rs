//! What to simulate: the detector, the seed, the clock, the run plan, the
//! trigger rate and the faults. Everything the stream depends on is in
//! [`SimConfig`], so two equal configs give byte-identical streams.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use daq::detector::{Detector, GeneratorLayout};

use crate::fault::FaultSpec;
use crate::units::{parse_utc, NS};

/// Length of a DAQ timeslice: the cadence of IO_SUM, IO_MONIT and IO_TSSN.
pub const SLICE_NS: u64 = 100_000_000;

/// 2024-01-01T00:00:00Z: the default start of data time for recordings, so
/// that a recording depends on nothing but its options.
pub const DEFAULT_START_NS: u64 = 1_704_067_200 * NS;

/// Where data time starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A fixed instant (ns since the epoch).
    At(u64),
    /// The wall clock when the simulator is built (live demos: monitors
    /// compare data time with their own clock).
    Now,
}

impl Start {
    /// The start in ns, rounded down to a timeslice boundary as the DAQ's
    /// timeslices are.
    pub fn resolve(self) -> u64 {
        let ns = match self {
            Start::At(ns) => ns,
            Start::Now => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(DEFAULT_START_NS, |d| d.as_nanos() as u64),
        };
        ns - ns % SLICE_NS
    }
}

impl FromStr for Start {
    type Err = String;
    fn from_str(s: &str) -> Result<Start, String> {
        if s.eq_ignore_ascii_case("now") {
            Ok(Start::Now)
        } else {
            parse_utc(s).map(Start::At)
        }
    }
}

/// The full configuration of a simulated stream.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub detector: Arc<Detector>,
    pub seed: u64,
    pub start: Start,
    /// Data time to simulate; `None` = until stopped.
    pub duration: Option<Duration>,
    /// Number of the first run.
    pub run: u32,
    /// A new run (number + 1, frame index back to 1) after this much data
    /// time; `None` = one run.
    pub run_length: Option<Duration>,
    /// Mean IO_EVT rate, Hz.
    pub trigger_rate_hz: f64,
    /// Mean time between two log lines of one DAQ process.
    pub msg_interval: Duration,
    /// Mean time between two bioluminescence bursts seen by one DOM.
    pub burst_interval: Duration,
    pub faults: Vec<FaultSpec>,
    /// Threads advancing the DOMs; the output does not depend on it.
    pub threads: usize,
}

impl SimConfig {
    /// Defaults: seed 1, fixed start (2024-01-01), 1 minute, run 1, runs of
    /// one hour, 50 Hz trigger rate, a log line per process every 30 s, a
    /// burst per DOM every 15 minutes, no faults.
    pub fn new(detector: impl Into<Arc<Detector>>) -> SimConfig {
        SimConfig {
            detector: detector.into(),
            seed: 1,
            start: Start::At(DEFAULT_START_NS),
            duration: Some(Duration::from_secs(60)),
            run: 1,
            run_length: Some(Duration::from_secs(3600)),
            trigger_rate_hz: 50.0,
            msg_interval: Duration::from_secs(30),
            burst_interval: Duration::from_secs(900),
            faults: Vec::new(),
            threads: 1,
        }
    }
}

/// Which building block a generated detector imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    Orca,
    Arca,
}

/// `--generate-detector [orca:|arca:]DUSxFLOORS[xPMTS]`, e.g. `115x18`
/// (ORCA) or `230x18` (ARCA). Without a prefix, more than 115 DUs means
/// ARCA geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateSpec {
    pub site: Site,
    pub n_dus: u32,
    pub n_floors: u32,
    pub n_pmts: usize,
}

impl GenerateSpec {
    /// Detector ids as the sites number them; only a label here.
    pub fn default_det_id(&self) -> i32 {
        match self.site {
            Site::Orca => 133,
            Site::Arca => 160,
        }
    }

    pub fn build(&self, det_id: Option<i32>) -> Detector {
        let layout = match self.site {
            Site::Orca => GeneratorLayout::orca(),
            Site::Arca => GeneratorLayout::arca(),
        };
        Detector::generate_with(
            det_id.unwrap_or_else(|| self.default_det_id()),
            self.n_dus,
            self.n_floors,
            self.n_pmts,
            &layout,
        )
    }
}

impl FromStr for GenerateSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<GenerateSpec, String> {
        let bad =
            || format!("bad detector size {s:?}: use DUSxFLOORS such as 115x18 or arca:230x18");
        let lower = s.trim().to_ascii_lowercase();
        let (site, dims) = match lower.split_once(':') {
            Some(("orca", d)) => (Some(Site::Orca), d),
            Some(("arca", d)) => (Some(Site::Arca), d),
            Some(_) => return Err(bad()),
            None => (None, lower.as_str()),
        };
        let numbers: Vec<u32> = dims
            .split('x')
            .map(|n| n.parse::<u32>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let (n_dus, n_floors, n_pmts) = match numbers[..] {
            [d, f] => (d, f, 31),
            [d, f, p] => (d, f, p),
            _ => return Err(bad()),
        };
        if !(1..=10_000).contains(&n_dus)
            || !(1..=100).contains(&n_floors)
            || !(1..=31).contains(&n_pmts)
        {
            return Err(format!(
                "{s:?}: need 1–10000 DUs, 1–100 floors and 1–31 PMTs per DOM"
            ));
        }
        let site = site.unwrap_or(if n_dus > 115 { Site::Arca } else { Site::Orca });
        Ok(GenerateSpec {
            site,
            n_dus,
            n_floors,
            n_pmts: n_pmts as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_specs() {
        let orca: GenerateSpec = "115x18".parse().unwrap();
        assert_eq!(
            (orca.site, orca.n_dus, orca.n_floors, orca.n_pmts),
            (Site::Orca, 115, 18, 31)
        );
        let arca: GenerateSpec = "230x18".parse().unwrap();
        assert_eq!(arca.site, Site::Arca);
        let small: GenerateSpec = "arca:2x3x12".parse().unwrap();
        assert_eq!((small.site, small.n_pmts), (Site::Arca, 12));
        for bad in ["115", "0x18", "115x18x40", "mars:1x1", "axb"] {
            assert!(bad.parse::<GenerateSpec>().is_err(), "{bad}");
        }
        let detector = "2x3".parse::<GenerateSpec>().unwrap().build(Some(7));
        assert_eq!(detector.det_id(), 7);
        assert_eq!(detector.n_optical_modules(), 6);
    }

    #[test]
    fn starts_align_to_timeslices() {
        let start: Start = "2024-01-01T00:00:00.123Z".parse().unwrap();
        assert_eq!(start.resolve(), DEFAULT_START_NS + SLICE_NS);
        assert_eq!("now".parse::<Start>().unwrap(), Start::Now);
        assert_eq!(Start::Now.resolve() % SLICE_NS, 0);
    }
}
