//! Configuration loading shared by every service: one TOML file per service, with
//! environment overrides, refused at start with the file, the key and what was expected.
//! Also the [`Secret`] type, whose `Debug` and `Display` never show the value.
//!
//! Environment overrides: `MIXMON_<SECTION>__<KEY>=value` sets `[section] key = value`
//! (`__` separates levels, names are lower-cased). A value is read as TOML when it parses as
//! a TOML value (`10`, `true`, `["a"]`) and as a string otherwise. An empty value means unset.
//! Every service reads the same environment (one Kubernetes Secret, a shell with another
//! service's settings, a test's `MIXMON_FAULTS_*` knobs), so a variable whose section is not
//! one this service has is ignored with a warning; a wrong key inside a section it has is
//! refused like one in the file.

pub mod process;
mod secret;
pub mod startup;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use secret::Secret;
pub use startup::AuthConfig;

pub const ENV_PREFIX: &str = "MIXMON_";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("config file {path} is invalid:\n  - {}", problems.join("\n  - "))]
    Invalid { path: String, problems: Vec<String> },
}

/// Loads `path` (or only defaults and environment when `None`), applies `MIXMON_` overrides
/// from `env`, and deserializes into `T` (which should `deny_unknown_fields`).
pub fn load<T: DeserializeOwned>(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let (label, text) = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
            (path.display().to_string(), text)
        }
        None => ("<defaults>".to_string(), String::new()),
    };
    parse_with_env(&label, &text, env)
}

/// Like [`load`], from text already in memory; `label` names it in errors.
pub fn parse_with_env<T: DeserializeOwned>(
    label: &str,
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let file: toml::Table =
        text.parse().map_err(|e: toml::de::Error| ConfigError::Parse { path: label.into(), message: e.to_string() })?;
    let mut overrides: Vec<(String, Vec<String>, String)> = Vec::new();
    for (name, value) in env {
        let Some(path) = name.strip_prefix(ENV_PREFIX) else { continue };
        if value.trim().is_empty() {
            continue;
        }
        let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
        if keys.iter().any(String::is_empty) {
            return Err(ConfigError::Env { name, message: "empty key segment".into() });
        }
        overrides.push((name, keys, value));
    }
    // Each retry drops the variables of one section this service does not have: bounded by
    // the number of variables.
    loop {
        let mut table = file.clone();
        for (name, keys, value) in &overrides {
            set_path(&mut table, keys, parse_env_value(value))
                .map_err(|message| ConfigError::Env { name: name.clone(), message })?;
        }
        let message = match T::deserialize(toml::Value::Table(table)) {
            Ok(value) => return Ok(value),
            Err(e) => e.to_string(),
        };
        let foreign = overrides
            .iter()
            .map(|(_, keys, _)| keys[0].clone())
            .find(|section| !file.contains_key(section) && message.contains(&format!("unknown field `{section}`")));
        let Some(section) = foreign else {
            return Err(ConfigError::Parse { path: label.into(), message });
        };
        overrides.retain(|(name, keys, _)| {
            let other = keys[0] == section;
            if other {
                tracing::warn!(variable = %name, "ignored: not a setting of this service");
            }
            !other
        });
    }
}

fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) -> Result<(), String> {
    let Some((last, parents)) = keys.split_last() else { return Err("empty name".into()) };
    let mut current = table;
    for key in parents {
        let entry = current.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| format!("`{key}` is not a table in the config file"))?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

/// The process environment, for [`load`]; tests pass their own list instead.
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Example {
        #[serde(default)]
        server: Server,
    }

    #[derive(Debug, Default, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Server {
        #[serde(default)]
        addr: String,
        #[serde(default)]
        port: u16,
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn environment_overrides_the_file() {
        let text = "[server]\naddr = \"file\"\nport = 1\n";
        let got: Example =
            parse_with_env("t.toml", text, env(&[("MIXMON_SERVER__PORT", "9"), ("OTHER", "x")])).unwrap();
        assert_eq!(got.server, Server { addr: "file".into(), port: 9 });
        let got: Example = parse_with_env("t.toml", "", env(&[("MIXMON_SERVER__ADDR", "0.0.0.0:1")])).unwrap();
        assert_eq!(got.server.addr, "0.0.0.0:1");
    }

    #[test]
    fn empty_means_unset_and_another_services_variables_are_ignored() {
        let text = "[server]\nport = 1\n";
        let vars = env(&[
            ("MIXMON_SERVER__PORT", ""),
            ("MIXMON_FAULTS_OUTAGE_S", "30"),
            ("MIXMON_PROBE__SOURCE_IP", "10.0.0.1"),
            ("MIXMON_SERVER__ADDR", "0.0.0.0:2"),
        ]);
        let got: Example = parse_with_env("t.toml", text, vars).unwrap();
        assert_eq!(got.server, Server { addr: "0.0.0.0:2".into(), port: 1 });
        // A wrong key in a section this service has is still a mistake.
        let err = parse_with_env::<Example>("t.toml", "", env(&[("MIXMON_SERVER__PROT", "1")])).unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let err = parse_with_env::<Example>("bad.toml", "[server]\nprot = 1\n", env(&[])).unwrap_err().to_string();
        assert!(err.contains("bad.toml") && err.contains("prot"), "{err}");
        let err = parse_with_env::<Example>("bad.toml", "[server]\nport = \"x\"\n", env(&[])).unwrap_err().to_string();
        assert!(err.contains("bad.toml") && err.contains("port"), "{err}");
        let err = parse_with_env::<Example>("bad.toml", "[server\n", env(&[])).unwrap_err().to_string();
        assert!(err.contains("bad.toml"), "{err}");
        let err = parse_with_env::<Example>("x", "server = 1", env(&[("MIXMON_SERVER__PORT", "1")])).unwrap_err();
        assert!(matches!(err, ConfigError::Env { .. }), "{err}");
        let missing = load::<Example>(Some(Path::new("/nonexistent/mixmon.toml")), env(&[])).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/mixmon.toml"));
    }
}
