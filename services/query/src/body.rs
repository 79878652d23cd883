//! Request bodies as Grafana and hand-written clients send them: an empty body or `null` is
//! `{}`, anything else must be a JSON object, and unknown fields are left alone. Also the
//! small helpers that read loosely typed values (Grafana's builder mode turns everything
//! into strings, and template variables arrive regex-escaped).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::{Map, Value};

use crate::error::QueryError;
use crate::BODY_LIMIT_BYTES;

/// A request body parsed leniently into a JSON object.
pub(crate) struct JsonBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = QueryError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                QueryError::TooLarge { limit: BODY_LIMIT_BYTES }
            } else {
                QueryError::bad_request("unreadable_body", rejection.body_text())
            }
        })?;
        parse_body(&bytes).map(JsonBody)
    }
}

pub(crate) fn parse_body(bytes: &[u8]) -> Result<Map<String, Value>, QueryError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| QueryError::bad_request("invalid_json", format!("request body is not valid JSON: {e}")))?;
    match value {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map),
        other => Err(QueryError::bad_request(
            "invalid_body",
            format!("request body must be a JSON object, not {}", kind(&other)),
        )),
    }
}

/// A JSON type's name, for error messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads a field that may be an object, a JSON string holding an object, or empty
/// (`""`, `null`, absent) meaning `{}`; the shapes `payload` has had across plugin versions.
pub(crate) fn object_or_json_string(value: Option<&Value>, what: &str) -> Result<Map<String, Value>, QueryError> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(Map::new()),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(Value::Null) => Ok(Map::new()),
            Ok(other) => Err(QueryError::bad_request(
                "invalid_payload",
                format!("{what} must be a JSON object, not {}", kind(&other)),
            )),
            Err(e) => Err(QueryError::bad_request("invalid_payload", format!("{what} is not valid JSON: {e}"))),
        },
        Some(other) => {
            Err(QueryError::bad_request("invalid_payload", format!("{what} must be an object, not {}", kind(other))))
        }
    }
}

/// A string or an array of strings (numbers are accepted as their text, as builder mode
/// stringifies them anyway); `None` when absent or null.
pub(crate) fn string_list(value: Option<&Value>, what: &str) -> Result<Option<Vec<String>>, QueryError> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(QueryError::bad_request(
            "invalid_payload",
            format!("{what} must be a string or an array of strings, found {}", kind(other)),
        )),
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items.iter().map(scalar).collect::<Result<Vec<_>, _>>().map(Some),
        Some(other) => scalar(other).map(|s| Some(vec![s])),
    }
}

/// An optional string field; numbers are taken as their text.
pub(crate) fn opt_string(value: Option<&Value>, what: &str) -> Result<Option<String>, QueryError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => {
            Err(QueryError::bad_request("invalid_field", format!("{what} must be a string, not {}", kind(other))))
        }
    }
}

/// `true` for JSON `true` and for the string `"true"` that builder mode produces.
pub(crate) fn truthy(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Removes Grafana's regex escaping (`us\-west` → `us-west`).
pub(crate) fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One interpolated template value, as names: Grafana's `regex` format escapes each value
/// and writes several as `(a|b)`, so this splits on unescaped `|` inside the parentheses and
/// unescapes each part.
pub(crate) fn template_names(text: &str) -> Vec<String> {
    let trimmed = text.trim();
    let inner = trimmed.strip_prefix('(').and_then(|t| t.strip_suffix(')'));
    let Some(inner) = inner else {
        return vec![unescape(trimmed)];
    };
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in inner.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '|' {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_and_null_bodies_are_empty_objects() {
        assert!(parse_body(b"").unwrap().is_empty());
        assert!(parse_body(b"  \n").unwrap().is_empty());
        assert!(parse_body(b"null").unwrap().is_empty());
        assert_eq!(parse_body(br#"{"a":1}"#).unwrap().get("a"), Some(&json!(1)));
        assert_eq!(parse_body(b"[1]").unwrap_err().code(), "invalid_body");
        assert_eq!(parse_body(b"{").unwrap_err().code(), "invalid_json");
    }

    #[test]
    fn payload_shapes() {
        let v = json!({"endpoint": "api"});
        assert_eq!(object_or_json_string(Some(&v), "p").unwrap().len(), 1);
        let s = json!("{\"endpoint\": [\"a\", \"b\"]}");
        assert_eq!(object_or_json_string(Some(&s), "p").unwrap()["endpoint"], json!(["a", "b"]));
        for empty in [json!(""), json!("  "), Value::Null, json!("null")] {
            assert!(object_or_json_string(Some(&empty), "p").unwrap().is_empty());
        }
        assert!(object_or_json_string(None, "p").unwrap().is_empty());
        for bad in [json!("{oops"), json!("[1]"), json!(5), json!([1])] {
            assert!(object_or_json_string(Some(&bad), "p").is_err(), "{bad}");
        }
    }

    #[test]
    fn template_values_are_unescaped_and_split() {
        assert_eq!(unescape(r"us\-west\.1"), "us-west.1");
        assert_eq!(unescape("trailing\\"), "trailing");
        assert_eq!(template_names(r"(us\-west|eu\-west)"), vec!["us-west", "eu-west"]);
        assert_eq!(template_names(r"a\|b"), vec!["a|b"]);
        assert_eq!(template_names("api"), vec!["api"]);
        assert_eq!(string_list(Some(&json!(["a", 1])), "x").unwrap(), Some(vec!["a".to_string(), "1".to_string()]));
        assert!(string_list(Some(&json!({"a": 1})), "x").is_err());
        assert!(truthy(Some(&json!("true"))) && truthy(Some(&json!(true))) && !truthy(Some(&json!(1))));
    }
}
