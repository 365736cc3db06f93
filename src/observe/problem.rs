//! What is wrong with a breaker that no kind's state shows and a service without a `tracing`
//! subscriber would never see: a snapshot file set aside or not saved, two live breakers sharing
//! a name, a metrics recorder installed late. Each is in [`BreakerStatus::problems`] and in the
//! [`PROBLEM`](super::metrics::PROBLEM) gauge (1 while it stands, by its [`Problem::as_str`]), as
//! well as logged.
//!
//! [`BreakerStatus::problems`]: super::BreakerStatus::problems

use std::fmt;

use serde::{Deserialize, Serialize};

/// A problem with the breaker itself (not with a kind's traffic), for an operator to act on.
///
/// In JSON, an object naming it (`"problem": "snapshot_set_aside"`) with its details.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Problem {
    /// The snapshot file could not be read as a snapshot (truncated, corrupt, another program's,
    /// a newer version's) and was set aside beside it: the breaker started with nothing learned
    /// and nothing stopped. Stands until the breaker goes; look at the file set aside
    /// (`BreakerBuilder::strict_snapshot` makes this an error of `build()` instead).
    SnapshotSetAside {
        /// The snapshot file.
        path: String,
        /// Where it was moved (`<file>.corrupt`), if it could be moved.
        set_aside_as: Option<String>,
        /// Why it could not be read.
        why: String,
    },
    /// The snapshot file could not be read at all (no permission, not a regular file) and was
    /// left in place: the breaker started with nothing learned and nothing stopped. Stands until
    /// the breaker goes.
    SnapshotUnreadable {
        /// The snapshot file.
        path: String,
        /// Why it could not be read.
        why: String,
    },
    /// The last save of the snapshot file failed (a full disk, a directory made read-only): a
    /// restart now would lose what was learned and stopped since the last good save. Tried again
    /// at the next save; gone once one succeeds.
    SnapshotNotSaved {
        /// The snapshot file.
        path: String,
        /// Why the save failed.
        why: String,
    },
    /// Other live breakers of this process carry this breaker's name: their metrics are written
    /// to the same series, each overwriting the others'. Name each with
    /// `Breaker::builder().name(..)`. Gone once only one is left.
    NameShared {
        /// Live breakers of this name, this one included.
        breakers: usize,
    },
    /// A metrics recorder was installed after the breaker was made: its series were missing from
    /// it until the refresh that found it, which registered them again. Install the recorder
    /// before making the breaker. Stands until the breaker goes.
    RecorderLate,
}

impl Problem {
    /// Every problem's name: the values of the [`PROBLEM`](super::metrics::PROBLEM) gauge's
    /// `problem` label.
    pub const NAMES: [&'static str; 5] = [
        "snapshot_set_aside",
        "snapshot_unreadable",
        "snapshot_not_saved",
        "name_shared",
        "recorder_late",
    ];

    /// The problem's name, as JSON and the gauge's `problem` label show it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::SnapshotSetAside { .. } => Self::NAMES[0],
            Self::SnapshotUnreadable { .. } => Self::NAMES[1],
            Self::SnapshotNotSaved { .. } => Self::NAMES[2],
            Self::NameShared { .. } => Self::NAMES[3],
            Self::RecorderLate => Self::NAMES[4],
        }
    }
}

/// A breaker's problems as they come (see [`Problem`]); the name shared is read when asked.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    /// The snapshot file at start: set aside, or unreadable and left in place.
    pub(crate) loaded: Option<Problem>,
    /// The last save of the snapshot file, if it failed.
    pub(crate) saved: Option<Problem>,
    pub(crate) recorder_late: bool,
}

impl Problems {
    /// Every problem standing, in the order of [`Problem::NAMES`]; `breakers` live share the
    /// breaker's name.
    pub(crate) fn list(&self, breakers: usize) -> Vec<Problem> {
        let mut list: Vec<Problem> = self.loaded.iter().chain(&self.saved).cloned().collect();
        if breakers > 1 {
            list.push(Problem::NameShared { breakers });
        }
        if self.recorder_late {
            list.push(Problem::RecorderLate);
        }
        list
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SnapshotSetAside {
                path,
                set_aside_as,
                why,
            } => {
                write!(f, "the snapshot file {path} could not be read ({why}): ")?;
                match set_aside_as {
                    Some(aside) => write!(f, "set aside as {aside}")?,
                    None => write!(f, "it could not be set aside")?,
                }
                write!(f, "; started with nothing learned")
            }
            Self::SnapshotUnreadable { path, why } => write!(
                f,
                "the snapshot file {path} cannot be read ({why}): left in place; started with nothing learned"
            ),
            Self::SnapshotNotSaved { path, why } => {
                write!(f, "the snapshot file {path} could not be saved: {why}")
            }
            Self::NameShared { breakers } => write!(
                f,
                "{breakers} live breakers share this name: their metrics are written to the same series"
            ),
            Self::RecorderLate => write!(
                f,
                "a metrics recorder was installed after the breaker: its series were missing until a refresh found it"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_names_itself_in_json_as_its_gauge_label_does() {
        let problems = [
            Problem::SnapshotSetAside {
                path: "a.json".into(),
                set_aside_as: Some("a.json.corrupt".into()),
                why: "EOF".into(),
            },
            Problem::SnapshotUnreadable {
                path: "a.json".into(),
                why: "a FIFO".into(),
            },
            Problem::SnapshotNotSaved {
                path: "a.json".into(),
                why: "disk full".into(),
            },
            Problem::NameShared { breakers: 2 },
            Problem::RecorderLate,
        ];
        for (problem, name) in problems.iter().zip(Problem::NAMES) {
            assert_eq!(problem.as_str(), name);
            let json = serde_json::to_value(problem).unwrap();
            assert_eq!(json["problem"], name, "{json}");
            assert_eq!(&serde_json::from_value::<Problem>(json).unwrap(), problem);
        }
    }
}
