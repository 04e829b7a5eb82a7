//! Alertmanager-style label matchers: `severity="critical"`, `team!="ops"`,
//! `severity=~"critical|page"`, `env!~"dev|test"`.
//!
//! The syntax is Alertmanager's: the value may be double-quoted (with `\"`,
//! `\\` and `\n` escapes) or bare, several matchers may be written as
//! `{a="b", c=~"d"}`, and regular expressions are anchored at both ends. A
//! missing label has the value `""`, so `team=""` matches alerts without one.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// A label set a matcher can look into: alerts keep theirs in a compact
/// [`LabelSet`](super::payload::LabelSet), checks and configs in a `BTreeMap`.
pub trait Labels {
    /// The value of label `name`, if set.
    fn label(&self, name: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Labels for super::payload::LabelSet {
    fn label(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// How a matcher compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (anchored)
    Regex,
    /// `!~` (anchored)
    NotRegex,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Equal => "=",
            Op::NotEqual => "!=",
            Op::Regex => "=~",
            Op::NotRegex => "!~",
        }
    }
}

/// One label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub op: Op,
    /// The value or pattern as written.
    pub value: String,
    regex: Option<regex::Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Matcher {
    /// Builds a matcher, compiling the anchored regex for `=~` and `!~`.
    pub fn new(name: impl Into<String>, op: Op, value: impl Into<String>) -> Result<Self, String> {
        let name = name.into();
        let value = value.into();
        let regex = match op {
            Op::Regex | Op::NotRegex => Some(
                regex::Regex::new(&format!("^(?:{value})$"))
                    .map_err(|err| format!("invalid regular expression {value:?}: {err}"))?,
            ),
            Op::Equal | Op::NotEqual => None,
        };
        Ok(Matcher { name, op, value, regex })
    }

    /// True when `labels` satisfy this matcher.
    pub fn matches(&self, labels: &impl Labels) -> bool {
        let actual = labels.label(&self.name).unwrap_or("");
        match (self.op, &self.regex) {
            (Op::Equal, _) => actual == self.value,
            (Op::NotEqual, _) => actual != self.value,
            (Op::Regex, Some(regex)) => regex.is_match(actual),
            (Op::NotRegex, Some(regex)) => !regex.is_match(actual),
            // `new` always compiles a regex for the regex operators.
            (Op::Regex | Op::NotRegex, None) => false,
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

/// A conjunction of matchers: all must match. Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    /// Parses one string holding one matcher (`severity=~"critical|page"`) or
    /// several in braces (`{team="ops", severity!="info"}`).
    pub fn parse(text: &str) -> Result<Matchers, String> {
        let trimmed = text.trim();
        let inner = match trimmed.strip_prefix('{') {
            Some(rest) => {
                rest.strip_suffix('}').ok_or_else(|| format!("missing closing brace in matchers {text:?}"))?
            }
            None => trimmed,
        };
        let mut parser = Parser { input: inner, position: 0, original: text };
        let mut matchers = Vec::new();
        loop {
            parser.skip_spaces();
            if parser.at_end() {
                break;
            }
            matchers.push(parser.matcher()?);
            parser.skip_spaces();
            if parser.at_end() {
                break;
            }
            parser.expect(',')?;
        }
        if matchers.is_empty() && !trimmed.starts_with('{') {
            return Err(format!("empty matcher {text:?}"));
        }
        Ok(Matchers(matchers))
    }

    /// Parses a list of strings (Alertmanager's `matchers:` list), all ANDed.
    pub fn parse_all<S: AsRef<str>>(texts: &[S]) -> Result<Matchers, String> {
        let mut all = Vec::new();
        for text in texts {
            all.extend(Matchers::parse(text.as_ref())?.0);
        }
        Ok(Matchers(all))
    }

    /// True when every matcher matches `labels`.
    pub fn matches(&self, labels: &impl Labels) -> bool {
        self.0.iter().all(|matcher| matcher.matches(labels))
    }

    /// True when there is no matcher.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Matchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "{{{}}}", parts.join(", "))
    }
}

/// Deserializes from one string (`'{a="b", c=~"d"}'` or `'a="b"'`) or a
/// list of such strings, as Alertmanager's `matchers:` does.
impl<'de> Deserialize<'de> for Matchers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let texts = crate::config::types::one_or_many(deserializer)?;
        Matchers::parse_all(&texts).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Matchers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

struct Parser<'a> {
    input: &'a str,
    position: usize,
    original: &'a str,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.input[self.position..]
    }

    fn at_end(&self) -> bool {
        self.position >= self.input.len()
    }

    fn skip_spaces(&mut self) {
        let rest = self.rest();
        self.position += rest.len() - rest.trim_start().len();
    }

    fn error(&self, what: &str) -> String {
        format!("{what} at position {} in matcher {:?}", self.position, self.original)
    }

    fn expect(&mut self, wanted: char) -> Result<(), String> {
        if self.rest().starts_with(wanted) {
            self.position += wanted.len_utf8();
            Ok(())
        } else {
            Err(self.error(&format!("expected {wanted:?}")))
        }
    }

    fn matcher(&mut self) -> Result<Matcher, String> {
        let name = if self.rest().starts_with('"') {
            self.quoted()?
        } else {
            let rest = self.rest();
            let length = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            let name = &rest[..length];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(self.error("expected a label name"));
            }
            self.position += length;
            name.to_string()
        };
        self.skip_spaces();
        let op = if let Some(op) = [("=~", Op::Regex), ("!~", Op::NotRegex), ("!=", Op::NotEqual), ("=", Op::Equal)]
            .into_iter()
            .find_map(|(text, op)| self.rest().starts_with(text).then_some((text, op)))
        {
            self.position += op.0.len();
            op.1
        } else {
            return Err(self.error("expected one of =, !=, =~, !~"));
        };
        self.skip_spaces();
        let value = if self.rest().starts_with('"') {
            self.quoted()?
        } else {
            // A bare value runs to the next comma, as in Alertmanager's classic syntax.
            let rest = self.rest();
            let length = rest.find(',').unwrap_or(rest.len());
            let value = rest[..length].trim_end().to_string();
            self.position += length;
            value
        };
        Matcher::new(name, op, value).map_err(|err| format!("{err} in matcher {:?}", self.original))
    }

    fn quoted(&mut self) -> Result<String, String> {
        self.expect('"')?;
        let mut value = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                '"' => {
                    self.position += offset + 1;
                    return Ok(value);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, escaped)) => value.push(escaped),
                    None => break,
                },
                other => value.push(other),
            }
        }
        Err(self.error("unterminated quoted string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::string_map as labels;

    #[test]
    fn matchers_follow_alertmanager_semantics() {
        let alert: BTreeMap<String, String> = labels(&[("severity", "critical"), ("team", "ops")]);
        for (text, expected) in [
            (r#"severity="critical""#, true),
            (r#"severity=~"critical|page""#, true),
            (r#"severity=~"crit""#, false),
            (r#"severity!~"info|warning""#, true),
            (r#"team!="ops""#, false),
            (r#"missing="""#, true),
            (r#"missing=~".+""#, false),
            ("severity=critical", true),
            (r#"{severity="critical", team=~"o.*"}"#, true),
            (r#"{severity="critical",team="dev"}"#, false),
            ("{}", true),
            (r#""severity" = "critical""#, true),
            (r#"team="o\"ps""#, false),
        ] {
            let matchers = Matchers::parse(text).unwrap();
            assert_eq!(matchers.matches(&alert), expected, "{text}");
        }
    }

    #[test]
    fn bad_matchers_are_rejected_with_a_reason() {
        for text in
            ["", "severity", r#"severity=~"(""#, r#"severity="open"#, r#"{a="b""#, r#"1a="b""#, r#"a="b" c="d""#]
        {
            assert!(Matchers::parse(text).is_err(), "{text} should be rejected");
        }
    }

    #[test]
    fn matchers_deserialize_from_a_string_or_a_list() {
        let one: Matchers =
            crate::config::yaml::from_value(crate::config::yaml::parse_value(r#"'a="b"'"#).unwrap(), "").unwrap();
        assert_eq!(one.0.len(), 1);
        let many: Matchers =
            crate::config::yaml::from_value(crate::config::yaml::parse_value("['a=\"b\"', 'c=~\"d|e\"']").unwrap(), "")
                .unwrap();
        assert_eq!(many.0.len(), 2);
        assert_eq!(many.to_string(), r#"{a="b", c=~"d|e"}"#);
    }
}
