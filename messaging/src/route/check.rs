//! What `km3mon check` finds wrong in `[Alerts]` beyond its types (those
//! serde refuses: unknown keys, a bad severity).

use super::SINKS;
use crate::config::{AlertsConfig, ChatMode};

/// Problems as (path inside `[Alerts]`, message), e.g.
/// `("route[1].sinks[0]", "unknown sink `chta` …")`.
pub fn check(cfg: &AlertsConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut err = |path: String, msg: String| out.push((path, msg));
    for (i, r) in cfg.routes.iter().enumerate() {
        if r.name.trim().is_empty() {
            err(format!("route[{i}].name"), "a route needs a name".into());
        } else if cfg.routes[..i].iter().any(|o| o.name == r.name) {
            err(
                format!("route[{i}].name"),
                format!("duplicate route name `{}`", r.name),
            );
        }
        if r.sinks.is_empty() {
            err(
                format!("route[{i}].sinks"),
                format!(
                    "route `{}` sends nowhere: give sinks (chat, email, log)",
                    r.name
                ),
            );
        }
        for (j, s) in r.sinks.iter().enumerate() {
            let path = format!("route[{i}].sinks[{j}]");
            if !SINKS.contains(&s.as_str()) {
                err(
                    path,
                    format!("unknown sink `{s}`; known sinks: {}", SINKS.join(", ")),
                );
            } else if s == "chat" && cfg.chat().mode == ChatMode::Off {
                err(
                    path,
                    format!(
                        "route `{}` sends to chat, but [Alerts.chat] mode is off (set mode = \"rest\" or \"webhook\")",
                        r.name
                    ),
                );
            } else if s == "email" && !cfg.email.enabled {
                err(
                    path,
                    format!(
                        "route `{}` sends e-mail, but [Alerts.email] is not enabled",
                        r.name
                    ),
                );
            }
        }
        for (j, p) in r.patterns.iter().enumerate() {
            if p.is_empty() {
                err(
                    format!("route[{i}].match[{j}]"),
                    "an empty pattern matches no alert key (`*` matches all)".into(),
                );
            }
        }
    }
    for (i, s) in cfg.severity.iter().enumerate() {
        if s.pattern.is_empty() {
            err(
                format!("severity[{i}].match"),
                "an empty pattern matches no alert key (`*` matches all)".into(),
            );
        }
    }
    let e = &cfg.email;
    if e.enabled {
        match &e.from {
            None => err(
                "email".into(),
                "e-mail is enabled but has no sender: set `from`".into(),
            ),
            Some(f) if !f.contains('@') => err(
                "email.from".into(),
                format!("`{f}` is not an e-mail address"),
            ),
            Some(_) => {}
        }
        if e.to.is_empty() {
            err(
                "email".into(),
                "e-mail is enabled but has no recipients: set `to = [\"…\"]`".into(),
            );
        }
        for (j, t) in e.to.iter().enumerate() {
            if !t.contains('@') {
                err(
                    format!("email.to[{j}]"),
                    format!("`{t}` is not an e-mail address"),
                );
            }
        }
    }
    let c = cfg.chat();
    // The chat settings as the transports will read them (e-mail is
    // checked above, key by key).
    let mut chat_only = cfg.clone();
    chat_only.email.enabled = false;
    if let Err(e) = crate::deliver::check_sinks(&chat_only) {
        err("chat".into(), e.to_string());
    }
    if c.mode != ChatMode::Off && (c.timeout.is_nan() || c.timeout <= 0.0) {
        err(
            "chat.timeout".into(),
            "the timeout must be positive seconds".into(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml_text: &str) -> Vec<(String, String)> {
        let cfg: AlertsConfig = toml::from_str(toml_text).unwrap();
        check(&cfg)
    }

    #[test]
    fn a_complete_config_has_no_problems() {
        let p = problems(
            r#"
            enabled = true
            [chat]
            mode = "webhook"
            webhook_url_env = "HOOK"
            [email]
            enabled = true
            from = "km3mon@example.org"
            to = ["shift@example.org"]
            [[route]]
            name = "shift"
            match = ["dom_inactive:*"]
            sinks = ["chat", "email", "log"]
            "#,
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn unknown_and_unconfigured_sinks_duplicates_and_mail_without_addresses() {
        let p = problems(
            r#"
            [email]
            enabled = true
            to = ["nobody"]
            [[route]]
            name = "a"
            sinks = ["chta", "chat"]
            [[route]]
            name = "a"
            sinks = []
            "#,
        );
        let paths: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            paths,
            [
                "route[0].sinks[0]",
                "route[0].sinks[1]",
                "route[1].name",
                "route[1].sinks",
                "email",
                "email.to[0]"
            ],
            "{p:?}"
        );
        assert!(p[0].1.contains("unknown sink `chta`"));
        assert!(p[1].1.contains("mode is off"));
        assert!(p[4].1.contains("no sender"));
    }
}
