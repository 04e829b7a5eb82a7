//! Every YAML call of checkit lives here, so that swapping `serde_yaml` for a
//! fork (it is marked deprecated upstream) touches one file.

use super::Problem;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// A parsed but untyped YAML document.
pub type Value = serde_yaml::Value;
/// A YAML mapping.
pub type Mapping = serde_yaml::Mapping;

/// Parses YAML text into an untyped value, reporting the line of a syntax error.
///
/// Like blackbox (yaml.v3's `Decoder.Decode`), only the first document of a
/// multi-document file is read, and merge keys (`<<: *base`) are applied.
pub fn parse_value(text: &str) -> Result<Value, Problem> {
    let problem = |err: serde_yaml::Error| {
        let path =
            err.location().map(|loc| format!("line {}, column {}", loc.line(), loc.column())).unwrap_or_default();
        Problem::new(path, err.to_string())
    };
    let text = keep_binary_tags(text);
    let mut value = match serde_yaml::Deserializer::from_str(&text).next() {
        Some(document) => Value::deserialize(document).map_err(problem)?,
        None => Value::Null,
    };
    value.apply_merge().map_err(problem)?;
    Ok(value)
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

/// What [`from_value_each`] could decode, and every problem it found.
pub struct Partial<T> {
    /// `T` decoded from the keys that decode on their own (the broken ones
    /// left to their defaults), when that is possible.
    pub value: Option<T>,
    /// Every problem, at least one when decoding failed.
    pub problems: Vec<Problem>,
    /// Paths of the keys that failed, so validation can skip them.
    pub broken: Vec<String>,
}

/// Decodes a mapping into `T` reporting a problem for *every* key that fails,
/// not just the first one serde stops at: on failure each key is decoded on
/// its own (so `T`'s other fields take their defaults), and `T` is decoded
/// again from the keys that passed.
pub fn from_value_each<T: DeserializeOwned>(value: Value, base: &str) -> Partial<T> {
    let first = match from_value::<T>(value.clone(), base) {
        Ok(decoded) => return Partial { value: Some(decoded), problems: Vec::new(), broken: Vec::new() },
        Err(problem) => problem,
    };
    let Value::Mapping(mapping) = value else {
        return Partial { value: None, problems: vec![first], broken: Vec::new() };
    };
    let mut problems = Vec::new();
    let mut broken = Vec::new();
    let mut rest = Mapping::new();
    for (key, entry) in mapping {
        let mut single = Mapping::new();
        single.insert(key.clone(), entry.clone());
        match from_value::<T>(Value::Mapping(single), base) {
            // A required sibling missing from the one-key mapping is no problem of this key.
            Err(mut problem) if !problem.message.starts_with("missing field") => {
                let name = key.as_str().map_or_else(|| to_string(&key).trim().to_string(), str::to_string);
                let located = if base.is_empty() { name } else { format!("{base}.{name}") };
                // Keys of a `#[serde(flatten)]`ed struct are decoded from a buffer that
                // serde_path_to_error does not see, so their errors stop at the block:
                // the one key decoded here is where the problem is.
                if problem.path == base && !problem.message.starts_with("unknown field") {
                    problem.path = located.clone();
                }
                broken.push(located);
                problems.push(problem);
            }
            _ => {
                rest.insert(key, entry);
            }
        }
    }
    if problems.is_empty() {
        problems.push(first);
    }
    let value = from_value::<T>(Value::Mapping(rest), base).ok();
    Partial { value, problems, broken }
}

/// Decodes an optional block (absent or `null`: `None`) and validates it,
/// recording every problem under `path`: how a part reads its own block.
/// Every key is decoded even when one fails ([`from_value_each`]) and what
/// decoded is validated, so one bad key does not hide problems under the
/// others; problems under a key that failed to decode are not repeated.
pub fn block<T: DeserializeOwned>(
    value: Option<Value>,
    path: &str,
    problems: &mut super::Problems,
    validate: impl FnOnce(&T, &str, &mut super::Problems),
) -> Option<T> {
    let value = value.filter(|value| !value.is_null())?;
    let partial = from_value_each::<T>(value, path);
    problems.0.extend(partial.problems);
    let decoded = partial.value?;
    let mut checked = super::Problems::default();
    validate(&decoded, path, &mut checked);
    let under = |problem: &Problem, key: &String| {
        problem.path == *key
            || problem.path.starts_with(&format!("{key}."))
            || problem.path.starts_with(&format!("{key}["))
    };
    problems.0.extend(checked.0.into_iter().filter(|problem| !partial.broken.iter().any(|key| under(problem, key))));
    Some(decoded)
}

/// Renders a value as YAML text (used by `/config` and debug output).
pub fn to_string<T: Serialize>(value: &T) -> String {
    serde_yaml::to_string(value).unwrap_or_else(|err| format!("# cannot render: {err}\n"))
}

/// Converts a serialisable value into an untyped YAML value.
pub fn to_value<T: Serialize>(value: &T) -> Value {
    serde_yaml::to_value(value).unwrap_or(Value::Null)
}

/// The variant name under which a `!!binary` scalar reaches a `Deserialize`
/// impl's `visit_enum` (see `keep_binary_tags`).
pub const BINARY_TAG: &str = "binary";

/// serde_yaml resolves the core tag `!!binary` to `tag:yaml.org,2002:binary`
/// and then drops it, handing the base64 text over as a plain string, so a
/// binary `send: !!binary AAAACATSFi8=` (blackbox's PostgreSQL recipe) would be
/// sent as base64 text. Rewriting the tag token to the local tag `!binary`,
/// which serde_yaml keeps, lets the payload type decode it. Only tag tokens are
/// touched: quoted scalars, block scalars and comments are left alone.
fn keep_binary_tags(text: &str) -> Cow<'_, str> {
    const TAG: &str = "!!binary";
    if !text.contains(TAG) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut quote: Option<char> = None;
    // Indentation of the line that opened a block scalar (`key: |`).
    let mut block_parent: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if let Some(parent) = block_parent {
            if line.trim().is_empty() || indent > parent {
                out.push_str(line);
                continue;
            }
            block_parent = None;
        }
        let mut content_end = line.len();
        let mut prev: Option<char> = None;
        let mut chars = line.char_indices().peekable();
        while let Some((pos, c)) = chars.next() {
            match quote {
                Some('"') if c == '\\' => {
                    out.push(c);
                    if let Some((_, escaped)) = chars.next() {
                        out.push(escaped);
                    }
                    continue;
                }
                Some('\'') if c == '\'' && chars.peek().is_some_and(|&(_, next)| next == '\'') => {
                    out.push(c);
                    chars.next();
                    out.push('\'');
                    continue;
                }
                Some(open) if c == open => quote = None,
                Some(_) => {}
                None => {
                    let token_start = prev.is_none_or(|p| p == ' ' || p == '\t' || "[{,".contains(p));
                    if c == '#' && prev.is_none_or(|p| p == ' ' || p == '\t') {
                        content_end = pos;
                        out.push_str(&line[pos..]);
                        break;
                    }
                    if token_start && (c == '"' || c == '\'') {
                        quote = Some(c);
                    }
                    let rest = &line[pos..];
                    // `strip_prefix`, not an index: the text after a
                    // shorter match may start inside a multi-byte character
                    // (found by fuzzing the config loader).
                    let tagged = rest.strip_prefix(TAG).is_some_and(|after| {
                        after.chars().next().is_none_or(|next| next.is_whitespace() || ",]}".contains(next))
                    });
                    if token_start && tagged {
                        out.push_str("!binary");
                        for _ in 1..TAG.len() {
                            chars.next();
                        }
                        prev = Some('y');
                        continue;
                    }
                }
            }
            out.push(c);
            prev = Some(c);
        }
        let last_token = line[..content_end].split_whitespace().last().unwrap_or("");
        let is_block_header = quote.is_none()
            && (last_token.starts_with('|') || last_token.starts_with('>'))
            && last_token[1..].chars().all(|c| c == '-' || c == '+' || c.is_ascii_digit());
        if is_block_header {
            block_parent = Some(indent);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_tags_become_local_tags() {
        let text = "a: !!binary AAAACATSFi8= # !!binary\n\
                    b: \"!!binary x\"\n\
                    c: '!!binary ''y'' !!binary'\n\
                    d: !!binary |\n  AAAA\n  !!binary\n\
                    e: [!!binary QQ==, x]\n\
                    f: x!!binary\n";
        assert_eq!(
            keep_binary_tags(text),
            "a: !binary AAAACATSFi8= # !!binary\n\
             b: \"!!binary x\"\n\
             c: '!!binary ''y'' !!binary'\n\
             d: !binary |\n  AAAA\n  !!binary\n\
             e: [!binary QQ==, x]\n\
             f: x!!binary\n"
        );
        assert!(matches!(keep_binary_tags("a: b\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_multi_byte_character_after_a_partial_tag_is_kept() {
        // Found by fuzzing the config loader: `!!binar` and a three-byte
        // character put the end of the tag's slice inside that character.
        let text = "a: !!binar\u{FFFD}x\nb: !!binary QQ==\n";
        assert_eq!(keep_binary_tags(text), "a: !!binar\u{FFFD}x\nb: !binary QQ==\n");
        assert_eq!(
            keep_binary_tags("a: !!binary\u{20AC}\nb: !!binary QQ==\n"),
            "a: !!binary\u{20AC}\nb: !binary QQ==\n"
        );
        // The fuzzer's own input is a config error, not a panic.
        let crash = include_bytes!("../../tests/fuzz/regressions/config_load-332f79f3");
        assert!(parse_value(&String::from_utf8_lossy(crash)).is_err());
    }

    #[test]
    fn binary_tags_survive_parsing() {
        let value = parse_value("send: !!binary AAAACATSFi8=\n").unwrap();
        let Value::Mapping(mapping) = value else { panic!("not a mapping") };
        let Some(Value::Tagged(tagged)) = mapping.get("send") else { panic!("not tagged: {mapping:?}") };
        assert_eq!(tagged.tag, serde_yaml::value::Tag::new(BINARY_TAG));
    }
}
