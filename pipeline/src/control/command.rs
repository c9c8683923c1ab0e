//! The one textual command language of the control plane, shared by
//! `km3mon ctl`, the chatbot and the web's `POST /api/control`.

use std::fmt;
use std::time::Duration;

/// The longest silence one command may set; a forgotten silence must run
/// out before anyone forgets the detector.
pub const MAX_SILENCE: Duration = Duration::from_secs(30 * 86_400);

/// What a `stop`/`start`/`restart`/`status` addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `all`.
    All,
    /// `GROUP:*`.
    Group(String),
    /// `NODE`, or `GROUP:NODE` (then the node must be in that group). A bare
    /// name that is no node but a group means the group.
    Node { group: Option<String>, name: String },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::All => f.write_str("all"),
            Target::Group(g) => write!(f, "{g}:*"),
            Target::Node {
                group: Some(g),
                name,
            } => write!(f, "{g}:{name}"),
            Target::Node { group: None, name } => f.write_str(name),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Stop,
    Start,
    Restart,
}

impl Action {
    pub fn verb(self) -> &'static str {
        match self {
            Action::Stop => "stop",
            Action::Start => "start",
            Action::Restart => "restart",
        }
    }
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `status [TARGET…]` (no target = every node).
    Status(Vec<Target>),
    /// `stop|start|restart TARGET…`.
    Act(Action, Vec<Target>),
    /// `silence PATTERN DURATION [reason…]`.
    Silence {
        pattern: String,
        duration: Duration,
        reason: String,
    },
    /// `unsilence PATTERN`.
    Unsilence(String),
    /// `silences`.
    Silences,
    /// `logs NODE [--tail N] [--after SEQ]`: the node's recent log lines
    /// (the last N, default [`DEFAULT_TAIL`]; only those after line SEQ, for
    /// `km3mon ctl logs -f`).
    Logs {
        node: String,
        tail: usize,
        after: u64,
    },
    /// `health`: the detector's table (DU × alert condition) of the
    /// `detector_state` node.
    Health,
    /// `latency`: p50/p99/max of every latency distribution (node lag,
    /// plots, alert delivery, DB, Detector Manager, Ligier queues).
    Latency,
    /// `reset NODE KEY` (alias `rttc-reset --du N [--node NODE]`): a
    /// request to the node (e.g. forget DU N's RTTC baseline). The node
    /// takes it into its own input, so it acts at a data time like a
    /// record; only nodes that take requests accept it.
    Reset { node: String, key: String },
    /// `help`.
    Help,
}

/// Lines `logs` shows without `--tail`.
pub const DEFAULT_TAIL: usize = 20;

/// A command that could not be parsed; the message says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

pub const HELP: &str = "\
commands:
  status [TARGET…]                 state, uptime, records and drops of each node
  stop TARGET…                     stop nodes (their input is dropped and counted)
  start TARGET…                    start stopped or failed nodes
  restart TARGET…                  stop and start (restarts + 1, uptime reset)
  silence PATTERN DURATION [why…]  silence alerts whose key matches PATTERN (* = anything)
                                   for DURATION (30m, 2h, 1d, 1h30m; at most 30d)
  unsilence PATTERN                end the silences with exactly this pattern
  silences                         list the active silences
  logs NODE [--tail N]             the node's recent log lines (default the last 20)
  health                           the detector: DOMs per DU and alert condition (detector_state)
  latency                          p50/p99/max of the lags and latencies (nodes, plots, alerts, DB)
  reset NODE KEY                   a reset request to a node: `reset rttc 5` (or `rttc-reset --du 5`)
                                   forgets DU 5's RTTC baseline; a new one is learnt from the next samples
  help                             this text
TARGET: NODE, GROUP:NODE, GROUP:* or all
groups: daq, logging, monitoring_process, alerts, reconstruction, output (or the graph's own)";

const VERBS: &str =
    "status, stop, start, restart, silence, unsilence, silences, logs, health, latency, reset, rttc-reset, help";

impl Command {
    /// Parses one command line (words separated by white space; the verb
    /// is case-insensitive, names are not).
    pub fn parse(line: &str) -> Result<Command, ParseError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((verb, args)) = words.split_first() else {
            return Err(ParseError("empty command; try `help`".into()));
        };
        let err = |m: String| Err(ParseError(m));
        match verb.to_ascii_lowercase().as_str() {
            "status" => Ok(Command::Status(targets(args)?)),
            v @ ("stop" | "start" | "restart") => {
                let action = match v {
                    "stop" => Action::Stop,
                    "start" => Action::Start,
                    _ => Action::Restart,
                };
                if args.is_empty() {
                    return err(format!(
                        "`{v}` needs a target: NODE, GROUP:NODE, GROUP:* or all"
                    ));
                }
                Ok(Command::Act(action, targets(args)?))
            }
            "silence" => {
                let (Some(pattern), Some(d)) = (args.first(), args.get(1)) else {
                    return err(
                        "usage: silence PATTERN DURATION [reason…], e.g. `silence timesync:* 2h DU 7 in maintenance`"
                            .into(),
                    );
                };
                check_pattern(pattern)?;
                let duration = parse_duration(d)?;
                Ok(Command::Silence {
                    pattern: pattern.to_string(),
                    duration,
                    reason: args[2..].join(" "),
                })
            }
            "unsilence" => match args {
                [p] => {
                    check_pattern(p)?;
                    Ok(Command::Unsilence(p.to_string()))
                }
                _ => err("usage: unsilence PATTERN (as listed by `silences`)".into()),
            },
            "silences" if args.is_empty() => Ok(Command::Silences),
            "logs" => logs(args),
            "help" => Ok(Command::Help),
            "health" if args.is_empty() => Ok(Command::Health),
            "health" => err("`health` takes no arguments".into()),
            "latency" if args.is_empty() => Ok(Command::Latency),
            "latency" => err("`latency` takes no arguments".into()),
            "silences" => err("`silences` takes no arguments".into()),
            "reset" => match args {
                [node, key] => Ok(Command::Reset {
                    node: node.to_string(),
                    key: key.to_string(),
                }),
                _ => {
                    err("usage: reset NODE KEY, e.g. `reset rttc 5` (DU 5's RTTC baseline)".into())
                }
            },
            "rttc-reset" => {
                let usage = "usage: rttc-reset --du N [--node NODE] (NODE default rttc)";
                let (mut du, mut node) = (None, "rttc");
                let mut it = args.iter();
                while let Some(a) = it.next() {
                    match (*a, it.next()) {
                        ("--du", Some(v)) if v.parse::<u32>().is_ok() => du = Some(*v),
                        ("--node", Some(v)) => node = v,
                        _ => return err(usage.into()),
                    }
                }
                match du {
                    Some(du) => Ok(Command::Reset {
                        node: node.to_string(),
                        key: du.to_string(),
                    }),
                    None => err(usage.into()),
                }
            }
            other => err(format!("unknown command `{other}`; commands: {VERBS}")),
        }
    }
}

fn logs(args: &[&str]) -> Result<Command, ParseError> {
    let usage = || ParseError("usage: logs NODE [--tail N]".into());
    let (mut node, mut tail, mut after) = (None, DEFAULT_TAIL, 0);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = || -> Result<u64, ParseError> {
            it.next().and_then(|v| v.parse().ok()).ok_or_else(usage)
        };
        match *a {
            "--tail" | "-n" => tail = num()? as usize,
            "--after" => after = num()?,
            n if node.is_none() && valid_name(n) => node = Some(n.to_string()),
            _ => return Err(usage()),
        }
    }
    let node = node.ok_or_else(usage)?;
    Ok(Command::Logs { node, tail, after })
}

fn targets(args: &[&str]) -> Result<Vec<Target>, ParseError> {
    args.iter().map(|a| target(a)).collect()
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn target(word: &str) -> Result<Target, ParseError> {
    if word.eq_ignore_ascii_case("all") {
        return Ok(Target::All);
    }
    let bad = || {
        ParseError(format!(
            "bad target `{word}`: expected NODE, GROUP:NODE, GROUP:* or all"
        ))
    };
    match word.split_once(':') {
        Some((g, "*")) if valid_name(g) => Ok(Target::Group(g.to_string())),
        Some((g, n)) if valid_name(g) && valid_name(n) => Ok(Target::Node {
            group: Some(g.to_string()),
            name: n.to_string(),
        }),
        None if valid_name(word) => Ok(Target::Node {
            group: None,
            name: word.to_string(),
        }),
        _ => Err(bad()),
    }
}

fn check_pattern(p: &str) -> Result<(), ParseError> {
    if p.chars().any(char::is_control) || p.len() > 200 {
        return Err(ParseError(format!("bad alert-key pattern `{p}`")));
    }
    Ok(())
}

/// `30m`, `2h`, `1d`, `45s`, `1h30m`: the one duration syntax
/// ([`timespan`]), except that a silence needs a unit (a bare `10` typed in
/// the chat would be ten seconds, surely not what was meant); more than
/// zero and at most [`MAX_SILENCE`].
pub fn parse_duration(s: &str) -> Result<Duration, ParseError> {
    let bad = |why: &str| {
        Err(ParseError(format!(
            "bad duration `{s}`: {why} (e.g. 30m, 2h, 1d, 1h30m)"
        )))
    };
    if s.trim().parse::<f64>().is_ok() {
        return bad("a number needs a unit after it (s, m, h, d, w)");
    }
    let d = match timespan::parse(&s.to_ascii_lowercase()) {
        Ok(d) => d,
        Err(_) if s.starts_with(|c: char| c.is_ascii_alphabetic()) => {
            return bad("a unit needs a number before it")
        }
        Err(_) => return bad("units are s, m, h, d, w"),
    };
    if d.is_zero() {
        return bad("must be longer than zero");
    }
    if d > MAX_SILENCE {
        return bad("at most 30d");
    }
    Ok(d)
}

/// Glob match of an alert key or a name: `*` is any sequence (also empty),
/// `?` one character; everything else matches itself. The one matcher of
/// the workspace (silences, routes, severity rules; the web's layouts use
/// the same crate), from `wildmatch`.
pub fn glob_match(pattern: &str, key: &str) -> bool {
    wildmatch::WildMatch::new(pattern).matches(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: &str) -> Target {
        Target::Node {
            group: None,
            name: n.into(),
        }
    }

    #[test]
    fn every_command_form() {
        assert_eq!(Command::parse("status"), Ok(Command::Status(vec![])));
        assert_eq!(
            Command::parse("  STATUS  dom_rates alerts:* "),
            Ok(Command::Status(vec![
                node("dom_rates"),
                Target::Group("alerts".into())
            ]))
        );
        assert_eq!(
            Command::parse("stop dom_rates"),
            Ok(Command::Act(Action::Stop, vec![node("dom_rates")]))
        );
        assert_eq!(
            Command::parse("start monitoring_process:dom_rates"),
            Ok(Command::Act(
                Action::Start,
                vec![Target::Node {
                    group: Some("monitoring_process".into()),
                    name: "dom_rates".into()
                }]
            ))
        );
        assert_eq!(
            Command::parse("restart monitoring_process:* all"),
            Ok(Command::Act(
                Action::Restart,
                vec![Target::Group("monitoring_process".into()), Target::All]
            ))
        );
        assert_eq!(
            Command::parse("silence timesync:du7:* 2h DU 7 in maintenance"),
            Ok(Command::Silence {
                pattern: "timesync:du7:*".into(),
                duration: Duration::from_secs(7200),
                reason: "DU 7 in maintenance".into()
            })
        );
        assert_eq!(
            Command::parse("silence * 30m"),
            Ok(Command::Silence {
                pattern: "*".into(),
                duration: Duration::from_secs(1800),
                reason: String::new()
            })
        );
        assert_eq!(
            Command::parse("unsilence *"),
            Ok(Command::Unsilence("*".into()))
        );
        assert_eq!(Command::parse("silences"), Ok(Command::Silences));
        let reset = Ok(Command::Reset {
            node: "rttc".into(),
            key: "5".into(),
        });
        assert_eq!(Command::parse("reset rttc 5"), reset);
        assert_eq!(Command::parse("rttc-reset --du 5"), reset);
        assert_eq!(
            Command::parse("rttc-reset --node rttc2 --du 5"),
            Ok(Command::Reset {
                node: "rttc2".into(),
                key: "5".into(),
            })
        );
        assert!(Command::parse("rttc-reset --du five").is_err());
        assert!(Command::parse("rttc-reset").is_err());
        assert!(Command::parse("reset rttc").is_err());
        assert_eq!(
            Command::parse("logs dom_rates --tail 5"),
            Ok(Command::Logs {
                node: "dom_rates".into(),
                tail: 5,
                after: 0
            })
        );
        assert_eq!(
            Command::parse("LOGS plots --after 17"),
            Ok(Command::Logs {
                node: "plots".into(),
                tail: DEFAULT_TAIL,
                after: 17
            })
        );
        for bad in [
            "logs",
            "logs a b",
            "logs a --tail",
            "logs a --tail x",
            "logs a;b",
        ] {
            assert!(
                Command::parse(bad)
                    .unwrap_err()
                    .0
                    .starts_with("usage: logs"),
                "{bad}"
            );
        }
        assert_eq!(Command::parse("Help"), Ok(Command::Help));
        assert_eq!(
            Target::Node {
                group: Some("g".into()),
                name: "n".into()
            }
            .to_string(),
            "g:n"
        );
    }

    #[test]
    fn bad_input_gives_a_clear_error() {
        let e = |s: &str| Command::parse(s).unwrap_err().0;
        assert_eq!(e(""), "empty command; try `help`");
        assert!(e("reboot now").contains("unknown command `reboot`"));
        assert!(e("reboot now").contains("status, stop"));
        assert!(e("stop").contains("`stop` needs a target"));
        assert!(e("restart").contains("`restart` needs a target"));
        assert!(e("stop dom rates;rm").contains("bad target `rates;rm`"));
        assert!(e("stop :*").contains("bad target `:*`"));
        assert!(e("stop a:b:c").contains("bad target"));
        assert!(e("silence x").starts_with("usage: silence"));
        assert!(e("silence x 10").contains("needs a unit"));
        assert!(e("silence x h").contains("needs a number"));
        assert!(e("silence x 2y").contains("units are"));
        assert!(e("silence x 0m").contains("longer than zero"));
        assert!(e("silence x 31d").contains("at most 30d"));
        assert!(e("unsilence").starts_with("usage: unsilence"));
        assert!(e("unsilence a b").starts_with("usage: unsilence"));
        assert!(e("silences now").contains("no arguments"));
    }

    #[test]
    fn durations() {
        let d = |s| parse_duration(s).unwrap().as_secs();
        assert_eq!(d("45s"), 45);
        assert_eq!(d("30m"), 1800);
        assert_eq!(d("2h"), 7200);
        assert_eq!(d("1d"), 86_400);
        assert_eq!(d("1h30m"), 5400);
        assert_eq!(d("2W"), 14 * 86_400);
        assert!(parse_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "timesync:du7"));
        assert!(glob_match("timesync:*", "timesync:du7"));
        assert!(!glob_match("timesync:*", "dom_activity:dom1"));
        assert!(glob_match("*:du7:*", "timesync:du7:floor3"));
        assert!(!glob_match("*:du7:*", "timesync:du17:floor3"));
        assert!(glob_match("du?", "du7"));
        assert!(!glob_match("du?", "du17"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }
}
