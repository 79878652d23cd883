//! The line-by-line parser for both formats.
//!
//! Lines are scanned with a byte cursor over the input `&str` (names, label values and numbers
//! are slices of it until they go into a [`Sample`]); the cursor only stops on ASCII bytes, so
//! every slice is on a character boundary, and every slice is taken with `get`, so a mistake
//! here is an error, not a panic.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};

use crate::error::{clip, ErrorKind, ParseError};
use crate::value::{parse_openmetrics_timestamp, parse_prometheus_timestamp, parse_value};
use crate::{Family, Format, Limits, MetricKind, Sample, Scrape};

/// Parses `text` in `format` with the default [`Limits`].
pub fn parse(text: &str, format: Format) -> Result<Scrape, ParseError> {
    parse_with_limits(text, format, &Limits::default())
}

/// Parses `text` in `format`, refusing anything over `limits`.
pub fn parse_with_limits(text: &str, format: Format, limits: &Limits) -> Result<Scrape, ParseError> {
    if text.len() > limits.max_input_bytes {
        return Err(ParseError {
            line: 0,
            kind: ErrorKind::InputTooLarge { len: text.len(), max: limits.max_input_bytes },
        });
    }
    let mut parser = Parser::new(format, limits);
    let mut line_no = 0;
    // `split_terminator` so that the newline ending the last line does not make an empty line.
    for line in text.split_terminator('\n') {
        line_no += 1;
        parser.line(line).map_err(|kind| ParseError { line: line_no, kind })?;
    }
    parser.finish().map_err(|kind| ParseError { line: line_no, kind })
}

/// Which metadata line a family has already had.
#[derive(Debug, Default, Clone, Copy)]
struct MetaSeen {
    help: bool,
    kind: bool,
    unit: bool,
}

#[derive(Debug, Clone, Copy)]
enum Meta {
    Help,
    Type,
    Unit,
}

struct Parser<'l> {
    format: Format,
    limits: &'l Limits,
    families: Vec<Family>,
    meta: Vec<MetaSeen>,
    by_name: HashMap<String, usize>,
    /// The family the last metadata or sample line belonged to.
    current: Option<usize>,
    samples: usize,
    /// Series hash → (family, sample) positions with that hash, to find duplicates without
    /// copying every series key. The hasher is randomly keyed so that crafted collisions
    /// cannot turn the check quadratic.
    series: HashMap<u64, Vec<(usize, usize)>>,
    series_hasher: RandomState,
    eof: bool,
}

impl<'l> Parser<'l> {
    fn new(format: Format, limits: &'l Limits) -> Self {
        Parser {
            format,
            limits,
            families: Vec::new(),
            meta: Vec::new(),
            by_name: HashMap::new(),
            current: None,
            samples: 0,
            series: HashMap::new(),
            series_hasher: RandomState::new(),
            eof: false,
        }
    }

    fn line(&mut self, line: &str) -> Result<(), ErrorKind> {
        if line.len() > self.limits.max_line_bytes {
            return Err(ErrorKind::LineTooLong { max: self.limits.max_line_bytes });
        }
        match self.format {
            Format::Prometheus => self.prometheus_line(line),
            Format::OpenMetrics => self.openmetrics_line(line),
        }
    }

    fn finish(self) -> Result<Scrape, ErrorKind> {
        if self.format == Format::OpenMetrics && !self.eof {
            return Err(ErrorKind::MissingEof);
        }
        Ok(Scrape { families: self.families })
    }

    // ---- Prometheus text 0.0.4 ----

    fn prometheus_line(&mut self, line: &str) -> Result<(), ErrorKind> {
        let mut c = Cursor::new(line);
        c.skip_blanks();
        if c.at_end() {
            return Ok(());
        }
        if !c.eat(b'#') {
            return self.prometheus_sample(c);
        }
        c.skip_blanks();
        let keyword = c.take_while(|b| !is_blank(b));
        let meta = match keyword {
            "HELP" => Meta::Help,
            "TYPE" => Meta::Type,
            // Any other comment is a comment.
            _ => return Ok(()),
        };
        if c.skip_blanks() == 0 {
            return Err(ErrorKind::InvalidMetricName);
        }
        let name = metric_name(&mut c)?;
        match meta {
            Meta::Help => {
                // No text at all is an empty help, as is a name followed only by blanks.
                if !c.at_end() && c.skip_blanks() == 0 {
                    return Err(ErrorKind::InvalidMetricName);
                }
                let help = unescape_help(c.rest(), false);
                self.set_meta(name, Meta::Help, help)
            }
            Meta::Type | Meta::Unit => {
                if c.skip_blanks() == 0 {
                    return Err(ErrorKind::Expected { expected: "a metric type" });
                }
                let type_name = c.take_while(|b| !is_blank(b));
                c.skip_blanks();
                if !c.at_end() {
                    return Err(ErrorKind::TrailingContent);
                }
                self.set_meta(name, Meta::Type, type_name.to_owned())
            }
        }
    }

    fn prometheus_sample(&mut self, mut c: Cursor<'_>) -> Result<(), ErrorKind> {
        let name = metric_name(&mut c)?;
        let blanks = c.skip_blanks();
        let labels = if c.peek() == Some(b'{') {
            let labels = self.labels(&mut c, false)?;
            c.skip_blanks();
            labels
        } else if blanks == 0 {
            return Err(ErrorKind::Expected { expected: "a blank after the metric name" });
        } else {
            Vec::new()
        };
        let value_token = c.take_while(|b| !is_blank(b));
        let value = parse_value(value_token).ok_or_else(|| ErrorKind::InvalidValue(clip(value_token)))?;
        c.skip_blanks();
        let timestamp_ms = if c.at_end() {
            None
        } else {
            let token = c.take_while(|b| !is_blank(b));
            c.skip_blanks();
            if !c.at_end() {
                return Err(ErrorKind::TrailingContent);
            }
            Some(parse_prometheus_timestamp(token).ok_or_else(|| ErrorKind::InvalidTimestamp(clip(token)))?)
        };
        self.push_sample(Sample { name: name.to_owned(), labels, value, timestamp_ms })
    }

    // ---- OpenMetrics 1.0 text ----

    fn openmetrics_line(&mut self, line: &str) -> Result<(), ErrorKind> {
        if self.eof {
            return Err(ErrorKind::ContentAfterEof);
        }
        if line.is_empty() {
            return Err(ErrorKind::BlankLine);
        }
        if line == "# EOF" {
            self.eof = true;
            return Ok(());
        }
        let mut c = Cursor::new(line);
        if !c.eat(b'#') {
            return self.openmetrics_sample(c);
        }
        if !c.eat(b' ') {
            return Err(ErrorKind::InvalidComment);
        }
        let meta = match c.take_while(|b| b != b' ') {
            "HELP" => Meta::Help,
            "TYPE" => Meta::Type,
            "UNIT" => Meta::Unit,
            _ => return Err(ErrorKind::InvalidComment),
        };
        if !c.eat(b' ') {
            return Err(ErrorKind::InvalidMetricName);
        }
        let name = metric_name(&mut c)?;
        // The text after the name may be empty, with or without the space before it.
        if !c.at_end() && !c.eat(b' ') {
            return Err(ErrorKind::InvalidMetricName);
        }
        let text = match meta {
            Meta::Help => unescape_help(c.rest(), true),
            Meta::Type => c.rest().to_owned(),
            Meta::Unit => {
                let unit = c.take_while(is_name_byte);
                if !c.at_end() {
                    return Err(ErrorKind::TrailingContent);
                }
                unit.to_owned()
            }
        };
        self.set_meta(name, meta, text)
    }

    fn openmetrics_sample(&mut self, mut c: Cursor<'_>) -> Result<(), ErrorKind> {
        let name = metric_name(&mut c)?;
        let labels = if c.peek() == Some(b'{') { self.labels(&mut c, true)? } else { Vec::new() };
        if !c.eat(b' ') {
            return Err(ErrorKind::Expected { expected: "a space before the value" });
        }
        let value_token = c.take_while(|b| b != b' ');
        let value = parse_value(value_token).ok_or_else(|| ErrorKind::InvalidValue(clip(value_token)))?;
        let mut timestamp_ms = None;
        if c.eat(b' ') {
            if c.peek() != Some(b'#') {
                let token = c.take_while(|b| b != b' ');
                timestamp_ms =
                    Some(parse_openmetrics_timestamp(token).ok_or_else(|| ErrorKind::InvalidTimestamp(clip(token)))?);
                if c.eat(b' ') && c.peek() != Some(b'#') {
                    return Err(ErrorKind::TrailingContent);
                }
            }
            if c.eat(b'#') {
                self.exemplar(&mut c)?;
            }
        }
        if !c.at_end() {
            return Err(ErrorKind::TrailingContent);
        }
        self.push_sample(Sample { name: name.to_owned(), labels, value, timestamp_ms })
    }

    /// ` {labels} value [timestamp]` after a sample's `#`: checked, then dropped (mixmon has no
    /// use for exemplars yet).
    fn exemplar(&self, c: &mut Cursor<'_>) -> Result<(), ErrorKind> {
        if !c.eat(b' ') || c.peek() != Some(b'{') {
            return Err(ErrorKind::Expected { expected: "an exemplar" });
        }
        self.labels(c, true)?;
        if !c.eat(b' ') {
            return Err(ErrorKind::Expected { expected: "an exemplar value" });
        }
        let token = c.take_while(|b| b != b' ');
        parse_value(token).ok_or_else(|| ErrorKind::InvalidValue(clip(token)))?;
        if c.eat(b' ') {
            let token = c.take_while(|b| b != b' ');
            parse_openmetrics_timestamp(token).ok_or_else(|| ErrorKind::InvalidTimestamp(clip(token)))?;
        }
        Ok(())
    }

    // ---- shared ----

    /// `{name="value",...}`. `strict` (OpenMetrics): no blanks, no trailing comma.
    fn labels(&self, c: &mut Cursor<'_>, strict: bool) -> Result<Vec<(String, String)>, ErrorKind> {
        if !c.eat(b'{') {
            return Err(ErrorKind::Expected { expected: "'{'" });
        }
        let mut labels: Vec<(String, String)> = Vec::new();
        let mut after_comma = false;
        loop {
            if !strict {
                c.skip_blanks();
            }
            if c.eat(b'}') {
                if strict && after_comma {
                    return Err(ErrorKind::InvalidLabelName);
                }
                return Ok(labels);
            }
            let name = c.take_while(is_name_byte);
            if !is_label_name(name) {
                return Err(ErrorKind::InvalidLabelName);
            }
            if !strict {
                c.skip_blanks();
            }
            if !c.eat(b'=') {
                return Err(ErrorKind::Expected { expected: "'='" });
            }
            if !strict {
                c.skip_blanks();
            }
            if !c.eat(b'"') {
                return Err(ErrorKind::Expected { expected: "'\"'" });
            }
            let value = label_value(c)?;
            if labels.iter().any(|(k, _)| k == name) {
                return Err(ErrorKind::DuplicateLabel(clip(name)));
            }
            if labels.len() >= self.limits.max_labels_per_sample {
                return Err(ErrorKind::TooManyLabels { max: self.limits.max_labels_per_sample });
            }
            labels.push((name.to_owned(), value));
            if !strict {
                c.skip_blanks();
            }
            after_comma = c.eat(b',');
            if !after_comma && c.peek() != Some(b'}') {
                return Err(ErrorKind::Expected { expected: "',' or '}'" });
            }
        }
    }

    fn new_family(&mut self, name: &str) -> Result<usize, ErrorKind> {
        if self.families.len() >= self.limits.max_families {
            return Err(ErrorKind::TooManyFamilies { max: self.limits.max_families });
        }
        let idx = self.families.len();
        self.families.push(Family {
            name: name.to_owned(),
            help: None,
            unit: None,
            kind: MetricKind::Unknown,
            samples: Vec::new(),
        });
        self.meta.push(MetaSeen::default());
        self.by_name.insert(name.to_owned(), idx);
        Ok(idx)
    }

    fn set_meta(&mut self, name: &str, meta: Meta, text: String) -> Result<(), ErrorKind> {
        let idx = match self.by_name.get(name).copied() {
            Some(idx) => {
                let has_samples = self.families.get(idx).is_some_and(|f| !f.samples.is_empty());
                if has_samples {
                    return Err(ErrorKind::MetadataAfterSamples(clip(name)));
                }
                // OpenMetrics: a family's metadata lines are contiguous.
                if self.format == Format::OpenMetrics && self.current != Some(idx) {
                    return Err(ErrorKind::FamilyReopened(clip(name)));
                }
                idx
            }
            None => self.new_family(name)?,
        };
        let (Some(family), Some(seen)) = (self.families.get_mut(idx), self.meta.get_mut(idx)) else {
            return Err(ErrorKind::InvalidMetricName);
        };
        match meta {
            Meta::Help => {
                if std::mem::replace(&mut seen.help, true) {
                    return Err(ErrorKind::DuplicateMetadata("HELP"));
                }
                family.help = Some(text);
            }
            Meta::Type => {
                if std::mem::replace(&mut seen.kind, true) {
                    return Err(ErrorKind::DuplicateMetadata("TYPE"));
                }
                family.kind = MetricKind::from_type_name(&text, self.format)
                    .ok_or_else(|| ErrorKind::UnknownType(clip(&text)))?;
            }
            Meta::Unit => {
                if std::mem::replace(&mut seen.unit, true) {
                    return Err(ErrorKind::DuplicateMetadata("UNIT"));
                }
                family.unit = Some(text);
            }
        }
        self.current = Some(idx);
        Ok(())
    }

    /// Whether family `idx` may hold a sample called `sample_name`.
    fn accepts(&self, idx: usize, sample_name: &str) -> bool {
        self.families.get(idx).is_some_and(|f| {
            sample_name
                .strip_prefix(f.name.as_str())
                .is_some_and(|suffix| f.kind.sample_suffixes(self.format).contains(&suffix))
        })
    }

    /// The family a sample belongs to, created (untyped) if there is none.
    fn family_for(&mut self, sample_name: &str) -> Result<usize, ErrorKind> {
        if let Some(current) = self.current.filter(|&c| self.accepts(c, sample_name)) {
            return Ok(current);
        }
        match self.format {
            Format::OpenMetrics => {
                if self.by_name.contains_key(sample_name) {
                    // Either a family seen before (samples must be contiguous) or one whose
                    // type wants a suffix this sample lacks (`foo` for counter `foo`).
                    return Err(ErrorKind::SampleNotInFamily(clip(sample_name)));
                }
                self.new_family(sample_name)
            }
            Format::Prometheus => {
                // Prometheus merges a family's samples wherever they come; the family is found
                // by the sample's own name, or by its name less a histogram/summary suffix.
                if let Some(&idx) = self.by_name.get(sample_name) {
                    return if self.accepts(idx, sample_name) {
                        Ok(idx)
                    } else {
                        Err(ErrorKind::SampleNotInFamily(clip(sample_name)))
                    };
                }
                for suffix in ["_bucket", "_sum", "_count"] {
                    let Some(base) = sample_name.strip_suffix(suffix) else { continue };
                    if let Some(&idx) = self.by_name.get(base) {
                        if self.accepts(idx, sample_name) {
                            return Ok(idx);
                        }
                    }
                }
                self.new_family(sample_name)
            }
        }
    }

    fn push_sample(&mut self, sample: Sample) -> Result<(), ErrorKind> {
        if self.samples >= self.limits.max_samples {
            return Err(ErrorKind::TooManySamples { max: self.limits.max_samples });
        }
        let idx = self.family_for(&sample.name)?;
        let Some(family) = self.families.get(idx) else {
            return Err(ErrorKind::SampleNotInFamily(clip(&sample.name)));
        };
        check_special_labels(family, &sample)?;

        let hash = self.series_hash(&sample);
        let positions = self.series.entry(hash).or_default();
        for &(f, s) in positions.iter() {
            let existing = self.families.get(f).and_then(|fam| fam.samples.get(s));
            if existing.is_some_and(|e| same_series(e, &sample)) {
                return Err(ErrorKind::DuplicateSeries(clip(&series_display(&sample))));
            }
        }
        let Some(family) = self.families.get_mut(idx) else {
            return Err(ErrorKind::SampleNotInFamily(clip(&sample.name)));
        };
        positions.push((idx, family.samples.len()));
        family.samples.push(sample);
        self.samples += 1;
        self.current = Some(idx);
        Ok(())
    }

    /// A hash of the series (name and label set) that does not depend on label order.
    fn series_hash(&self, sample: &Sample) -> u64 {
        let mut labels: Vec<&(String, String)> = sample.labels.iter().collect();
        labels.sort_unstable();
        let mut h = self.series_hasher.build_hasher();
        sample.name.hash(&mut h);
        labels.hash(&mut h);
        h.finish()
    }
}

/// A `_bucket` needs a numeric `le`, a summary's quantile sample a numeric `quantile`: without
/// them the sample cannot be placed, and everything downstream would have to re-check.
fn check_special_labels(family: &Family, sample: &Sample) -> Result<(), ErrorKind> {
    let suffix = sample.name.strip_prefix(family.name.as_str()).unwrap_or_default();
    let required = match (family.kind, suffix) {
        (MetricKind::Histogram | MetricKind::GaugeHistogram, "_bucket") => "le",
        (MetricKind::Summary, "") => "quantile",
        _ => return Ok(()),
    };
    match sample.label(required).and_then(parse_value) {
        Some(v) if !v.is_nan() => Ok(()),
        _ => Err(ErrorKind::MissingNumericLabel(required)),
    }
}

/// Same name and same label set, in any order (label names are unique within a sample).
fn same_series(a: &Sample, b: &Sample) -> bool {
    a.name == b.name && a.labels.len() == b.labels.len() && a.labels.iter().all(|(k, v)| b.label(k) == Some(v.as_str()))
}

fn series_display(sample: &Sample) -> String {
    let labels: Vec<String> = sample.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{}{{{}}}", sample.name, labels.join(","))
}

/// A metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) at the cursor.
fn metric_name<'a>(c: &mut Cursor<'a>) -> Result<&'a str, ErrorKind> {
    let name = c.take_while(is_name_byte);
    match name.as_bytes().first() {
        Some(b) if !b.is_ascii_digit() => Ok(name),
        _ => Err(ErrorKind::InvalidMetricName),
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: a metric name without colons.
fn is_label_name(name: &str) -> bool {
    name.as_bytes().first().is_some_and(|b| !b.is_ascii_digit()) && !name.contains(':')
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// The rest of a quoted label value, after its opening quote, unescaped; the cursor ends after
/// the closing quote. Only `\\`, `\"` and `\n` are escapes.
fn label_value(c: &mut Cursor<'_>) -> Result<String, ErrorKind> {
    let mut out = String::new();
    loop {
        out.push_str(c.take_while(|b| b != b'"' && b != b'\\'));
        match c.peek() {
            None => return Err(ErrorKind::UnterminatedLabelValue),
            Some(b'"') => {
                c.bump();
                return Ok(out);
            }
            Some(_) => {
                c.bump();
                let unescaped = match c.peek() {
                    Some(b'\\') => '\\',
                    Some(b'"') => '"',
                    Some(b'n') => '\n',
                    _ => return Err(ErrorKind::InvalidEscape),
                };
                c.bump();
                out.push(unescaped);
            }
        }
    }
}

/// HELP text unescaped: `\\` and `\n` (and `\"` in OpenMetrics). Any other backslash is kept
/// as written: help text is not worth refusing a scrape for.
fn unescape_help(text: &str, openmetrics: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        match chars.clone().next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if openmetrics => out.push('"'),
            _ => {
                out.push('\\');
                continue;
            }
        }
        chars.next();
    }
    out
}

/// A byte cursor over one line.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn bump(&mut self) {
        if self.pos < self.s.len() {
            self.pos += 1;
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// Skips spaces and tabs; how many.
    fn skip_blanks(&mut self) -> usize {
        self.take_while(is_blank).len()
    }

    /// The longest run from the cursor of bytes matching `f`. `f` only ever matches ASCII or
    /// refuses an ASCII byte to stop, so the run ends on a character boundary.
    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.s.get(start..self.pos).unwrap_or_default()
    }

    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or_default()
    }
}
