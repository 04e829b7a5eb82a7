//! The one reader of secrets given by file or by environment variable name.
//!
//! Probers read theirs at probe time and channels at (re)load, both through
//! [`read`], so a rotated file is picked up and every secret is trimmed and
//! reported the same way.

use super::types::{Secret, read_secret_file};

/// Reads the secret from `file` (one trailing newline trimmed) or, without a
/// file, from the environment variable named `env`; `Ok(None)` when neither is
/// given.
pub fn read(file: Option<&str>, env: Option<&str>) -> Result<Option<Secret>, String> {
    if let Some(path) = file {
        return read_secret_file(path).map(Some);
    }
    if let Some(name) = env {
        return std::env::var(name).map(|value| Some(Secret(value))).map_err(|err| match err {
            std::env::VarError::NotPresent => format!("environment variable {name:?} is not set"),
            std::env::VarError::NotUnicode(_) => format!("environment variable {name:?} is not unicode"),
        });
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_a_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cret\r\n").unwrap();
        let from_file = read(file.to_str(), Some("PATH")).unwrap().unwrap();
        assert_eq!(from_file.expose(), "s3cret", "the file wins and loses its line ending");
        // PATH is set in every test environment; setting a variable here would race other tests.
        let from_env = read(None, Some("PATH")).unwrap().unwrap();
        assert_eq!(Some(from_env.expose().to_string()), std::env::var("PATH").ok());
        let missing = read(None, Some("CHECKIT_SURELY_UNSET_VARIABLE")).unwrap_err();
        assert_eq!(missing, "environment variable \"CHECKIT_SURELY_UNSET_VARIABLE\" is not set");
        assert!(read(None, None).unwrap().is_none());
        assert!(read(Some("/nonexistent/secret"), None).unwrap_err().contains("cannot read secret file"));
    }
}
