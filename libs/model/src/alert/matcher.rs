//! Label matchers with Alertmanager's meaning: `=`, `!=`, `=~`, `!~`, regular expressions
//! anchored at both ends, and a missing label read as the empty string (so `foo=""` matches an
//! alert without `foo`, and `foo!~".+"` too). Used by routes, inhibition rules and silences.
//!
//! The text form is Alertmanager's: `name="value"`, `name=~"re"`, with the value quoted (Go
//! string escapes `\"`, `\\`, `\n`) or bare (`severity=critical`), one matcher per string or
//! several in braces (`{a="b", c!~"d"}`).

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::labels::{is_valid_label_name, LabelSet};

/// Longest regular expression a matcher may carry; bounds the cost of compiling one that
/// came from an API call.
pub const MAX_PATTERN_LEN: usize = 1_024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MatchOp {
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
    #[serde(rename = "=~")]
    Regex,
    #[serde(rename = "!~")]
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }

    pub fn is_regex(self) -> bool {
        matches!(self, MatchOp::Regex | MatchOp::NotRegex)
    }

    /// Whether the operator matches when its test holds (`=`, `=~`), as Alertmanager's
    /// `isEqual`.
    pub fn is_equal(self) -> bool {
        matches!(self, MatchOp::Equal | MatchOp::Regex)
    }

    pub fn from_flags(is_regex: bool, is_equal: bool) -> MatchOp {
        match (is_regex, is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    #[error("bad matcher {text:?}: {reason}")]
    Syntax { text: String, reason: String },
    #[error("bad label name {0:?} in matcher (want [a-zA-Z_][a-zA-Z0-9_]*)")]
    LabelName(String),
    #[error("bad regular expression {pattern:?} in matcher: {reason}")]
    Regex { pattern: String, reason: String },
}

/// One label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// `^(?:value)$`, compiled once, for the regex operators.
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl Matcher {
    pub fn new(name: impl Into<String>, op: MatchOp, value: impl Into<String>) -> Result<Matcher, MatcherError> {
        let (name, value) = (name.into(), value.into());
        if !is_valid_label_name(&name) {
            return Err(MatcherError::LabelName(name));
        }
        let regex = if op.is_regex() {
            if value.len() > MAX_PATTERN_LEN {
                return Err(MatcherError::Regex {
                    pattern: value.chars().take(40).collect(),
                    reason: format!("longer than {MAX_PATTERN_LEN} bytes"),
                });
            }
            let compiled = regex::RegexBuilder::new(&format!("^(?:{value})$"))
                .size_limit(1 << 20)
                .build()
                .map_err(|e| MatcherError::Regex { pattern: value.clone(), reason: e.to_string() })?;
            Some(compiled)
        } else {
            None
        };
        Ok(Matcher { name, op, value, regex })
    }

    pub fn equal(name: &str, value: &str) -> Result<Matcher, MatcherError> {
        Matcher::new(name, MatchOp::Equal, value)
    }

    /// Whether `labels` satisfy this matcher; a missing label is the empty string.
    pub fn matches(&self, labels: &LabelSet) -> bool {
        let actual = labels.get(&self.name);
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => actual == self.value,
            (MatchOp::NotEqual, _) => actual != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(actual),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(actual),
            // `new` always compiles a regex for the regex operators.
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }

    /// Parses one matcher, `name<op>value`.
    pub fn parse(text: &str) -> Result<Matcher, MatcherError> {
        let trimmed = text.trim();
        let syntax = |reason: &str| MatcherError::Syntax { text: text.to_string(), reason: reason.to_string() };
        let name_end = trimmed
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .ok_or_else(|| syntax("no operator (=, !=, =~, !~)"))?;
        let (name, rest) = trimmed.split_at(name_end);
        let rest = rest.trim_start();
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (MatchOp::Regex, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (MatchOp::Equal, v)
        } else {
            return Err(syntax("no operator (=, !=, =~, !~) after the label name"));
        };
        if name.is_empty() {
            return Err(syntax("no label name before the operator"));
        }
        let value = unquote(value.trim()).map_err(|reason| syntax(&reason))?;
        Matcher::new(name, op, value)
    }

    /// Parses a list: `{a="b", c=~"d"}` or the same without braces.
    pub fn parse_list(text: &str) -> Result<Vec<Matcher>, MatcherError> {
        let trimmed = text.trim();
        let inner = match trimmed.strip_prefix('{') {
            Some(rest) => rest.strip_suffix('}').ok_or_else(|| MatcherError::Syntax {
                text: text.to_string(),
                reason: "'{' without a closing '}'".into(),
            })?,
            None => trimmed,
        };
        split_top_level(inner)
            .map_err(|reason| MatcherError::Syntax { text: text.to_string(), reason })?
            .iter()
            .filter(|part| !part.trim().is_empty())
            .map(|part| Matcher::parse(part))
            .collect()
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

/// Whether every matcher matches `labels` (an empty list matches everything).
pub fn matches_all(matchers: &[Matcher], labels: &LabelSet) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// A quoted value with Go's escapes, or a bare word.
fn unquote(value: &str) -> Result<String, String> {
    let Some(body) = value.strip_prefix('"') else {
        if value.contains('"') {
            return Err("unbalanced quote in the value".into());
        }
        return Ok(value.to_string());
    };
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                return if chars.as_str().trim().is_empty() {
                    Ok(out)
                } else {
                    Err("text after the closing quote".into())
                };
            }
            '\\' => match chars.next() {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => {
                    // Regexes keep their own escapes (`\d`, `\.`).
                    out.push('\\');
                    out.push(other);
                }
                None => return Err("the value ends in a lone backslash".into()),
            },
            _ => out.push(c),
        }
    }
    Err("the quoted value is not closed".into())
}

/// Splits at commas outside quotes.
fn split_top_level(text: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in text.chars() {
        if escaped {
            escaped = false;
            current.push(c);
            continue;
        }
        match c {
            '\\' if quoted => {
                escaped = true;
                current.push(c);
            }
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if quoted {
        return Err("a quoted value is not closed".into());
    }
    parts.push(current);
    Ok(parts)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().copied().collect()
    }

    #[test]
    fn operators_with_alertmanager_semantics() {
        let alert = labels(&[("alertname", "ServiceDown"), ("severity", "critical"), ("region", "eu-west")]);
        let cases = [
            (r#"severity="critical""#, true),
            (r#"severity!="critical""#, false),
            (r#"severity=~"crit.*""#, true),
            (r#"severity=~"crit""#, false), // anchored
            (r#"alertname=~"ServiceDown|HighLatency""#, true),
            (r#"alertname!~"ServiceDown|HighLatency""#, false),
            (r#"endpoint="""#, true), // missing label reads as empty
            (r#"endpoint!~".+""#, true),
            (r#"endpoint=~".+""#, false),
            ("severity=critical", true), // bare value
            (r#"region = "eu-west""#, true),
        ];
        for (text, expected) in cases {
            let matcher = Matcher::parse(text).unwrap();
            assert_eq!(matcher.matches(&alert), expected, "{text}");
        }
    }

    #[test]
    fn lists_and_escapes() {
        let list = Matcher::parse_list(r#"{alertname="A", job=~"a,b", msg="say \"hi\""}"#).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[1].value, "a,b");
        assert_eq!(list[2].value, r#"say "hi""#);
        assert_eq!(list[2].to_string(), r#"msg="say \"hi\"""#);
        assert!(Matcher::parse_list("").unwrap().is_empty());
        assert_eq!(Matcher::parse_list(r#"a="1""#).unwrap().len(), 1);
        assert_eq!(Matcher::parse(r#"x=~"\d+""#).unwrap().value, r"\d+");
    }

    #[test]
    fn mistakes_are_named() {
        for (text, needle) in [
            ("severity", "no operator"),
            (r#"="x""#, "no label name"),
            (r#"a="x"#, "not closed"),
            (r#"a="x" y"#, "after the closing quote"),
            (r#"{a="x""#, "closing '}'"),
            (r#"a=~"(""#, "regular expression"),
            (r#"a-b="x""#, "no operator"),
        ] {
            let err = Matcher::parse_list(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        assert!(matches!(Matcher::new("1a", MatchOp::Equal, "x"), Err(MatcherError::LabelName(_))));
        let long = "a".repeat(MAX_PATTERN_LEN + 1);
        assert!(Matcher::new("a", MatchOp::Regex, long).is_err());
    }

    #[test]
    fn flags_round_trip() {
        for op in [MatchOp::Equal, MatchOp::NotEqual, MatchOp::Regex, MatchOp::NotRegex] {
            assert_eq!(MatchOp::from_flags(op.is_regex(), op.is_equal()), op);
        }
        let all = [Matcher::parse("a=1").unwrap(), Matcher::parse("b!=2").unwrap()];
        assert!(matches_all(&all, &labels(&[("a", "1")])));
        assert!(!matches_all(&all, &labels(&[("a", "1"), ("b", "2")])));
        assert!(matches_all(&[], &labels(&[])));
    }
}
