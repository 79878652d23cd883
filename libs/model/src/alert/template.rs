//! The small part of Prometheus' alert templating that rule annotations use: `{{ $labels.x }}`,
//! `{{ $value }}`, and the pipes `humanize`, `humanizePercentage`, `humanizeDuration` and
//! `printf "%.2f"`. Templates are parsed when the rules are loaded, so a bad one is refused
//! with its position instead of rendering garbage at 3 a.m.

use std::fmt::Write as _;

use super::labels::{is_valid_label_name, LabelSet};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template error at character {offset}: {message}")]
pub struct TemplateError {
    /// Characters from the start of the template to the problem.
    pub offset: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Variable {
    Label(String),
    Value,
}

#[derive(Debug, Clone, PartialEq)]
enum Pipe {
    Humanize,
    HumanizePercentage,
    HumanizeDuration,
    /// `printf "%.Nf"` (N digits), `printf "%d"` or `printf "%s"`.
    Printf(PrintfVerb),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PrintfVerb {
    Fixed(usize),
    Integer,
    Plain,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Action { variable: Variable, pipes: Vec<Pipe> },
}

/// A parsed annotation template.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = source;
        let mut offset = 0usize;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let action_start = offset + rest[..open].chars().count();
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| TemplateError { offset: action_start, message: "'{{' is not closed by '}}'".into() })?;
            let inner = after[..close].trim_matches(|c: char| c == '-' || c.is_whitespace());
            parts.push(parse_action(inner, action_start)?);
            let consumed = open + 2 + close + 2;
            offset += rest[..consumed].chars().count();
            rest = &rest[consumed..];
        }
        if rest.contains("}}") {
            return Err(TemplateError {
                offset: offset + rest.find("}}").map_or(0, |i| rest[..i].chars().count()),
                message: "'}}' without an opening '{{'".into(),
            });
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { source: source.to_string(), parts })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The text with `labels` and `value` filled in; a missing label is empty and a missing
    /// value reads "no data".
    pub fn render(&self, labels: &LabelSet, value: Option<f64>) -> String {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Action { variable: Variable::Label(name), .. } => out.push_str(labels.get(name)),
                Part::Action { variable: Variable::Value, pipes } => match value {
                    None => out.push_str("no data"),
                    Some(v) => out.push_str(&format_value(v, pipes)),
                },
            }
        }
        out
    }
}

fn parse_action(inner: &str, offset: usize) -> Result<Part, TemplateError> {
    let error = |message: String| TemplateError { offset, message };
    let mut segments = inner.split('|').map(str::trim);
    let head = segments.next().unwrap_or_default();
    let variable = if head == "$value" || head == ".Value" {
        Variable::Value
    } else if let Some(name) = head.strip_prefix("$labels.").or_else(|| head.strip_prefix(".Labels.")) {
        if !is_valid_label_name(name) {
            return Err(error(format!("{name:?} is not a label name")));
        }
        Variable::Label(name.to_string())
    } else if head.is_empty() {
        return Err(error("empty action '{{ }}'".into()));
    } else {
        return Err(error(format!("unknown variable {head:?}; use $labels.<name> or $value")));
    };
    let mut pipes = Vec::new();
    for segment in segments {
        let pipe = match segment {
            "humanize" => Pipe::Humanize,
            "humanizePercentage" => Pipe::HumanizePercentage,
            "humanizeDuration" => Pipe::HumanizeDuration,
            other if other.starts_with("printf") => Pipe::Printf(parse_printf(other).map_err(error)?),
            other => {
                return Err(error(format!(
                    "unknown function {other:?}; known: humanize, humanizePercentage, humanizeDuration, printf"
                )))
            }
        };
        if matches!(variable, Variable::Label(_)) {
            return Err(error("functions apply to $value only".into()));
        }
        pipes.push(pipe);
    }
    Ok(Part::Action { variable, pipes })
}

fn parse_printf(text: &str) -> Result<PrintfVerb, String> {
    let format = text.trim_start_matches("printf").trim();
    let format = format.strip_prefix('"').and_then(|f| f.strip_suffix('"')).ok_or("printf takes a quoted format")?;
    match format {
        "%d" => Ok(PrintfVerb::Integer),
        "%s" | "%v" | "%g" | "%f" => Ok(PrintfVerb::Plain),
        _ => format
            .strip_prefix("%.")
            .and_then(|f| f.strip_suffix('f'))
            .and_then(|digits| digits.parse::<usize>().ok())
            .filter(|d| *d <= 9)
            .map(PrintfVerb::Fixed)
            .ok_or_else(|| format!("printf format {format:?} is not one of %d, %s, %f, %.Nf")),
    }
}

fn format_value(value: f64, pipes: &[Pipe]) -> String {
    let Some(last) = pipes.last() else { return plain(value) };
    match last {
        Pipe::Humanize => humanize(value),
        Pipe::HumanizePercentage => format!("{}%", trim_float(value * 100.0, 4)),
        Pipe::HumanizeDuration => humanize_duration(value),
        Pipe::Printf(PrintfVerb::Fixed(digits)) => format!("{value:.digits$}"),
        Pipe::Printf(PrintfVerb::Integer) => format!("{}", value.round() as i64),
        Pipe::Printf(PrintfVerb::Plain) => plain(value),
    }
}

fn plain(value: f64) -> String {
    trim_float(value, 6)
}

/// Up to `digits` significant decimals, without trailing zeros.
fn trim_float(value: f64, digits: usize) -> String {
    let text = format!("{value:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Prometheus' `humanize`: SI prefixes, 4 significant digits.
fn humanize(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return plain(value);
    }
    let big = [(1e24, "Y"), (1e21, "Z"), (1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    let small = [(1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")];
    let abs = value.abs();
    if abs >= 1.0 {
        for (size, prefix) in big {
            if abs >= size {
                return format!("{}{prefix}", significant(value / size));
            }
        }
        return significant(value);
    }
    for (size, prefix) in small {
        if abs >= size {
            return format!("{}{prefix}", significant(value / size));
        }
    }
    significant(value)
}

fn significant(value: f64) -> String {
    let abs = value.abs();
    let decimals = if abs >= 100.0 {
        1
    } else if abs >= 10.0 {
        2
    } else {
        3
    };
    trim_float(value, decimals)
}

/// Prometheus' `humanizeDuration`: seconds as `1d 2h 3m 4s`.
fn humanize_duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return plain(seconds);
    }
    if seconds.abs() < 1.0 {
        return format!("{}ms", trim_float(seconds * 1_000.0, 3));
    }
    let mut rest = seconds.abs().round() as u64;
    let mut out = String::new();
    if seconds < 0.0 {
        out.push('-');
    }
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if rest >= size {
            let _ = write!(out, "{}{unit} ", rest / size);
            rest %= size;
        }
    }
    let _ = write!(out, "{rest}s");
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn labels() -> LabelSet {
        [("endpoint", "eu-west"), ("region", "eu-west")].into_iter().collect()
    }

    #[test]
    fn renders_labels_and_values() {
        let cases = [
            ("{{ $labels.endpoint }} is down", Some(1.0), "eu-west is down"),
            ("p95 {{ $value }} ms", Some(123.456789), "p95 123.456789 ms"),
            ("p95 {{ $value | printf \"%.1f\" }} ms", Some(123.456), "p95 123.5 ms"),
            ("{{ $value | humanizePercentage }}", Some(0.0123), "1.23%"),
            ("{{ $value | humanize }}req/s", Some(1234.0), "1.234kreq/s"),
            ("{{ $value | humanizeDuration }}", Some(3_725.0), "1h 2m 5s"),
            ("{{ $value | printf \"%d\" }}", Some(4.4), "4"),
            ("{{$labels.missing}}!", None, "!"),
            ("value: {{ $value }}", None, "value: no data"),
            ("no actions", None, "no actions"),
            ("{{- $labels.region -}}", None, "eu-west"),
            ("{{ .Labels.endpoint }} {{ .Value }}", Some(2.0), "eu-west 2"),
        ];
        for (source, value, expected) in cases {
            assert_eq!(Template::parse(source).unwrap().render(&labels(), value), expected, "{source}");
        }
    }

    #[test]
    fn bad_templates_are_refused_with_their_position() {
        let cases = [
            ("abc {{ $labels.x", 4, "not closed"),
            ("{{ $foo }}", 0, "unknown variable"),
            ("ok {{ $value | shout }}", 3, "unknown function"),
            ("{{ $labels.a-b }}", 0, "not a label name"),
            ("{{ }}", 0, "empty action"),
            ("x }}", 2, "without an opening"),
            ("{{ $value | printf \"%q\" }}", 0, "printf format"),
            ("{{ $labels.a | humanize }}", 0, "$value only"),
        ];
        for (source, offset, needle) in cases {
            let err = Template::parse(source).unwrap_err();
            assert_eq!(err.offset, offset, "{source}: {err}");
            assert!(err.message.contains(needle), "{source}: {err}");
        }
    }
}
