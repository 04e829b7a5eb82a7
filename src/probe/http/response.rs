//! Reading a response the way Go's client and blackbox do: redirects,
//! protocol version, content length, and the header and body checks.

use super::Config;
use http::{HeaderMap, Method};

/// A redirect status with a usable `Location`, as Go's client follows them:
/// the next method and whether the body is sent again.
pub(super) fn redirect(status: u16, method: &Method, headers: &HeaderMap) -> Option<(String, Method, bool)> {
    let (next_method, keep_body) = match status {
        301..=303 if *method == Method::GET || *method == Method::HEAD => (method.clone(), false),
        301..=303 => (Method::GET, false),
        307 | 308 => (method.clone(), true),
        _ => return None,
    };
    let location = headers.get(http::header::LOCATION)?;
    let location = String::from_utf8_lossy(location.as_bytes()).into_owned();
    (!location.is_empty()).then_some((location, next_method, keep_body))
}

/// The `HTTP/x.y` string Go puts in `resp.Proto`, and the version gauge.
pub(super) fn proto(version: http::Version) -> (&'static str, f64) {
    match version {
        http::Version::HTTP_09 => ("HTTP/0.9", 0.9),
        http::Version::HTTP_10 => ("HTTP/1.0", 1.0),
        http::Version::HTTP_11 => ("HTTP/1.1", 1.1),
        http::Version::HTTP_2 => ("HTTP/2.0", 2.0),
        http::Version::HTTP_3 => ("HTTP/3.0", 3.0),
        _ => ("", 0.0),
    }
}

/// Go's `resp.ContentLength`: −1 when unknown or chunked, 0 for bodiless statuses.
pub(super) fn content_length(status: u16, headers: &HeaderMap) -> f64 {
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return 0.0;
    }
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        return -1.0;
    }
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map_or(-1.0, |length| length as f64)
}

/// blackbox's `matchRegularExpressionsOnHeaders`: the first failing rule, if any.
pub(super) fn check_headers(config: &Config, headers: &HeaderMap) -> Option<String> {
    let values = |name: &str| -> Vec<String> {
        headers.get_all(name).iter().map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned()).collect()
    };
    for (matchers, must_match) in [(&config.fail_if_header_matches, false), (&config.fail_if_header_not_matches, true)]
    {
        for matcher in matchers {
            let Some(regexp) = &matcher.regexp else { continue };
            let found = values(&matcher.header);
            if found.is_empty() {
                if matcher.allow_missing {
                    continue;
                }
                return Some(format!("Missing required header header={}", matcher.header));
            }
            let any = found.iter().any(|value| regexp.is_match(value));
            if any && !must_match {
                return Some(format!(
                    "Header matched regular expression header={} regexp={:?}",
                    matcher.header,
                    regexp.as_str()
                ));
            }
            if !any && must_match {
                return Some(format!(
                    "Header did not match regular expression header={} regexp={:?}",
                    matcher.header,
                    regexp.as_str()
                ));
            }
        }
    }
    None
}

/// blackbox's `matchRegularExpressions` over the whole body. Go matches bytes
/// with invalid UTF-8 read as U+FFFD, which a lossy conversion reproduces.
pub(super) fn check_body(config: &Config, body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    if let Some(regexp) = config.fail_if_body_matches_regexp.iter().find(|regexp| regexp.is_match(&text)) {
        return Some(format!("Body matched regular expression regexp={:?}", regexp.as_str()));
    }
    if let Some(regexp) = config.fail_if_body_not_matches_regexp.iter().find(|regexp| !regexp.is_match(&text)) {
        return Some(format!("Body did not match regular expression regexp={:?}", regexp.as_str()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn redirects_follow_go_method_rules() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::LOCATION, HeaderValue::from_static("/next"));
        let post = Method::POST;
        assert_eq!(redirect(302, &post, &headers).map(|(_, method, body)| (method, body)), Some((Method::GET, false)));
        assert_eq!(redirect(307, &post, &headers).map(|(_, method, body)| (method, body)), Some((Method::POST, true)));
        assert_eq!(redirect(303, &Method::HEAD, &headers).map(|(_, method, _)| method), Some(Method::HEAD));
        assert!(redirect(304, &Method::GET, &headers).is_none());
        assert!(redirect(302, &Method::GET, &HeaderMap::new()).is_none(), "no Location: final response");
    }

    #[test]
    fn content_length_like_go() {
        let mut headers = HeaderMap::new();
        assert_eq!(content_length(200, &headers), -1.0);
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        assert_eq!(content_length(200, &headers), 12.0);
        assert_eq!(content_length(204, &headers), 0.0);
        headers.insert(http::header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        assert_eq!(content_length(200, &headers), -1.0);
    }
}
