//! The `[alerts]` and `[smtp]` sections (§1, §9). `[alerts]` holds both the channels (one
//! sub-table `[alerts.<name>]` each) and plain keys that apply to all of them: the `default_*`
//! channel lists of DAGs that name none, and the delivery policy (`retries`, `retry_delay`,
//! `max_retry_delay`, `timeout`, `concurrency`) that a channel may override for itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::domain::alerts::{AlertDefaults, DeliveryPolicy};
use crate::domain::duration::parse_duration;

/// Deliveries of one channel in flight at once, unless `[alerts] concurrency` says otherwise.
const DEFAULT_CONCURRENCY: usize = 4;

/// The checked alert configuration.
#[derive(Debug, Clone, Default)]
pub struct AlertsConfig {
    pub channels: BTreeMap<String, Channel>,
    pub defaults: AlertDefaults,
    /// Most deliveries of one channel in flight at once (a dead channel holds only its own).
    pub concurrency: usize,
}

/// One `[alerts.<name>]` channel.
#[derive(Debug, Clone)]
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
    pub policy: DeliveryPolicy,
}

#[derive(Clone)]
pub enum ChannelKind {
    /// POST of the §9 payload as JSON.
    Webhook {
        url: String,
        headers: BTreeMap<String, String>,
    },
    /// A Slack incoming webhook: `{"text": ...}` with a link to the log.
    Slack { url: String },
    /// A plain-text email through SMTP.
    Email { smtp: SmtpSettings, to: Vec<String> },
    /// `sh -c command` with the payload's fields in `WEIR_ALERT_*` variables, run in `cwd` (the
    /// config file's folder).
    Command { command: String, cwd: PathBuf },
}

impl std::fmt::Debug for ChannelKind {
    // By hand: webhook URLs and headers often carry tokens; only their shape is printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelKind::Webhook { headers, .. } => f
                .debug_struct("Webhook")
                .field("url", &"***")
                .field("headers", &headers.keys().collect::<Vec<_>>())
                .finish(),
            ChannelKind::Slack { .. } => f.debug_struct("Slack").field("url", &"***").finish(),
            ChannelKind::Email { smtp, to } => f.debug_struct("Email").field("smtp", smtp).field("to", to).finish(),
            ChannelKind::Command { command, cwd } => f
                .debug_struct("Command")
                .field("command", command)
                .field("cwd", cwd)
                .finish(),
        }
    }
}

impl ChannelKind {
    pub fn name(&self) -> &'static str {
        match self {
            ChannelKind::Webhook { .. } => "webhook",
            ChannelKind::Slack { .. } => "slack",
            ChannelKind::Email { .. } => "email",
            ChannelKind::Command { .. } => "command",
        }
    }
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain text (a local relay, a test server).
    None,
    /// Plain connection upgraded with STARTTLS, which must be offered.
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

impl SmtpSecurity {
    fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::None => 25,
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
        }
    }
}

/// Where and how email is sent: `[smtp]`, with any key overridden by the channel.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub from: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub security: SmtpSecurity,
}

impl std::fmt::Debug for SmtpSettings {
    // By hand: the password must never reach a debug print or a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("security", &self.security)
            .finish()
    }
}

/// The SMTP keys, as `[smtp]` and email channels write them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: Option<String>,
    port: Option<u16>,
    from: Option<String>,
    username: Option<String>,
    password: Option<String>,
    /// `none`, `starttls` or `tls`.
    security: Option<String>,
    /// §1's shorthand: `true` is `security = "starttls"`, `false` is `"none"`.
    starttls: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    kind: String,
    url: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    to: Option<Vec<String>>,
    command: Option<String>,
    retries: Option<u32>,
    retry_delay: Option<String>,
    max_retry_delay: Option<String>,
    timeout: Option<String>,
    // The SMTP keys an email channel may override (`#[serde(flatten)]` cannot be combined with
    // `deny_unknown_fields`, so they are spelled out here).
    host: Option<String>,
    port: Option<u16>,
    from: Option<String>,
    username: Option<String>,
    password: Option<String>,
    security: Option<String>,
    starttls: Option<bool>,
}

impl RawChannel {
    fn smtp(&self) -> RawSmtp {
        RawSmtp {
            host: self.host.clone(),
            port: self.port,
            from: self.from.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            security: self.security.clone(),
            starttls: self.starttls,
        }
    }

    /// The first SMTP key the channel sets, for "does not apply" messages.
    fn first_smtp_key(&self) -> Option<&'static str> {
        [
            ("host", self.host.is_some()),
            ("port", self.port.is_some()),
            ("from", self.from.is_some()),
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("security", self.security.is_some()),
            ("starttls", self.starttls.is_some()),
        ]
        .into_iter()
        .find_map(|(key, present)| present.then_some(key))
    }
}

/// Reads `[alerts]` and `[smtp]`; `path` and `base` (the config folder) are for messages and
/// command working directories.
pub(super) fn parse(
    path: &Path,
    base: &Path,
    alerts: &toml::Table,
    smtp: Option<&toml::Table>,
) -> Result<AlertsConfig, ConfigError> {
    let bad = |section: &str, key: &str, value: &str, reason: &str| ConfigError::BadValue {
        path: path.to_path_buf(),
        section: section.to_string(),
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let smtp: RawSmtp = match smtp {
        Some(table) => {
            RawSmtp::deserialize(toml::Value::Table(table.clone())).map_err(|error| ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!("[smtp]: {}", error.message()),
            })?
        }
        None => RawSmtp::default(),
    };
    let mut policy = DeliveryPolicy::default();
    let mut defaults = AlertDefaults::default();
    let mut concurrency = DEFAULT_CONCURRENCY;
    let mut raw_channels = Vec::new();
    for (key, value) in alerts {
        let text = || value.as_str().map_or_else(|| value.to_string(), str::to_string);
        match (key.as_str(), value) {
            (_, toml::Value::Table(table)) => raw_channels.push((key.clone(), table.clone())),
            ("default_on_failure" | "default_on_retry" | "default_on_success" | "default_sla_miss", _) => {
                let names = channel_list(value)
                    .ok_or_else(|| bad("alerts", key, &text(), "use a list of channel names, e.g. [\"ops\"]"))?;
                let slot = match key.as_str() {
                    "default_on_failure" => &mut defaults.on_failure,
                    "default_on_retry" => &mut defaults.on_retry,
                    "default_on_success" => &mut defaults.on_success,
                    _ => &mut defaults.sla_miss,
                };
                *slot = names;
            }
            ("concurrency", toml::Value::Integer(count)) if *count >= 1 => {
                concurrency = usize::try_from(*count).unwrap_or(usize::MAX);
            }
            ("concurrency", _) => return Err(bad("alerts", key, &text(), "must be a whole number of at least 1")),
            ("retries" | "retry_delay" | "max_retry_delay" | "timeout", _) => {
                policy = apply_policy_key(policy, key, value).map_err(|reason| bad("alerts", key, &text(), &reason))?;
            }
            _ => {
                return Err(bad(
                    "alerts",
                    key,
                    &text(),
                    "unknown key: [alerts] takes default_on_failure, default_on_retry, default_on_success, \
                     default_sla_miss, retries, retry_delay, max_retry_delay, timeout, concurrency, and one \
                     [alerts.<name>] table per channel",
                ));
            }
        }
    }
    let mut channels = BTreeMap::new();
    for (name, table) in raw_channels {
        let section = format!("alerts.{name}");
        if !valid_channel_name(&name) {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "[{section}]: a channel name uses only A-Z a-z 0-9 _ . - (it is written in DAG files)"
                ),
            });
        }
        let raw = RawChannel::deserialize(toml::Value::Table(table)).map_err(|error| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: format!("[{section}]: {}", error.message()),
        })?;
        let channel = channel(&section, &name, raw, policy, &smtp, base)
            .map_err(|(key, value, reason)| bad(&section, &key, &value, &reason))?;
        channels.insert(name, channel);
    }
    for (key, names) in [
        ("default_on_failure", &defaults.on_failure),
        ("default_on_retry", &defaults.on_retry),
        ("default_on_success", &defaults.on_success),
        ("default_sla_miss", &defaults.sla_miss),
    ] {
        if let Some(unknown) = names.iter().find(|name| !channels.contains_key(*name)) {
            return Err(bad(
                "alerts",
                key,
                unknown,
                &format!("no channel [alerts.{unknown}] is defined in this file"),
            ));
        }
    }
    Ok(AlertsConfig {
        channels,
        defaults,
        concurrency,
    })
}

/// A list of channel names; a comma-separated string works too (for `WEIR__ALERTS__DEFAULT_*`
/// environment overrides, which cannot write a TOML array).
fn channel_list(value: &toml::Value) -> Option<Vec<String>> {
    if let Some(text) = value.as_str() {
        return Some(
            text.split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_string)
                .collect(),
        );
    }
    value
        .as_array()?
        .iter()
        .map(|item| item.as_str().map(str::to_string))
        .collect()
}

fn valid_channel_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
}

fn apply_policy_key(mut policy: DeliveryPolicy, key: &str, value: &toml::Value) -> Result<DeliveryPolicy, String> {
    let duration = |value: &toml::Value| -> Result<Duration, String> {
        let text = value
            .as_str()
            .ok_or_else(|| "write a duration in quotes, e.g. \"10s\"".to_string())?;
        parse_duration(text).map_err(|error| error.to_string())
    };
    match key {
        "retries" => {
            policy.retries = value
                .as_integer()
                .and_then(|count| u32::try_from(count).ok())
                .ok_or_else(|| "must be a whole number, 0 or more".to_string())?;
        }
        "retry_delay" => policy.retry_delay = duration(value)?,
        "max_retry_delay" => policy.max_retry_delay = duration(value)?,
        _ => {
            policy.timeout = duration(value)?;
            if policy.timeout.is_zero() {
                return Err("must be positive".to_string());
            }
        }
    }
    Ok(policy)
}

/// `(key, value, reason)` of the first problem in a channel.
type ChannelProblem = (String, String, String);

fn channel(
    section: &str,
    name: &str,
    raw: RawChannel,
    defaults: DeliveryPolicy,
    smtp: &RawSmtp,
    base: &Path,
) -> Result<Channel, ChannelProblem> {
    let problem = |key: &str, value: &str, reason: &str| (key.to_string(), value.to_string(), reason.to_string());
    let mut policy = defaults;
    for (key, value) in [
        (
            "retries",
            raw.retries.map(|count| toml::Value::Integer(i64::from(count))),
        ),
        ("retry_delay", raw.retry_delay.clone().map(toml::Value::String)),
        ("max_retry_delay", raw.max_retry_delay.clone().map(toml::Value::String)),
        ("timeout", raw.timeout.clone().map(toml::Value::String)),
    ] {
        if let Some(value) = value {
            let text = value.as_str().map_or_else(|| value.to_string(), str::to_string);
            policy = apply_policy_key(policy, key, &value).map_err(|reason| problem(key, &text, &reason))?;
        }
    }
    let smtp_key = raw.first_smtp_key();
    let has_smtp_keys = smtp_key.is_some();
    let smtp_key = smtp_key.unwrap_or("host");
    let stray = |keys: &[(&str, bool)]| -> Result<(), ChannelProblem> {
        match keys.iter().find(|(_, present)| *present) {
            Some((key, _)) => Err(problem(key, "", &format!("does not apply to a {} channel", raw.kind))),
            None => Ok(()),
        }
    };
    let url = |raw_url: &Option<String>| -> Result<String, ChannelProblem> {
        let text = raw_url
            .as_deref()
            .ok_or_else(|| problem("url", "", &format!("a {} channel needs a url", raw.kind)))?;
        match reqwest::Url::parse(text) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(text.to_string()),
            _ => Err(problem("url", text, "not an http:// or https:// URL")),
        }
    };
    let kind = match raw.kind.as_str() {
        "webhook" => {
            stray(&[
                ("to", raw.to.is_some()),
                ("command", raw.command.is_some()),
                (smtp_key, has_smtp_keys),
            ])?;
            ChannelKind::Webhook {
                url: url(&raw.url)?,
                headers: raw.headers.clone().unwrap_or_default(),
            }
        }
        "slack" => {
            stray(&[
                ("to", raw.to.is_some()),
                ("command", raw.command.is_some()),
                ("headers", raw.headers.is_some()),
                (smtp_key, has_smtp_keys),
            ])?;
            ChannelKind::Slack { url: url(&raw.url)? }
        }
        "email" => {
            stray(&[
                ("url", raw.url.is_some()),
                ("headers", raw.headers.is_some()),
                ("command", raw.command.is_some()),
            ])?;
            let to = raw.to.clone().unwrap_or_default();
            if to.is_empty() || to.iter().any(|address| !address.contains('@')) {
                return Err(problem(
                    "to",
                    &format!("{to:?}"),
                    "an email channel needs a list of addresses, e.g. to = [\"oncall@example.com\"]",
                ));
            }
            ChannelKind::Email {
                smtp: smtp_settings(section, &raw.smtp(), smtp)?,
                to,
            }
        }
        "command" => {
            stray(&[
                ("url", raw.url.is_some()),
                ("headers", raw.headers.is_some()),
                ("to", raw.to.is_some()),
                (smtp_key, has_smtp_keys),
            ])?;
            let command = raw
                .command
                .clone()
                .filter(|command| !command.trim().is_empty())
                .ok_or_else(|| problem("command", "", "a command channel needs a command to run"))?;
            ChannelKind::Command {
                command,
                cwd: base.to_path_buf(),
            }
        }
        other => {
            return Err(problem(
                "kind",
                other,
                "use \"webhook\", \"slack\", \"email\" or \"command\"",
            ));
        }
    };
    Ok(Channel {
        name: name.to_string(),
        kind,
        policy,
    })
}

/// The channel's SMTP keys over `[smtp]`'s.
fn smtp_settings(section: &str, own: &RawSmtp, shared: &RawSmtp) -> Result<SmtpSettings, ChannelProblem> {
    let problem = |key: &str, value: &str, reason: &str| (key.to_string(), value.to_string(), reason.to_string());
    let pick = |own: &Option<String>, shared: &Option<String>| own.clone().or_else(|| shared.clone());
    let host = pick(&own.host, &shared.host).ok_or_else(|| {
        problem(
            "host",
            "",
            &format!("an email channel needs an SMTP host: set [smtp] host or host in [{section}]"),
        )
    })?;
    let from = pick(&own.from, &shared.from).ok_or_else(|| {
        problem(
            "from",
            "",
            &format!("an email channel needs a sender: set [smtp] from or from in [{section}]"),
        )
    })?;
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(problem("from", &from, "not an email address such as weir@example.com"));
    }
    let security = match (
        own.security.as_ref().or(shared.security.as_ref()),
        own.starttls.or(shared.starttls),
    ) {
        (Some(text), starttls) => {
            let security = match text.as_str() {
                "none" => SmtpSecurity::None,
                "starttls" => SmtpSecurity::StartTls,
                "tls" => SmtpSecurity::Tls,
                other => return Err(problem("security", other, "use \"none\", \"starttls\" or \"tls\"")),
            };
            if let Some(starttls) = starttls
                && starttls != (security == SmtpSecurity::StartTls)
            {
                return Err(problem(
                    "starttls",
                    &starttls.to_string(),
                    &format!("contradicts security = \"{text}\": keep only one of them"),
                ));
            }
            security
        }
        (None, Some(false)) => SmtpSecurity::None,
        (None, Some(true) | None) => SmtpSecurity::StartTls,
    };
    let username = pick(&own.username, &shared.username);
    let password = pick(&own.password, &shared.password);
    if username.is_some() != password.is_some() {
        return Err(problem(
            if username.is_some() { "password" } else { "username" },
            "",
            "SMTP authentication needs both username and password",
        ));
    }
    Ok(SmtpSettings {
        host,
        port: own.port.or(shared.port).unwrap_or(security.default_port()),
        from,
        username,
        password,
        security,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<AlertsConfig, ConfigError> {
        let mut table: toml::Table = text.parse().unwrap();
        let alerts = match table.remove("alerts") {
            Some(toml::Value::Table(alerts)) => alerts,
            _ => toml::Table::new(),
        };
        let smtp = match table.remove("smtp") {
            Some(toml::Value::Table(smtp)) => Some(smtp),
            _ => None,
        };
        parse(Path::new("config.toml"), Path::new("/srv/weir"), &alerts, smtp.as_ref())
    }

    #[test]
    fn channels_and_defaults_share_the_alerts_table() {
        let config = parse_text(
            r#"
[alerts]
default_on_failure = ["ops"]
default_sla_miss = ["ops", "mail"]
retries = 2
retry_delay = "1s"

[alerts.ops]
kind = "webhook"
url = "https://hooks.example.com/weir"
headers = { Authorization = "Bearer abc" }
timeout = "300ms"

[alerts.mail]
kind = "email"
to = ["oncall@example.com"]
port = 2525

[alerts.local]
kind = "command"
command = "logger weir alert"

[smtp]
host = "smtp.example.com"
from = "weir@example.com"
username = "weir"
password = "hunter2"
starttls = false
"#,
        )
        .unwrap();
        assert_eq!(config.defaults.on_failure, ["ops"]);
        assert_eq!(config.defaults.sla_miss, ["ops", "mail"]);
        assert_eq!(config.concurrency, DEFAULT_CONCURRENCY);
        let ops = &config.channels["ops"];
        assert_eq!(ops.policy.retries, 2);
        assert_eq!(ops.policy.retry_delay, Duration::from_secs(1));
        assert_eq!(ops.policy.timeout, Duration::from_millis(300));
        assert!(matches!(&ops.kind, ChannelKind::Webhook { headers, .. } if headers["Authorization"] == "Bearer abc"));
        let ChannelKind::Email { smtp, to } = &config.channels["mail"].kind else {
            panic!("mail is an email channel");
        };
        assert_eq!(to, &["oncall@example.com"]);
        assert_eq!((smtp.host.as_str(), smtp.port), ("smtp.example.com", 2525));
        assert_eq!(smtp.security, SmtpSecurity::None);
        assert!(
            !format!("{smtp:?}").contains("hunter2"),
            "the password stays out of debug output"
        );
        assert!(
            matches!(&config.channels["local"].kind, ChannelKind::Command { cwd, .. } if cwd == Path::new("/srv/weir"))
        );
    }

    #[test]
    fn mistakes_name_the_channel_key_and_reason() {
        let cases = [
            (
                "[alerts.ops]\nkind = \"pager\"\n",
                "[alerts.ops] kind = \"pager\": use \"webhook\", \"slack\", \"email\" or \"command\"",
            ),
            (
                "[alerts.ops]\nkind = \"webhook\"\n",
                "[alerts.ops] url = \"\": a webhook channel needs a url",
            ),
            (
                "[alerts.ops]\nkind = \"slack\"\nurl = \"ftp://x\"\n",
                "[alerts.ops] url = \"ftp://x\": not an http:// or https:// URL",
            ),
            (
                "[alerts.ops]\nkind = \"email\"\nto = [\"a@example.com\"]\n",
                "[alerts.ops] host = \"\": an email channel needs an SMTP host",
            ),
            (
                "[alerts.ops]\nkind = \"webhook\"\nurl = \"http://x\"\ncommand = \"echo\"\n",
                "[alerts.ops] command = \"\": does not apply to a webhook channel",
            ),
            (
                "[alerts.ops]\nkind = \"webhook\"\nurl = \"http://x\"\nurll = 1\n",
                "unknown field `urll`",
            ),
            (
                "[alerts]\ndefault_on_failure = [\"ops\"]\n",
                "no channel [alerts.ops] is defined",
            ),
            (
                "[alerts]\ndefault_on_failur = [\"ops\"]\n",
                "unknown key: [alerts] takes default_on_failure",
            ),
            (
                "[alerts]\nretry_delay = \"soon\"\n",
                "[alerts] retry_delay = \"soon\": `soon` is not a duration",
            ),
            (
                "[alerts.ops]\nkind = \"command\"\ncommand = \"x\"\ntimeout = \"0s\"\n",
                "[alerts.ops] timeout = \"0s\": must be positive",
            ),
            (
                "[smtp]\nhost = \"h\"\nfrom = \"w@example.com\"\nusername = \"u\"\n[alerts.m]\nkind = \"email\"\nto = [\"a@example.com\"]\n",
                "[alerts.m] password = \"\": SMTP authentication needs both username and password",
            ),
        ];
        for (text, expected) in cases {
            let error = parse_text(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}\n→ {error}\nwanted: {expected}");
        }
    }

    #[test]
    fn a_default_list_may_be_a_comma_separated_string_as_environment_overrides_write_it() {
        let config = parse_text(
            "[alerts]\ndefault_on_failure = \"ops, mail\"\n[alerts.ops]\nkind = \"command\"\ncommand = \"true\"\n[alerts.mail]\nkind = \"command\"\ncommand = \"true\"\n",
        )
        .unwrap();
        assert_eq!(config.defaults.on_failure, ["ops", "mail"]);
        let debug = format!(
            "{:?}",
            parse_text("[alerts.ops]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/T/B/secret\"\n").unwrap()
        );
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn smtp_security_defaults_to_starttls_and_picks_the_usual_port() {
        let config = parse_text(
            "[smtp]\nhost = \"h\"\nfrom = \"w@example.com\"\n[alerts.a]\nkind = \"email\"\nto = [\"x@example.com\"]\n[alerts.b]\nkind = \"email\"\nto = [\"x@example.com\"]\nsecurity = \"tls\"\n",
        )
        .unwrap();
        let settings = |name: &str| match &config.channels[name].kind {
            ChannelKind::Email { smtp, .. } => (smtp.security, smtp.port),
            _ => panic!("{name} is an email channel"),
        };
        assert_eq!(settings("a"), (SmtpSecurity::StartTls, 587));
        assert_eq!(settings("b"), (SmtpSecurity::Tls, 465));
    }
}
