//! Every YAML call of checkit lives here, so that swapping `serde_yaml` for a
//! fork (it is marked deprecated upstream) touches one file.

use super::Problem;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A parsed but untyped YAML document.
pub type Value = serde_yaml::Value;
/// A YAML mapping.
pub type Mapping = serde_yaml::Mapping;

/// Parses YAML text into an untyped value, reporting the line of a syntax error.
pub fn parse_value(text: &str) -> Result<Value, Problem> {
    serde_yaml::from_str(text).map_err(|err| {
        let path =
            err.location().map(|loc| format!("line {}, column {}", loc.line(), loc.column())).unwrap_or_default();
        Problem::new(path, err.to_string())
    })
}

/// Decodes `value` into `T`; an error names its YAML path below `base`.
pub fn from_value<T: DeserializeOwned>(value: Value, base: &str) -> Result<T, Problem> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let inner = err.path().to_string();
        let path = match (base.is_empty(), inner.as_str()) {
            (_, ".") => base.to_string(),
            (true, _) => inner,
            (false, _) if inner.starts_with('[') => format!("{base}{inner}"),
            (false, _) => format!("{base}.{inner}"),
        };
        Problem::new(path, err.into_inner().to_string())
    })
}

/// Renders a value as YAML text (used by `/config` and debug output).
pub fn to_string<T: Serialize>(value: &T) -> String {
    serde_yaml::to_string(value).unwrap_or_else(|err| format!("# cannot render: {err}\n"))
}

/// Converts a serialisable value into an untyped YAML value.
pub fn to_value<T: Serialize>(value: &T) -> Value {
    serde_yaml::to_value(value).unwrap_or(Value::Null)
}
