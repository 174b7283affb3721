//! Connection settings read from the environment (SPEC §8a): `MONGODB_URI` (required) and
//! `MONGODB_DATABASE` (default `mall`). The URI can hold a password, so it is never printed.

use std::fmt;

pub const DEFAULT_DATABASE: &str = "mall";

#[derive(Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub uri: String,
    pub database: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("MONGODB_URI is not set")]
    MissingUri,
    #[error("MONGODB_DATABASE {0:?} is not a valid database name")]
    BadDatabaseName(String),
}

impl StoreConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup<F: Fn(&str) -> Option<String>>(lookup: F) -> Result<Self, ConfigError> {
        let uri = lookup("MONGODB_URI")
            .filter(|uri| !uri.trim().is_empty())
            .ok_or(ConfigError::MissingUri)?;
        let database = lookup("MONGODB_DATABASE")
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
        // MongoDB's own rules for database names, checked here so a typo fails at start-up.
        let forbidden = |c: char| "/\\. \"$*<>:|?\0".contains(c);
        if database.len() > 63 || database.contains(forbidden) {
            return Err(ConfigError::BadDatabaseName(database));
        }
        Ok(StoreConfig { uri, database })
    }
}

/// Shows the database but not the URI, which may carry credentials.
impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("uri", &"<redacted>")
            .field("database", &self.database)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<StoreConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        StoreConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn uri_is_required() {
        assert_eq!(config(&[]), Err(ConfigError::MissingUri));
        assert_eq!(
            config(&[("MONGODB_URI", "  ")]),
            Err(ConfigError::MissingUri)
        );
    }

    #[test]
    fn database_defaults_to_mall() {
        let c = config(&[("MONGODB_URI", "mongodb://localhost")]).unwrap();
        assert_eq!(c.database, "mall");
        let c = config(&[("MONGODB_URI", "mongodb://x"), ("MONGODB_DATABASE", "shop")]).unwrap();
        assert_eq!(c.database, "shop");
    }

    #[test]
    fn bad_database_names_are_refused() {
        for bad in ["a.b", "a b", "a/b", "$x"] {
            assert_eq!(
                config(&[("MONGODB_URI", "mongodb://x"), ("MONGODB_DATABASE", bad)]),
                Err(ConfigError::BadDatabaseName(bad.to_owned()))
            );
        }
    }

    #[test]
    fn debug_output_hides_the_uri() {
        let c = config(&[("MONGODB_URI", "mongodb://user:secret@host")]).unwrap();
        assert!(!format!("{c:?}").contains("secret"));
    }
}
