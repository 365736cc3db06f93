//! The crate's one error type.

use thiserror::Error;

/// What went wrong when configuring, restoring or feeding the breaker.
///
/// Blocked sends are not errors of this type: a block is a decision, carried back to the caller
/// with the notification in [`Blocked`](crate::Blocked).
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A configuration field holds a value the breaker cannot run with.
    #[error("invalid `{field}` = {value}: {reason}")]
    Invalid {
        /// The field, as a path from the top of the configuration (`kinds."email.welcome".floor`).
        field: String,
        /// The rejected value, as written.
        value: String,
        /// What the value must be instead.
        reason: &'static str,
    },
    /// The configuration text could not be read as the named format.
    #[error("cannot parse {format} configuration: {message}")]
    Parse {
        /// `TOML` or `JSON`.
        format: &'static str,
        /// The parser's account, which names the field and the position.
        message: String,
    },
    /// A snapshot was refused; the breaker carries on with what it had.
    #[error("cannot restore snapshot: {0}")]
    Snapshot(String),
    /// A kind name breaks the kind-name rule ([`validate_kind_name`](crate::config::validate_kind_name)).
    #[error("invalid kind name {name}: {reason}")]
    InvalidKindName {
        /// The name, quoted, with control characters escaped, shortened if long.
        name: String,
        /// The part of the rule it breaks.
        reason: &'static str,
    },
    /// An operator control named a kind the breaker has not registered and the configuration
    /// does not name, so there is no kind of that name to act on.
    #[error("unknown kind {0:?}: the breaker has not seen it and the configuration does not name it")]
    UnknownKind(String),
    /// A kind could not be registered: the registry holds `max_kinds` kinds and none could give
    /// its room up. Name the kind in the configuration to keep it a slot.
    #[error("no room for kind {0:?}: the registry is full; name it in the configuration to keep it a slot")]
    NoRoom(String),
    /// A file (a configuration, a snapshot file) could not be read or written.
    #[error("cannot {action} {}: {message}", path.display())]
    File {
        /// What was being done (`read`, `write`, `replace`).
        action: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The system's account of what went wrong.
        message: String,
    },
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, value: impl ToString, reason: &'static str) -> Self {
        Self::Invalid {
            field: field.into(),
            value: value.to_string(),
            reason,
        }
    }

    /// Whether this error is about the configuration (its values or its syntax).
    pub fn is_config(&self) -> bool {
        matches!(self, Self::Invalid { .. } | Self::Parse { .. })
    }

    /// Whether this error is a refused snapshot.
    pub fn is_snapshot(&self) -> bool {
        matches!(self, Self::Snapshot(_))
    }

    /// Whether this error is a kind name that breaks the kind-name rule.
    pub fn is_invalid_kind_name(&self) -> bool {
        matches!(self, Self::InvalidKindName { .. })
    }

    /// Whether this error is a file that could not be read or written.
    pub fn is_file(&self) -> bool {
        matches!(self, Self::File { .. })
    }

    /// Whether this error is an operator control on a kind the breaker does not know.
    pub fn is_unknown_kind(&self) -> bool {
        matches!(self, Self::UnknownKind(_))
    }
}
