//! Fault injection: `--fault KIND[@START[+DURATION]][:TARGET]`.
//!
//! START is the data time after the simulation start at which the fault
//! begins (default 60 s, long enough for every monitor to have seen the
//! healthy detector first); DURATION how long it lasts (default: to the
//! end, except for the short bursts `corrupt-frames`, 1 s, and
//! `ligier-disconnect`, 5 s). A missing target is drawn from the seed, so
//! it too is reproducible, and is printed when the simulator starts.
//!
//! | kind | target | effect |
//! |---|---|---|
//! | `dom-silent` | `DOMID` or `DU/FLOOR` | the DOM is absent from IO_SUM, IO_MONIT, IO_TSSN and IO_EVT |
//! | `du-timesync` | `DU` | the DU's DOMs lose the time-sync bit (status bit 31) in IO_SUM and IO_TSSN (and TMCH status word 0) |
//! | `trigger-zero` | — | no IO_EVT at all |
//! | `corrupt-frames` | `TAG[,TAG…]` (default all data tags) | a quarter of the data messages are damaged (bad length, truncated, bad counts or version, bad TMCH marker) inside an intact ControlHost framing |
//! | `ligier-disconnect` | — | the publisher drops its Ligier connection and reconnects at the end; the data of the gap is lost (in a recording: a gap) |
//! | `rttc-jump` | `DU` | no effect on the DAQ streams: the Detector Manager stand-in (`--detector-manager`) adds [`RTTC_JUMP_PS`] to the DU's base-CLB RTTC (wall clock after the start) |
//! | `acoustics-silent` | `DU` | no effect on the DAQ streams: the KM3NeT DB stand-in of `km3mon demo` serves no acoustic TOAs (`toashort`) of the DU's DOMs (the whole demo: the stand-in has no time switch) |
//! | `ahrs-drift` | `DU` | the DU twists: the heading of its DOMs (IO_MONIT yaw and compass readings) turns by [`AHRS_DRIFT_DEG_PER_MIN`] per minute of data time |

use std::str::FromStr;
use std::time::Duration;

use daq::controlhost::Tag;
use daq::detector::Detector;

use crate::rng::Rng;
use crate::units::{format_duration, parse_duration};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    DomSilent,
    DuTimesync,
    TriggerZero,
    CorruptFrames,
    LigierDisconnect,
    AhrsDrift,
    RttcJump,
    AcousticsSilent,
}

/// How far an `rttc-jump` moves the DU's RTTC, ps.
pub const RTTC_JUMP_PS: f64 = 500.0;

/// How fast an `ahrs-drift` DU turns.
pub const AHRS_DRIFT_DEG_PER_MIN: f64 = 2.0;

impl FaultKind {
    pub const ALL: [FaultKind; 8] = [
        FaultKind::DomSilent,
        FaultKind::DuTimesync,
        FaultKind::TriggerZero,
        FaultKind::CorruptFrames,
        FaultKind::LigierDisconnect,
        FaultKind::AhrsDrift,
        FaultKind::RttcJump,
        FaultKind::AcousticsSilent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::DomSilent => "dom-silent",
            FaultKind::DuTimesync => "du-timesync",
            FaultKind::TriggerZero => "trigger-zero",
            FaultKind::CorruptFrames => "corrupt-frames",
            FaultKind::LigierDisconnect => "ligier-disconnect",
            FaultKind::AhrsDrift => "ahrs-drift",
            FaultKind::RttcJump => "rttc-jump",
            FaultKind::AcousticsSilent => "acoustics-silent",
        }
    }

    fn default_duration(self) -> Option<Duration> {
        match self {
            FaultKind::CorruptFrames => Some(Duration::from_secs(1)),
            FaultKind::LigierDisconnect => Some(Duration::from_secs(5)),
            _ => None,
        }
    }
}

/// What a fault applies to, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Dom(u32),
    DomAt { du: u32, floor: i32 },
    Du(u32),
    Tags(Vec<Tag>),
}

/// One `--fault` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultSpec {
    pub kind: FaultKind,
    /// Data time after the simulation start.
    pub start: Duration,
    /// `None`: until the end.
    pub duration: Option<Duration>,
    pub target: Option<Target>,
}

/// Tags whose messages `corrupt-frames` damages by default.
pub const DATA_TAGS: [&str; 4] = ["IO_SUM", "IO_MONIT", "IO_EVT", "IO_TSSN"];

impl FromStr for FaultSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<FaultSpec, String> {
        let (head, target) = match s.split_once(':') {
            Some((h, t)) => (h, Some(t)),
            None => (s, None),
        };
        let (name, timing) = match head.split_once('@') {
            Some((n, t)) => (n, Some(t)),
            None => (head, None),
        };
        let kind = FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == name.trim())
            .ok_or_else(|| {
                let names: Vec<_> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown fault {name:?}: one of {}", names.join(", "))
            })?;
        let (start, duration) = match timing {
            None => (Duration::from_secs(60), kind.default_duration()),
            Some(t) => match t.split_once('+') {
                Some((a, b)) => (parse_duration(a)?, Some(parse_duration(b)?)),
                None => (parse_duration(t)?, kind.default_duration()),
            },
        };
        let target = target.map(|t| parse_target(kind, t.trim())).transpose()?;
        Ok(FaultSpec {
            kind,
            start,
            duration,
            target,
        })
    }
}

fn parse_target(kind: FaultKind, text: &str) -> Result<Target, String> {
    let number = |t: &str| {
        t.trim()
            .parse::<u32>()
            .map_err(|_| format!("{}: bad target {text:?}", kind.name()))
    };
    match kind {
        FaultKind::DomSilent => match text.split_once('/') {
            Some((du, floor)) => Ok(Target::DomAt {
                du: number(du)?,
                floor: number(floor)? as i32,
            }),
            None => Ok(Target::Dom(number(text)?)),
        },
        FaultKind::DuTimesync
        | FaultKind::AhrsDrift
        | FaultKind::RttcJump
        | FaultKind::AcousticsSilent => Ok(Target::Du(number(text.trim_start_matches("DU"))?)),
        FaultKind::CorruptFrames => text
            .split(',')
            .map(|t| Tag::new(t.trim()).map_err(|e| format!("corrupt-frames: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Target::Tags),
        FaultKind::TriggerZero | FaultKind::LigierDisconnect => {
            Err(format!("{} takes no target", kind.name()))
        }
    }
}

/// A fault with its window in data time and its target resolved against
/// the detector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    pub from_ns: u64,
    /// Exclusive; `u64::MAX` = to the end.
    pub until_ns: u64,
    pub target: ResolvedTarget,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedTarget {
    None,
    Dom { dom_id: u32, du: u32, floor: i32 },
    Du(u32),
    Tags(Vec<Tag>),
}

impl Fault {
    pub fn active(&self, t_ns: u64) -> bool {
        (self.from_ns..self.until_ns).contains(&t_ns)
    }

    /// One line for the operator: what, when, on what.
    pub fn describe(&self, start_ns: u64) -> String {
        let at = Duration::from_nanos(self.from_ns - start_ns);
        let window = if self.until_ns == u64::MAX {
            format!("from +{} to the end", format_duration(at))
        } else {
            let length = Duration::from_nanos(self.until_ns - self.from_ns);
            format!(
                "from +{} for {}",
                format_duration(at),
                format_duration(length)
            )
        };
        let target = match &self.target {
            ResolvedTarget::None => String::new(),
            ResolvedTarget::Dom { dom_id, du, floor } => {
                format!(" on DOM {dom_id} (DU {du}, floor {floor})")
            }
            ResolvedTarget::Du(du) => format!(" on DU {du}"),
            ResolvedTarget::Tags(tags) => {
                let names: Vec<_> = tags.iter().map(Tag::as_str).collect();
                format!(" on {}", names.join(","))
            }
        };
        format!("fault {} {window}{target}", self.kind.name())
    }
}

/// Resolve the specs in order; fault `i`'s default target comes from its
/// own random stream.
pub fn resolve(
    specs: &[FaultSpec],
    detector: &Detector,
    seed: u64,
    start_ns: u64,
) -> Result<Vec<Fault>, String> {
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let mut rng = Rng::new(seed, crate::STREAM_FAULT_TARGETS + i as u64);
            let from_ns = start_ns.saturating_add(spec.start.as_nanos() as u64);
            let until_ns = spec
                .duration
                .map_or(u64::MAX, |d| from_ns.saturating_add(d.as_nanos() as u64));
            let target = resolve_target(spec, detector, &mut rng)?;
            Ok(Fault {
                kind: spec.kind,
                from_ns,
                until_ns,
                target,
            })
        })
        .collect()
}

fn resolve_target(
    spec: &FaultSpec,
    detector: &Detector,
    rng: &mut Rng,
) -> Result<ResolvedTarget, String> {
    let name = spec.kind.name();
    let dom = |m: &daq::detector::Module| ResolvedTarget::Dom {
        dom_id: m.dom_id,
        du: m.du,
        floor: m.floor,
    };
    match (spec.kind, &spec.target) {
        (FaultKind::DomSilent, None) => {
            let optical: Vec<_> = detector.optical_modules().collect();
            if optical.is_empty() {
                return Err(format!("{name}: the detector has no optical DOM"));
            }
            Ok(dom(optical[rng.below(optical.len() as u64) as usize]))
        }
        (FaultKind::DomSilent, Some(Target::Dom(id))) => detector
            .module(*id)
            .filter(|m| m.is_optical())
            .map(dom)
            .ok_or_else(|| format!("{name}: no optical DOM {id} in the detector")),
        (FaultKind::DomSilent, Some(Target::DomAt { du, floor })) => detector
            .module_at(*du, *floor)
            .filter(|m| m.is_optical())
            .map(dom)
            .ok_or_else(|| format!("{name}: no optical DOM at DU {du} floor {floor}")),
        (
            FaultKind::DuTimesync
            | FaultKind::AhrsDrift
            | FaultKind::RttcJump
            | FaultKind::AcousticsSilent,
            None,
        ) => {
            let dus = detector.dus();
            if dus.is_empty() {
                return Err(format!("{name}: the detector has no DU"));
            }
            Ok(ResolvedTarget::Du(
                dus[rng.below(dus.len() as u64) as usize],
            ))
        }
        (
            FaultKind::DuTimesync
            | FaultKind::AhrsDrift
            | FaultKind::RttcJump
            | FaultKind::AcousticsSilent,
            Some(Target::Du(du)),
        ) => {
            if detector.dus().contains(du) {
                Ok(ResolvedTarget::Du(*du))
            } else {
                Err(format!("{name}: no DU {du} in the detector"))
            }
        }
        (FaultKind::CorruptFrames, None) => Ok(ResolvedTarget::Tags(
            DATA_TAGS
                .iter()
                .map(|t| Tag::new(t).expect("valid tag"))
                .collect(),
        )),
        (FaultKind::CorruptFrames, Some(Target::Tags(tags))) => {
            Ok(ResolvedTarget::Tags(tags.clone()))
        }
        (FaultKind::TriggerZero | FaultKind::LigierDisconnect, None) => Ok(ResolvedTarget::None),
        (_, Some(target)) => Err(format!("{name}: target {target:?} does not apply")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let f: FaultSpec = "dom-silent".parse().unwrap();
        assert_eq!(
            (f.kind, f.start, f.duration, f.target),
            (FaultKind::DomSilent, Duration::from_secs(60), None, None)
        );
        let f: FaultSpec = "dom-silent@2s:3/7".parse().unwrap();
        assert_eq!(f.start, Duration::from_secs(2));
        assert_eq!(f.target, Some(Target::DomAt { du: 3, floor: 7 }));
        let f: FaultSpec = "du-timesync@1m+30s:12".parse().unwrap();
        assert_eq!(
            (f.duration, f.target),
            (Some(Duration::from_secs(30)), Some(Target::Du(12)))
        );
        let f: FaultSpec = "corrupt-frames@5s".parse().unwrap();
        assert_eq!(f.duration, Some(Duration::from_secs(1)));
        let f: FaultSpec = "corrupt-frames:IO_SUM,IO_EVT".parse().unwrap();
        assert!(matches!(f.target, Some(Target::Tags(ref t)) if t.len() == 2));
        assert!("trigger-zero@0s+10s".parse::<FaultSpec>().is_ok());
        for bad in [
            "dom-quiet",
            "trigger-zero:5",
            "dom-silent@soon",
            "du-timesync:x",
        ] {
            assert!(bad.parse::<FaultSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn resolves_against_the_detector() {
        let detector = Detector::generate(5, 3, 4, 31);
        let specs: Vec<FaultSpec> = ["dom-silent@1s+2s:2/3", "du-timesync", "dom-silent"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let faults = resolve(&specs, &detector, 9, 1_000).unwrap();
        let expected_dom = detector.module_at(2, 3).unwrap().dom_id;
        assert!(
            matches!(faults[0].target, ResolvedTarget::Dom { dom_id, .. } if dom_id == expected_dom)
        );
        assert_eq!(
            (faults[0].from_ns, faults[0].until_ns),
            (1_000 + 1_000_000_000, 1_000 + 3_000_000_000)
        );
        assert!(faults[0].active(2_000_000_000) && !faults[0].active(3_000_001_000));
        assert_eq!(faults[1].until_ns, u64::MAX);
        assert_eq!(faults, resolve(&specs, &detector, 9, 1_000).unwrap());
        let bad: FaultSpec = "du-timesync:99".parse().unwrap();
        assert!(resolve(&[bad], &detector, 9, 0).is_err());
    }
}
