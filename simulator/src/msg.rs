//! DAQ log lines on `MSG`, in the format of the integrations spec §7:
//! `<timestamp> <IPv4> <process> <LEVEL> <text>`, with process tokens
//! `F0n` (DataFilter), `Q0n` (DataQueue) and `W01` (DataWriter) so that
//! msg_dumper's ` F0`/` Q0`/` W0` markers classify them. The timestamp is
//! Jpp's current `%FT%T%z` layout, in UTC.

use crate::rng::Rng;
use crate::units::format_log_time;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    DataFilter,
    DataQueue,
    DataWriter,
}

struct Process {
    role: Role,
    token: String,
    ip: String,
}

/// What the log texts may mention.
pub struct LogContext<'a> {
    pub det_id: i32,
    pub run: u32,
    pub frame_index: u32,
    pub n_doms: usize,
    pub events: u64,
    pub dom_ids: &'a [u32],
}

pub struct LogModel {
    rng: Rng,
    processes: Vec<Process>,
    /// Chance that one process writes a line in one timeslice.
    chance: f64,
}

impl LogModel {
    /// One DataFilter per 30 DUs (at most 9, so the tokens stay `F01`…`F09`),
    /// one DataQueue per 60 DUs (at most 9), one DataWriter.
    pub fn new(seed: u64, n_dus: usize, mean_interval_s: f64) -> LogModel {
        let n_filters = n_dus.div_ceil(30).clamp(1, 9);
        let n_queues = n_dus.div_ceil(60).clamp(1, 9);
        let mut processes = Vec::new();
        let mut host = 110;
        let mut add = |role, token: String| {
            processes.push(Process {
                role,
                token,
                ip: format!("192.168.0.{host}"),
            });
            host += 1;
        };
        for i in 1..=n_queues {
            add(Role::DataQueue, format!("Q{i:02}"));
        }
        for i in 1..=n_filters {
            add(Role::DataFilter, format!("F{i:02}"));
        }
        add(Role::DataWriter, "W01".to_string());
        LogModel {
            rng: Rng::new(seed, crate::STREAM_LOG),
            processes,
            chance: if mean_interval_s > 0.0 {
                (0.1 / mean_interval_s).min(1.0)
            } else {
                0.0
            },
        }
    }

    fn line(&self, process: &Process, time_ns: u64, level: &str, text: &str) -> String {
        format!(
            "{} {} {} {level} {text}",
            format_log_time(time_ns),
            process.ip,
            process.token
        )
    }

    fn first(&self, role: Role) -> &Process {
        self.processes
            .iter()
            .find(|p| p.role == role)
            .expect("every role has a process")
    }

    /// A line from the first process of `role`: for run changes and faults.
    pub fn announce(&self, role: Role, time_ns: u64, level: &str, text: &str) -> String {
        self.line(self.first(role), time_ns, level, text)
    }

    /// The spontaneous lines of the timeslice starting at `slice_ns`.
    pub fn timeslice(&mut self, slice_ns: u64, ctx: &LogContext<'_>) -> Vec<String> {
        let mut lines = Vec::new();
        for i in 0..self.processes.len() {
            if !self.rng.chance(self.chance) {
                continue;
            }
            let at = slice_ns + self.rng.below(100_000_000);
            let (level, text) = self.text(self.processes[i].role, ctx);
            lines.push(self.line(&self.processes[i], at, level, &text));
        }
        lines
    }

    fn text(&mut self, role: Role, ctx: &LogContext<'_>) -> (&'static str, String) {
        let rng = &mut self.rng;
        let dom = ctx
            .dom_ids
            .get(rng.below(ctx.dom_ids.len().max(1) as u64) as usize)
            .copied()
            .unwrap_or(0);
        let file = format!("KM3NeT_{:08}_{:08}.root", ctx.det_id, ctx.run);
        let r = rng.f64();
        let level = match r {
            r if r < 0.40 => "INFO",
            r if r < 0.65 => "STATUS",
            r if r < 0.75 => "NOTICE",
            r if r < 0.93 => "WARNING",
            _ => "ERROR",
        };
        let fi = ctx.frame_index;
        let text = match (role, level) {
            (Role::DataFilter, "INFO") => format!(
                "Processed timeslice {fi} of run {}: {} DOMs",
                ctx.run, ctx.n_doms
            ),
            (Role::DataFilter, "STATUS") => {
                format!("Run {} triggered events {}", ctx.run, ctx.events)
            }
            (Role::DataFilter, "NOTICE") => format!("Close circular buffer /data/circular/{file}"),
            (Role::DataFilter, "WARNING") => {
                format!(
                    "Timeslice {fi} incomplete: no data from DOM {dom} within {} ms",
                    200 + rng.below(800)
                )
            }
            (Role::DataFilter, _) => {
                format!("Error \"data of DOM {dom} for frame {fi} arrived too late\"; trigger ev_error.")
            }
            (Role::DataQueue, "WARNING") => format!(
                "UDP packet out of sequence from DOM {dom}: expected {}, got {}",
                fi,
                fi + 1 + rng.below(5) as u32
            ),
            (Role::DataQueue, "ERROR") => format!(
                "Dropped {} packets of frame {fi}: queue full",
                1 + rng.below(50)
            ),
            (Role::DataQueue, _) => format!("Forwarded frame {fi} from {} DOMs", ctx.n_doms),
            (Role::DataWriter, "WARNING") => {
                format!("Disk usage of /data at {}%", 80 + rng.below(15))
            }
            (Role::DataWriter, "ERROR") => {
                "Error \"cannot flush output file\"; trigger ev_error.".to_string()
            }
            (Role::DataWriter, _) => format!("Wrote {} events to {file}", ctx.events),
        };
        let level = if level == "NOTICE" && role != Role::DataFilter {
            "INFO"
        } else {
            level
        };
        (level, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use daq::msg::{source_of, MsgSource};

    #[test]
    fn lines_have_the_daq_layout_and_sources() {
        let mut log = LogModel::new(1, 115, 0.1);
        let ctx = LogContext {
            det_id: 133,
            run: 7,
            frame_index: 42,
            n_doms: 2070,
            events: 9,
            dom_ids: &[808_000_001],
        };
        let mut sources = std::collections::HashSet::new();
        let mut levels = std::collections::HashSet::new();
        for slice in 0..20 {
            for line in log.timeslice(1_704_067_200_000_000_000 + slice * 100_000_000, &ctx) {
                let fields: Vec<&str> = line.splitn(5, ' ').collect();
                assert!(
                    fields[0].starts_with("2024-01-01T00:00:0") && fields[0].ends_with("+0000"),
                    "{line}"
                );
                assert_eq!(fields[1].split('.').count(), 4, "{line}");
                levels.insert(fields[3].to_string());
                sources.insert(source_of(line.as_bytes()));
            }
        }
        assert!(
            sources.contains(&MsgSource::DataFilter) && sources.contains(&MsgSource::DataQueue)
        );
        assert!(sources.contains(&MsgSource::DataWriter) && !sources.contains(&MsgSource::Other));
        for level in ["INFO", "WARNING", "ERROR"] {
            assert!(levels.contains(level), "{levels:?}");
        }
    }
}
