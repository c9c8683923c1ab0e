//! The Detector Manager's monitoring interface (spec integrations.md §2),
//! as the RTTC node uses it: a `monshortdef` session of the five White
//! Rabbit paths of every DU's base CLB, polled with `monshort`. Blocking
//! HTTP: runs on the node's I/O thread.

use std::time::Duration;

/// The session name of the original.
pub const SESSION: &str = "rttc_monitoring";

/// The five paths of a DU's base CLB (floor 0), in definition order:
/// `wr_mu`, `wr_delta[0]` … `wr_delta[3]`.
pub fn paths(du: u32) -> [String; 5] {
    [
        format!("/mon/clb/outparams/wr_mu/{du}/0"),
        format!("/mon/clb/outparams/wr_delta/{du}/0/0"),
        format!("/mon/clb/outparams/wr_delta/{du}/0/1"),
        format!("/mon/clb/outparams/wr_delta/{du}/0/2"),
        format!("/mon/clb/outparams/wr_delta/{du}/0/3"),
    ]
}

/// One poll's values of a DU (ps).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WrValues {
    pub du: u32,
    pub wr_mu: f64,
    pub wr_delta: [f64; 4],
}

impl WrValues {
    /// Cable round trip minus the TX/RX delays of master and slave.
    pub fn rttc(&self) -> f64 {
        self.wr_mu - self.wr_delta.iter().sum::<f64>()
    }
}

pub struct DmClient {
    base: String,
    dus: Vec<u32>,
    agent: ureq::Agent,
    defined: bool,
}

impl DmClient {
    /// `addr` = `host[:port]` (port 1302 by default); `dus` in DETX order.
    pub fn new(addr: &str, dus: Vec<u32>, timeout: Duration) -> DmClient {
        let addr = if addr.contains(':') {
            addr.to_string()
        } else {
            format!("{addr}:1302")
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build();
        DmClient {
            base: format!("http://{addr}"),
            dus,
            agent: ureq::Agent::new_with_config(agent),
            defined: false,
        }
    }

    fn get(&self, rel: &str) -> Result<(u16, String), String> {
        let start = std::time::Instant::now();
        let r = self.request(rel);
        request_latency()
            .get(&[latency::outcome(&r)])
            .record_duration(start.elapsed());
        r
    }

    fn request(&self, rel: &str) -> Result<(u16, String), String> {
        let url = format!("{}{rel}", self.base);
        let mut resp = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{url}: reading the reply: {e}"))?;
        Ok((status, body))
    }

    /// The session URL: every DU's five paths, comma separated, not
    /// URL-encoded (as the DM expects them).
    pub fn definition(&self) -> String {
        let all: Vec<String> = self.dus.iter().flat_map(|d| paths(*d)).collect();
        format!("/monshortdef?name={SESSION}&paths={}", all.join(","))
    }

    fn define(&mut self) -> Result<(), String> {
        let (status, body) = self.get(&self.definition())?;
        // Exactly `OK` (spec §2: a byte comparison).
        if status != 200 || body != "OK" {
            return Err(format!(
                "monshortdef: HTTP {status}: {:?}",
                body.chars().take(120).collect::<String>()
            ));
        }
        self.defined = true;
        Ok(())
    }

    /// One poll: (re)defines the session first when needed; after any
    /// error the next poll defines it again (a restarted DM forgets it).
    pub fn poll(&mut self) -> Result<Vec<WrValues>, String> {
        let r = self.poll_once();
        if r.is_err() {
            self.defined = false;
        }
        r
    }

    fn poll_once(&mut self) -> Result<Vec<WrValues>, String> {
        if !self.defined {
            self.define()?;
        }
        let (status, body) = self.get(&format!("/monshort/{SESSION}"))?;
        if status != 200 {
            return Err(format!(
                "monshort: HTTP {status}: {:?}",
                body.chars().take(120).collect::<String>()
            ));
        }
        parse(&body, &self.dus)
    }
}

/// Every request to the Detector Manager, by outcome (docs/web.md).
fn request_latency() -> std::sync::Arc<latency::Family> {
    static F: std::sync::OnceLock<std::sync::Arc<latency::Family>> = std::sync::OnceLock::new();
    F.get_or_init(|| latency::global().histogram_of(&latency::DETECTOR_MANAGER_REQUEST))
        .clone()
}

/// The JSON array of a `monshort` reply: one object per defined path, in
/// definition order, each with a numeric `value`.
pub fn parse(body: &str, dus: &[u32]) -> Result<Vec<WrValues>, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| {
        format!(
            "monshort: not JSON ({e}): {:?}",
            body.chars().take(80).collect::<String>()
        )
    })?;
    let items = v
        .as_array()
        .ok_or_else(|| "monshort: not a JSON array".to_string())?;
    if items.len() != 5 * dus.len() {
        return Err(format!(
            "monshort: {} values for {} paths",
            items.len(),
            5 * dus.len()
        ));
    }
    let value = |i: usize| -> Result<f64, String> {
        let x = &items[i]["value"];
        x.as_f64()
            .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|f: &f64| f.is_finite())
            .ok_or_else(|| format!("monshort: element {i} has no numeric value: {x}"))
    };
    dus.iter()
        .enumerate()
        .map(|(k, &du)| {
            Ok(WrValues {
                du,
                wr_mu: value(5 * k)?,
                wr_delta: [
                    value(5 * k + 1)?,
                    value(5 * k + 2)?,
                    value(5 * k + 3)?,
                    value(5 * k + 4)?,
                ],
            })
        })
        .collect()
}
