//! Reading a ping request: which check its path names, what it signals, and
//! the first [`BODY_LIMIT`] bytes of its body.

use super::state::Kind;
use axum::body::Body;
use http_body_util::BodyExt;

/// Bytes of a ping body that are kept (announced in `Ping-Body-Limit`).
pub const BODY_LIMIT: usize = 10_000;

/// How a ping names its check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `/ping/<uuid>…`
    Uuid(uuid::Uuid),
    /// `/ping/<ping_key>/<name>…`
    Slug {
        /// The ping key.
        key: String,
        /// The check's name.
        name: String,
    },
}

/// What the path signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    /// The kind of ping.
    pub kind: Kind,
    /// The exit status, for `/<0-255>`.
    pub exit_status: Option<u8>,
}

/// Why a ping path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Nothing could be addressed by this path.
    #[error("not a ping URL: use /ping/<uuid>[/start|/fail|/log|/<0-255>] or /ping/<ping-key>/<name>[/…]")]
    Shape,
    /// A numeric suffix beyond 255.
    #[error("exit status {0} is out of range: it must be 0-255")]
    ExitStatus(String),
}

fn signal(suffix: &str) -> Result<Signal, PathError> {
    let plain = |kind| Ok(Signal { kind, exit_status: None });
    match suffix {
        "start" => plain(Kind::Start),
        "fail" => plain(Kind::Fail),
        "log" => plain(Kind::Log),
        digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => match digits.parse::<u8>() {
            Ok(0) => Ok(Signal { kind: Kind::Success, exit_status: Some(0) }),
            Ok(status) => Ok(Signal { kind: Kind::Fail, exit_status: Some(status) }),
            Err(_) => Err(PathError::ExitStatus(digits.chars().take(20).collect())),
        },
        _ => Err(PathError::Shape),
    }
}

/// Parses the part of the path after `/ping/`.
pub fn parse_path(rest: &str) -> Result<(Address, Signal), PathError> {
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let success = Signal { kind: Kind::Success, exit_status: None };
    let uuid = |text: &str| uuid::Uuid::parse_str(text).ok();
    let slug = |key: &str, name: &str| Address::Slug { key: key.to_string(), name: name.to_string() };
    match segments.as_slice() {
        [one] if !one.is_empty() => uuid(one).map(|id| (Address::Uuid(id), success)).ok_or(PathError::Shape),
        [first, second] => match uuid(first) {
            Some(id) => Ok((Address::Uuid(id), signal(second)?)),
            None if !first.is_empty() && !second.is_empty() => Ok((slug(first, second), success)),
            None => Err(PathError::Shape),
        },
        [key, name, suffix] if !key.is_empty() && !name.is_empty() && uuid(key).is_none() => {
            Ok((slug(key, name), signal(suffix)?))
        }
        _ => Err(PathError::Shape),
    }
}

/// Reads at most [`BODY_LIMIT`] bytes (plus one, to know whether there was
/// more), stops reading there, and returns the kept text (lossy UTF-8) and
/// whether it was cut.
pub async fn read_body(body: Body) -> (String, bool) {
    let mut body = body;
    let mut kept: Vec<u8> = Vec::new();
    let mut truncated = false;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        let Ok(data) = frame.into_data() else { continue };
        let room = BODY_LIMIT - kept.len();
        if data.len() > room {
            kept.extend_from_slice(&data[..room]);
            truncated = true;
            break;
        }
        kept.extend_from_slice(&data);
    }
    (String::from_utf8_lossy(&kept).into_owned(), truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "5b0c8f7e-3c55-4a39-9d2b-0f0e1e6f6a51";

    fn kind_of(path: &str) -> (Kind, Option<u8>) {
        let (_, signal) = parse_path(path).unwrap();
        (signal.kind, signal.exit_status)
    }

    #[test]
    fn uuid_paths_and_their_suffixes() {
        assert_eq!(kind_of(ID), (Kind::Success, None));
        assert_eq!(kind_of(&format!("{ID}/")), (Kind::Success, None));
        assert_eq!(kind_of(&format!("{ID}/start")), (Kind::Start, None));
        assert_eq!(kind_of(&format!("{ID}/fail")), (Kind::Fail, None));
        assert_eq!(kind_of(&format!("{ID}/log")), (Kind::Log, None));
        assert_eq!(kind_of(&format!("{ID}/0")), (Kind::Success, Some(0)));
        assert_eq!(kind_of(&format!("{ID}/255")), (Kind::Fail, Some(255)));
        assert_eq!(parse_path(&format!("{ID}/256")), Err(PathError::ExitStatus("256".into())));
        assert_eq!(
            parse_path(&format!("{ID}/99999999999999999999999")),
            Err(PathError::ExitStatus("9".repeat(20))),
            "the echoed status is cut at 20 characters"
        );
        assert_eq!(parse_path(&format!("{ID}/nope")), Err(PathError::Shape));
        assert_eq!(parse_path("not-a-uuid"), Err(PathError::Shape));
        assert_eq!(parse_path(""), Err(PathError::Shape));
    }

    #[test]
    fn key_and_name_paths() {
        let (address, signal) = parse_path("abcdefghijklmnop/backup").unwrap();
        assert_eq!(address, Address::Slug { key: "abcdefghijklmnop".into(), name: "backup".into() });
        assert_eq!(signal.kind, Kind::Success);
        assert_eq!(parse_path("abcdefghijklmnop/backup/start").unwrap().1.kind, Kind::Start);
        assert_eq!(
            parse_path("abcdefghijklmnop/backup/3").unwrap().1,
            Signal { kind: Kind::Fail, exit_status: Some(3) }
        );
        assert_eq!(parse_path(&format!("{ID}/backup/start")), Err(PathError::Shape));
        assert_eq!(parse_path("a/b/c/d"), Err(PathError::Shape));
        assert_eq!(parse_path("/backup"), Err(PathError::Shape));
    }

    #[tokio::test]
    async fn bodies_are_cut_at_the_limit() {
        let (text, cut) = read_body(Body::from("hello")).await;
        assert_eq!((text.as_str(), cut), ("hello", false));
        let (text, cut) = read_body(Body::from(vec![b'x'; BODY_LIMIT])).await;
        assert_eq!((text.len(), cut), (BODY_LIMIT, false));
        let (text, cut) = read_body(Body::from(vec![b'x'; BODY_LIMIT * 3])).await;
        assert_eq!((text.len(), cut), (BODY_LIMIT, true));
    }
}
