//! How a kind is matched to a `[kinds."…"]` key: its exact name, else the pattern (a prefix and
//! a final `*`) with the longest prefix. The configuration's own look-ups and the compiled
//! settings the breaker runs on both go through [`Keys`], so they always agree.

use std::collections::{BTreeMap, BTreeSet};

use super::{Config, KindConfig, KindOverride};

impl Config {
    /// The settings in force for `kind`: the override that applies to it (see
    /// [`override_for`](Self::override_for)) laid over the defaults.
    ///
    /// ```
    /// use spikebreaker::Config;
    /// use spikebreaker::config::Recovery;
    /// let config = Config::from_toml(r#"
    ///     [kinds."security.*"]
    ///     recovery = "manual"
    ///     [kinds."security.login"]
    ///     minute = { floor = 100 }
    /// "#)?;
    /// assert_eq!(config.kind_config("security.2fa_changed").recovery, Recovery::Manual);
    /// // The exact name wins, laid over the defaults alone: overrides do not stack.
    /// assert_eq!(config.kind_config("security.login").recovery, Recovery::Auto);
    /// assert_eq!(config.kind_config("email.welcome"), config.defaults);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kind_config(&self, kind: &str) -> KindConfig {
        match self.override_for(kind) {
            Some((_, patch)) => patch.apply_to(&self.defaults),
            None => self.defaults.clone(),
        }
    }

    /// The `[kinds."…"]` entry that applies to `kind`, with its key: the one named exactly `kind`,
    /// or else the pattern with the longest prefix that `kind` starts with (`security.2fa.*`
    /// before `security.*`), or none (the kind runs on the defaults). The breaker resolves each
    /// kind so once, when it registers the kind and at each reload, never per send.
    pub fn override_for(&self, kind: &str) -> Option<(&str, &KindOverride)> {
        let mut keys = Keys::default();
        for (key, patch) in &self.kinds {
            keys.insert(key.as_str(), patch);
        }
        keys.get(kind).map(|(key, patch)| (*key, *patch))
    }

    /// The keys of [`kinds`](Self::kinds) that apply to none of `kinds` (each a kind name, as in a
    /// send log): overrides that are mistyped, or meant for kinds that never sent. A pattern that
    /// every kind it matches takes from a more specific key counts as applying to none.
    ///
    /// ```
    /// use spikebreaker::Config;
    /// let config = Config::from_toml(r#"
    ///     [kinds."security.*"]
    ///     recovery = "manual"
    ///     [kinds."email.welcom"]
    ///     minute = { floor = 10 }
    /// "#)?;
    /// let seen = ["security.2fa_changed", "email.welcome"];
    /// assert_eq!(config.unmatched_keys(seen), vec!["email.welcom"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unmatched_keys<'k>(&self, kinds: impl IntoIterator<Item = &'k str>) -> Vec<&str> {
        let mut keys = Keys::default();
        for key in self.kinds.keys() {
            keys.insert(key.as_str(), ());
        }
        let applied: BTreeSet<&str> = kinds
            .into_iter()
            .filter_map(|kind| keys.get(kind).map(|(key, _)| *key))
            .collect();
        self.kinds
            .keys()
            .map(String::as_str)
            .filter(|key| !applied.contains(key))
            .collect()
    }
}

/// What a `[kinds."…"]` key may not be as a pattern: a `*` anywhere but at the end, or alone.
pub(super) fn pattern_problem(key: &str) -> Option<&'static str> {
    let stars = key.matches('*').count();
    if stars == 0 {
        None
    } else if key == "*" {
        Some("`*` alone would match every kind: set `[defaults]` instead")
    } else if stars > 1 || !key.ends_with('*') {
        Some("a pattern is a prefix followed by one `*` at the end (`security.*`)")
    } else {
        None
    }
}

/// `[kinds."…"]` entries by key, as a kind is matched to one: exact names, and patterns (a prefix
/// and a final `*`) longest prefix first. The configuration and the breaker resolve kinds through
/// this one type, so a [`Config::kind_config`] and the kind's running settings always agree.
#[derive(Debug)]
pub(crate) struct Keys<K, T> {
    pub(crate) exact: BTreeMap<K, T>,
    /// `(key, value)`, longest key (and so longest prefix) first.
    patterns: Vec<(K, T)>,
}

impl<K, T> Default for Keys<K, T> {
    fn default() -> Self {
        Self {
            exact: BTreeMap::new(),
            patterns: Vec::new(),
        }
    }
}

impl<K: AsRef<str> + Ord, T> Keys<K, T> {
    /// Adds (or replaces) the entry under `key`: a pattern if it ends in `*` after a prefix.
    pub(crate) fn insert(&mut self, key: K, value: T) {
        let text = key.as_ref();
        if text.len() > 1 && text.ends_with('*') {
            self.patterns.retain(|(existing, _)| existing.as_ref() != text);
            let at = self
                .patterns
                .partition_point(|(longer, _)| longer.as_ref().len() >= text.len());
            self.patterns.insert(at, (key, value));
        } else {
            self.exact.insert(key, value);
        }
    }

    /// The entry that applies to `kind`, with its key: exact, else the longest prefix.
    pub(crate) fn get(&self, kind: &str) -> Option<(&K, &T)>
    where
        K: std::borrow::Borrow<str>,
    {
        if let Some(found) = self.exact.get_key_value(kind) {
            return Some(found);
        }
        self.patterns
            .iter()
            .find(|(key, _)| kind.starts_with(&key.as_ref()[..key.as_ref().len() - 1]))
            .map(|(key, value)| (key, value))
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &T> {
        self.exact
            .values()
            .chain(self.patterns.iter().map(|(_, value)| value))
    }
}
