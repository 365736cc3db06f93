//! Reading a configuration: TOML, JSON, or a file of either, each validated before it is
//! returned, with a hint where a field of spikebreaker 0.1's configuration went.

use super::Config;
use crate::error::Error;
use crate::json;

impl Config {
    /// Parses TOML and validates the result.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        let config: Self = toml::from_str(text).map_err(|e| Error::Parse {
            format: "TOML",
            message: with_hint(e.to_string()),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses JSON and validates the result.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let config: Self = json::object_naming_the_field(text).map_err(|message| Error::Parse {
            format: "JSON",
            message: with_hint(message),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads the configuration file at `path`, as TOML or JSON by its extension (`.toml`,
    /// `.json`), and validates it. An unreadable file or another extension is an error naming
    /// the path, a syntax error names the path and the position, a bad value the field.
    ///
    /// ```
    /// use spikebreaker::Config;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("breaker.toml");
    /// std::fs::write(&path, "[kinds.\"security.*\"]\nrecovery = \"manual\"\n")?;
    /// let config = Config::from_file(&path)?;
    /// assert!(config.kinds.contains_key("security.*"));
    /// let error = Config::from_file(dir.path().join("breaker.yaml")).unwrap_err();
    /// assert!(error.to_string().contains("breaker.yaml"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let parse: fn(&str) -> Result<Self, Error> = match extension.as_deref() {
            Some("toml") => Self::from_toml,
            Some("json") => Self::from_json,
            _ => {
                return Err(Error::File {
                    action: "read the configuration",
                    path: path.to_owned(),
                    message: "its name must end in `.toml` or `.json`, which says how to read it".to_owned(),
                });
            }
        };
        let text = std::fs::read_to_string(path).map_err(|error| Error::File {
            action: "read the configuration",
            path: path.to_owned(),
            message: error.to_string(),
        })?;
        parse(&text).map_err(|error| match error {
            Error::Parse { format, message } => Error::Parse {
                format,
                message: format!("{}: {message}", path.display()),
            },
            other => other,
        })
    }
}

/// A parser's message, with a word on where a field of spikebreaker 0.1's configuration went.
fn with_hint(message: String) -> String {
    const MOVED: [(&str, &str); 5] = [
        (
            "factor",
            "each timescale has its own: `minute.factor`, `hour.factor`, `day.factor`",
        ),
        (
            "floor",
            "each timescale has its own: `minute.floor`, `hour.floor`, `day.floor`",
        ),
        (
            "ceiling",
            "each timescale has its own: `minute.ceiling`, `hour.ceiling`, `day.ceiling`",
        ),
        (
            "margin_sigmas",
            "the statistical limit is now `minute.sigmas` (and `hour.sigmas`, `day.sigmas`)",
        ),
        (
            "peak_half_life_hours",
            "it is gone: each kind learns its week, hour by hour",
        ),
    ];
    for (field, hint) in MOVED {
        if message.contains(&format!("unknown field `{field}`")) {
            return format!("{message} (since spikebreaker 0.2, {hint})");
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip_through_toml_and_json() {
        let config = Config::default();
        config.validate().unwrap();
        let toml_text = toml::to_string(&config).unwrap();
        assert_eq!(Config::from_toml(&toml_text).unwrap(), config);
        let json_text = serde_json::to_string(&config).unwrap();
        assert_eq!(Config::from_json(&json_text).unwrap(), config);
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let err = Config::from_toml("[defaults]\nfactr = 2.0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("factr"), "{err}");
        let err = Config::from_json(r#"{"kinds": {"a": {"flor": 1}}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("flor"), "{err}");
    }
}
