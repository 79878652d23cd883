//! Why a body was refused, and on which line.

/// A refused exposition: the 1-based line and the reason. Line 0 is the input as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    pub line: usize,
    pub kind: ErrorKind,
}

/// The reason a body was refused. Names quoted in a variant come from the input, so they are
/// cut to a few dozen characters: an error message must not be as large as the attack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("input is {len} bytes, over the limit of {max}")]
    InputTooLarge { len: usize, max: usize },
    #[error("line longer than {max} bytes")]
    LineTooLong { max: usize },
    #[error("more than {max} labels on one sample")]
    TooManyLabels { max: usize },
    #[error("more than {max} samples")]
    TooManySamples { max: usize },
    #[error("more than {max} metric families")]
    TooManyFamilies { max: usize },
    #[error("invalid metric name")]
    InvalidMetricName,
    #[error("invalid label name")]
    InvalidLabelName,
    #[error("expected {expected}")]
    Expected { expected: &'static str },
    #[error("label value not terminated")]
    UnterminatedLabelValue,
    #[error("invalid escape sequence in a label value")]
    InvalidEscape,
    #[error("invalid sample value {0:?}")]
    InvalidValue(String),
    #[error("invalid timestamp {0:?}")]
    InvalidTimestamp(String),
    #[error("unexpected content after the sample")]
    TrailingContent,
    #[error("label {0:?} appears twice")]
    DuplicateLabel(String),
    #[error("series {0} appears twice")]
    DuplicateSeries(String),
    #[error("second {0} line for the family")]
    DuplicateMetadata(&'static str),
    #[error("metadata for family {0:?} after its samples")]
    MetadataAfterSamples(String),
    #[error("unknown metric type {0:?}")]
    UnknownType(String),
    #[error("comment that is not HELP, TYPE, UNIT or EOF")]
    InvalidComment,
    #[error("blank line")]
    BlankLine,
    #[error("no `# EOF` at the end")]
    MissingEof,
    #[error("content after `# EOF`")]
    ContentAfterEof,
    #[error("family {0:?} continues after another family began")]
    FamilyReopened(String),
    #[error("sample {0:?} does not belong to its family")]
    SampleNotInFamily(String),
    #[error("sample needs a numeric {0:?} label")]
    MissingNumericLabel(&'static str),
}

/// Cuts `s` to at most 64 bytes (on a character boundary) for an error message.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", s.get(..end).unwrap_or_default())
}
