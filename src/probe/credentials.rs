//! The password a prober logs in with, read at probe time so that a rotated
//! secret is picked up without a reload.

use super::{Phase, ProbeError, Reason};
use crate::config::secret;
use crate::config::types::Secret;

/// Reads the password from `password_file` or the environment variable named
/// by `password_env`; `None` when the module names neither.
pub fn password(password_file: Option<&str>, password_env: Option<&str>) -> Result<Option<Secret>, ProbeError> {
    secret::read(password_file, password_env).map_err(|err| ProbeError::new(Phase::Auth, Reason::Config, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_comes_from_the_environment_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let from_file = password(file.to_str(), None).unwrap().unwrap();
        assert_eq!(from_file.expose(), "s3cret");
        assert_eq!(format!("{from_file:?}"), "<secret>");
        let missing = password(None, Some("CHECKIT_TEST_SURELY_UNSET_VARIABLE")).unwrap_err();
        assert_eq!((missing.phase, missing.reason), (Phase::Auth, Reason::Config));
        assert!(password(None, None).unwrap().is_none());
        let path = std::env::var("PATH").unwrap();
        assert_eq!(password(None, Some("PATH")).unwrap().unwrap().expose(), path);
    }
}
