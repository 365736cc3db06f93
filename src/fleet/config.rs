//! Fleet mode's settings: where Redis is, how keys are named, how often to sync, how long to
//! wait for Redis before falling back to local-only detection.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Settings of fleet mode ([`Fleet`](super::Fleet)).
///
/// ```
/// use spikebreaker::fleet::FleetConfig;
/// let config: FleetConfig = toml::from_str(r#"
///     url = "redis+unix:///run/redis/redis.sock"
///     sync_interval_ms = 100
/// "#)?;
/// config.validate()?;
/// assert_eq!(config.key_prefix, "spikebreaker");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    /// Redis to sync through: `redis://host:port[/db]`, or a unix socket as
    /// `redis+unix:///path` or `unix:///path` (`redis://127.0.0.1:6379` by default).
    pub url: String,
    /// Prefix of every key and of the pub/sub channel; instances of one fleet share it
    /// (`spikebreaker` by default; not empty, no `{` or `}`).
    pub key_prefix: String,
    /// How often each instance sends its counts and reads the fleet's, in milliseconds (250 by
    /// default; 1 to 3,600,000).
    pub sync_interval_ms: u64,
    /// How long to wait for a connection before falling back to local-only detection, in
    /// milliseconds (1000 by default; 1 to 3,600,000).
    pub connect_timeout_ms: u64,
    /// How long to wait for one sync's reply before falling back to local-only detection, in
    /// milliseconds (200 by default; 1 to 3,600,000).
    pub response_timeout_ms: u64,
    /// Longest wait between reconnection attempts, in milliseconds (the wait doubles from one
    /// sync interval; 10,000 by default; 1 to 3,600,000).
    pub max_backoff_ms: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "spikebreaker".into(),
            sync_interval_ms: 250,
            connect_timeout_ms: 1000,
            response_timeout_ms: 200,
            max_backoff_ms: 10_000,
        }
    }
}

/// Shows the URL with any password replaced by `***`.
impl fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetConfig")
            .field("url", &redacted(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("sync_interval_ms", &self.sync_interval_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("response_timeout_ms", &self.response_timeout_ms)
            .field("max_backoff_ms", &self.max_backoff_ms)
            .finish()
    }
}

/// `url` fit to show in an error or a log line: the password of `scheme://user:password@host`
/// and the `pass=` of a unix socket's query replaced by `***`. The password runs to the last
/// `@`, so that one holding `/`, `?`, `#` or `@` unencoded never shows (an `@` in a query may
/// hide more than the password: never less).
fn redacted(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let password = url[start..].rfind('@').and_then(|at| {
        url[start..start + at]
            .find(':')
            .map(|colon| (start + colon + 1, start + at))
    });
    let mut shown = match password {
        Some((from, to)) => format!("{}***{}", &url[..from], &url[to..]),
        None => url.to_owned(),
    };
    if let Some(query) = shown.find('?') {
        let pairs: Vec<String> = shown[query + 1..]
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key @ ("pass" | "password"), _)) => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        shown = format!("{}?{}", &shown[..query], pairs.join("&"));
    }
    shown
}

const MAX_MS: u64 = 3_600_000;

impl FleetConfig {
    /// A configuration for the Redis at `url`, everything else default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        self.client()?;
        if self.key_prefix.is_empty() || self.key_prefix.contains(['{', '}']) {
            return Err(Error::invalid(
                "fleet.key_prefix",
                format!("{:?}", self.key_prefix),
                "must be non-empty and contain no `{` or `}` (kinds are the keys' hash tags)",
            ));
        }
        for (field, ms) in [
            ("fleet.sync_interval_ms", self.sync_interval_ms),
            ("fleet.connect_timeout_ms", self.connect_timeout_ms),
            ("fleet.response_timeout_ms", self.response_timeout_ms),
            ("fleet.max_backoff_ms", self.max_backoff_ms),
        ] {
            if !(1..=MAX_MS).contains(&ms) {
                return Err(Error::invalid(field, ms, "must be 1 to 3600000 milliseconds"));
            }
        }
        Ok(())
    }

    /// The Redis client, speaking RESP3 so that one connection carries both the syncs and the
    /// pub/sub messages.
    pub(crate) fn client(&self) -> Result<redis::Client, Error> {
        use redis::IntoConnectionInfo;
        let bad = |_| {
            Error::invalid(
                "fleet.url",
                redacted(&self.url),
                "must be redis://host:port, redis+unix:///path or unix:///path",
            )
        };
        let info = self.url.as_str().into_connection_info().map_err(bad)?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        redis::Client::open(info.set_redis_settings(settings)).map_err(bad)
    }

    pub(crate) fn interval(&self) -> Duration {
        Duration::from_millis(self.sync_interval_ms)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub(crate) fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_and_unix_urls_are_accepted() {
        for url in [
            "redis://127.0.0.1:6379",
            "redis+unix:///tmp/r.sock",
            "unix:///tmp/r.sock",
        ] {
            FleetConfig::new(url).validate().unwrap();
        }
    }

    #[test]
    fn errors_name_the_field_and_the_value() {
        let cases = [
            (
                FleetConfig::new("http://example.com"),
                "fleet.url",
                "http://example.com",
            ),
            (
                FleetConfig {
                    sync_interval_ms: 0,
                    ..FleetConfig::default()
                },
                "fleet.sync_interval_ms",
                "0",
            ),
            (
                FleetConfig {
                    key_prefix: "a{b".into(),
                    ..FleetConfig::default()
                },
                "fleet.key_prefix",
                "a{b",
            ),
            (
                FleetConfig {
                    response_timeout_ms: 0,
                    ..FleetConfig::default()
                },
                "fleet.response_timeout_ms",
                "0",
            ),
        ];
        for (config, field, value) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(field) && err.contains(value), "{err}");
        }
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let err = toml::from_str::<FleetConfig>("sync_intervl_ms = 5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sync_intervl_ms"), "{err}");
    }

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            ("redis://user:secret@host:6379/0", "redis://user:***@host:6379/0"),
            ("redis://:secret@host", "redis://:***@host"),
            ("rediss://user:p@ss:w@host", "rediss://user:***@host"),
            (
                "redis+unix:///run/r.sock?db=1&pass=secret",
                "redis+unix:///run/r.sock?db=1&pass=***",
            ),
            ("redis://host:6379", "redis://host:6379"),
            ("redis://user@host", "redis://user@host"),
            // Unencoded `/`, `#`, `?` and `@` in the password.
            ("redis://user:se/cret@host:6379/0", "redis://user:***@host:6379/0"),
            ("redis://:se#cret@host", "redis://:***@host"),
            ("redis://user:se?cret@host/1", "redis://user:***@host/1"),
            ("redis://user:s/e#c?r@et@host", "redis://user:***@host"),
        ] {
            assert_eq!(redacted(url), shown);
            let config = FleetConfig::new(url);
            assert!(!format!("{config:?}").contains("secret"), "{config:?}");
        }
        let err = FleetConfig::new("http://user:secret@host")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("fleet.url") && err.contains("http://user:***@host"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");
        for url in [
            "redis://user:se/cret@host:6379/0",
            "redis://:se#cret@host",
            "redis://user:se?cret@host/1",
        ] {
            let config = FleetConfig::new(url);
            let shown = format!(
                "{config:?} {}",
                config.validate().err().map(|e| e.to_string()).unwrap_or_default()
            );
            assert!(!shown.contains("cret"), "{shown}");
        }
    }
}
