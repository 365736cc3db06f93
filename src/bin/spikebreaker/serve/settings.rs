//! What `spikebreaker serve` runs with: the breaker's own configuration and the server's
//! `[server]` section, read from one file (TOML or JSON), the flags laid over them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use spikebreaker::Config;
use spikebreaker::fleet::FleetConfig;

/// The `[server]` section of the configuration file. Every field has a default, so a plain
/// breaker configuration (or no file at all) runs a server on loopback.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ServerSection {
    /// Where Envoy's rate-limit service (and the gRPC health service) listens; `""` for nowhere.
    pub(crate) grpc: String,
    /// Where the HTTP routes listen (`/v1/...`, `/json`, `/admin/...`, `/metrics`); `""` for
    /// nowhere.
    pub(crate) http: String,
    /// The rate-limit domain the gRPC service answers; requests for another are refused.
    pub(crate) domain: String,
    /// The breaker's name: the `breaker` label of every metric.
    pub(crate) name: String,
    /// Where the snapshot file (`snapshot.json`) and the embedded quarantine
    /// (`quarantine.db`) live.
    pub(crate) state_dir: PathBuf,
    /// The most sends one request may count (`hits_addend`, `count`).
    pub(crate) max_hits_addend: u32,
    /// Where refused notifications handed over the wire are held.
    pub(crate) quarantine: StoreChoice,
    /// Live items the quarantine may hold; a hold beyond is refused and the notification stays
    /// with its sender.
    pub(crate) quarantine_max_items: u64,
    /// How long a claimed item stays with the sender that claimed it before it goes back, in
    /// seconds.
    pub(crate) lease_secs: u64,
    /// The most items one claim hands out.
    pub(crate) max_claim: u32,
    /// Host names the HTTP routes answer besides `localhost` and IP addresses.
    pub(crate) allow_hosts: Vec<String>,
    /// The environment variable holding the bearer token of the admin routes (unset or empty:
    /// none required).
    pub(crate) admin_token_env: String,
    /// The environment variable holding the bearer token of the senders' HTTP routes (unset or
    /// empty: none required).
    pub(crate) sender_token_env: String,
    /// Fleet mode: counts shared through this Redis by every server of one `key_prefix`.
    pub(crate) fleet: Option<FleetConfig>,
}

/// Where the quarantine keeps what it holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StoreChoice {
    /// SQLite in `state_dir` without fleet mode, the fleet's Redis with it.
    #[default]
    Auto,
    /// `state_dir/quarantine.db`: durable, one server's.
    Sqlite,
    /// Redis Streams on the fleet's Redis: shared by the fleet.
    Redis,
    /// In memory, lost at exit: for trials.
    Memory,
    /// No quarantine: holds are refused.
    Off,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            grpc: "127.0.0.1:8081".into(),
            http: "127.0.0.1:8080".into(),
            domain: "spikebreaker".into(),
            name: "spikebreaker".into(),
            state_dir: PathBuf::from("."),
            max_hits_addend: 10_000,
            quarantine: StoreChoice::Auto,
            quarantine_max_items: 1_000_000,
            lease_secs: 30,
            max_claim: 100,
            allow_hosts: Vec::new(),
            admin_token_env: "SPIKEBREAKER_ADMIN_TOKEN".into(),
            sender_token_env: "SPIKEBREAKER_SENDER_TOKEN".into(),
            fleet: None,
        }
    }
}

impl ServerSection {
    /// Checks what the breaker's validation does not see.
    pub(crate) fn validate(&self) -> Result<(), String> {
        for (field, address) in [("server.grpc", &self.grpc), ("server.http", &self.http)] {
            if !address.is_empty() {
                address
                    .parse::<SocketAddr>()
                    .map_err(|_| format!("`{field}` = {address:?} is not an address like 127.0.0.1:8080"))?;
            }
        }
        if self.domain.is_empty() {
            return Err("`server.domain` must not be empty".into());
        }
        if self.max_hits_addend == 0 {
            return Err("`server.max_hits_addend` must be at least 1".into());
        }
        if !(1..=86_400).contains(&self.lease_secs) {
            return Err(format!(
                "`server.lease_secs` must be 1 to 86400, not {}",
                self.lease_secs
            ));
        }
        if !(1..=10_000).contains(&self.max_claim) {
            return Err(format!(
                "`server.max_claim` must be 1 to 10000, not {}",
                self.max_claim
            ));
        }
        if self.quarantine == StoreChoice::Redis && self.fleet.is_none() {
            return Err("`server.quarantine = \"redis\"` needs `[server.fleet]` (its url)".into());
        }
        if let Some(fleet) = &self.fleet {
            fleet
                .validate()
                .map_err(|error| format!("`server.fleet`: {error}"))?;
        }
        Ok(())
    }

    /// The store the quarantine is kept in, `auto` resolved.
    pub(crate) fn store(&self) -> StoreChoice {
        match (self.quarantine, &self.fleet) {
            (StoreChoice::Auto, Some(_)) => StoreChoice::Redis,
            (StoreChoice::Auto, None) => StoreChoice::Sqlite,
            (chosen, _) => chosen,
        }
    }

    /// The snapshot file.
    pub(crate) fn snapshot_file(&self) -> PathBuf {
        self.state_dir.join("snapshot.json")
    }

    /// The token an environment variable named in the section holds, if set and not empty.
    pub(crate) fn token(variable: &str) -> Option<String> {
        std::env::var(variable).ok().filter(|token| !token.is_empty())
    }
}

/// The configuration file read: the server's section and the breaker's configuration.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) server: ServerSection,
    pub(crate) config: Config,
}

/// Reads `path` (TOML or JSON, by its extension), or the defaults without one. An error names
/// the file and the field.
pub(crate) fn load(path: Option<&Path>) -> Result<Settings, String> {
    let Some(path) = path else {
        return Ok(Settings {
            server: ServerSection::default(),
            config: Config::default(),
        });
    };
    let named = |error: String| format!("{}: {error}", path.display());
    let text = std::fs::read_to_string(path).map_err(|error| named(format!("cannot read it: {error}")))?;
    let json = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("toml") => false,
        Some("json") => true,
        _ => {
            return Err(named(
                "its name must end in `.toml` or `.json`, which says how to read it".into(),
            ));
        }
    };
    let settings = if json { from_json(&text) } else { from_toml(&text) }.map_err(named)?;
    settings.server.validate().map_err(named)?;
    Ok(settings)
}

/// A TOML file: without a `[server]` table it is the breaker's configuration exactly, read by
/// [`Config::from_toml`] (its errors name the line); with one, the table is taken out and each
/// part read on its own, an error naming the field.
fn from_toml(text: &str) -> Result<Settings, String> {
    let mut table: toml::Table = toml::from_str(text).map_err(|error| format!("not valid TOML: {error}"))?;
    let Some(server) = table.remove("server") else {
        return Ok(Settings {
            server: ServerSection::default(),
            config: Config::from_toml(text).map_err(|error| error.to_string())?,
        });
    };
    let server: ServerSection = naming_the_field(server, "server.")?;
    let config: Config = naming_the_field(toml::Value::Table(table), "")?;
    config.validate().map_err(|error| error.to_string())?;
    Ok(Settings { server, config })
}

/// A JSON file, read as a TOML one is (the server's part under `"server"`).
fn from_json(text: &str) -> Result<Settings, String> {
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|error| format!("not a JSON object: {error}"))?;
    let Some(server) = object.remove("server") else {
        return Ok(Settings {
            server: ServerSection::default(),
            config: Config::from_json(text).map_err(|error| error.to_string())?,
        });
    };
    let server: ServerSection = naming_the_field(server, "server.")?;
    let config: Config = naming_the_field(serde_json::Value::Object(object), "")?;
    config.validate().map_err(|error| error.to_string())?;
    Ok(Settings { server, config })
}

/// `T` read from a parsed document, an error naming the field (`server.lease_secs`).
fn naming_the_field<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    document: D,
    prefix: &str,
) -> Result<T, String>
where
    D::Error: std::fmt::Display,
{
    serde_path_to_error::deserialize(document).map_err(|error| match error.path().to_string().as_str() {
        "." => format!("{}{}", prefix.trim_end_matches('.'), error.inner())
            .trim_start()
            .to_owned(),
        path => format!("`{prefix}{path}`: {}", error.inner()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml(text: &str) -> Result<Settings, String> {
        from_toml(text).and_then(|settings| settings.server.validate().map(|()| settings))
    }

    #[test]
    fn a_plain_breaker_configuration_runs_on_the_defaults() {
        let settings = toml("[defaults]\nwindow_secs = 120\n").unwrap();
        assert_eq!(settings.server, ServerSection::default());
        assert_eq!(settings.config.defaults.window_secs, 120);
        assert_eq!(settings.server.store(), StoreChoice::Sqlite);
    }

    #[test]
    fn the_server_section_sits_beside_the_breakers() {
        let settings = toml(
            "[server]\ngrpc = \"0.0.0.0:9081\"\ndomain = \"mailer\"\n[server.fleet]\nurl = \"redis://10.0.0.1:6379\"\n\
             [defaults]\nwindow_secs = 120\n",
        )
        .unwrap();
        assert_eq!(settings.server.grpc, "0.0.0.0:9081");
        assert_eq!(settings.server.domain, "mailer");
        assert_eq!(settings.server.store(), StoreChoice::Redis);
        assert_eq!(settings.config.defaults.window_secs, 120);
        let json = from_json(r#"{"server": {"http": ""}, "defaults": {"window_secs": 90}}"#).unwrap();
        assert_eq!(
            (json.server.http.as_str(), json.config.defaults.window_secs),
            ("", 90)
        );
    }

    #[test]
    fn a_bad_field_is_named() {
        let cases = [
            ("[server]\nlease_secs = \"long\"\n", "`server.lease_secs`"),
            ("[server]\nport = 1\n", "unknown field `port`"),
            ("[server]\ngrpc = \"localhost\"\n", "`server.grpc`"),
            (
                "[server]\nlease_secs = 0\n",
                "`server.lease_secs` must be 1 to 86400",
            ),
            ("[server]\nquarantine = \"redis\"\n", "needs `[server.fleet]`"),
            (
                "[server]\n[defaults]\nwindow_secs = \"x\"\n",
                "`defaults.window_secs`",
            ),
            ("[defaults]\nwindow_secs = \"x\"\n", "window_secs"),
            ("[server]\n[defaults]\nwindow_secs = 0\n", "window_secs"),
        ];
        for (text, expected) in cases {
            let error = toml(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
