//! Writing a [`Scrape`] back out: the mixer simulator serves its metrics with it, and the tests
//! and the fuzz target hold the parser to `parse(render(s)) == s`.

use crate::value::{write_openmetrics_timestamp, write_value};
use crate::{Format, Scrape};

/// `scrape` as a body in `format`. Every family gets a `# TYPE` line (untyped/unknown ones
/// included) so that parsing the result puts every sample back in its family. Exemplars are
/// not kept by the parser, so none are written.
pub fn render(scrape: &Scrape, format: Format) -> String {
    let mut out = String::new();
    let om = format == Format::OpenMetrics;
    for family in &scrape.families {
        if let Some(help) = &family.help {
            out.push_str("# HELP ");
            out.push_str(&family.name);
            out.push(' ');
            escape_into(&mut out, help, om);
            out.push('\n');
        }
        out.push_str("# TYPE ");
        out.push_str(&family.name);
        out.push(' ');
        out.push_str(family.kind.type_name(format));
        out.push('\n');
        if let (true, Some(unit)) = (om, &family.unit) {
            out.push_str("# UNIT ");
            out.push_str(&family.name);
            out.push(' ');
            out.push_str(unit);
            out.push('\n');
        }
        for sample in &family.samples {
            out.push_str(&sample.name);
            if !sample.labels.is_empty() {
                out.push('{');
                for (i, (name, value)) in sample.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(name);
                    out.push_str("=\"");
                    escape_into(&mut out, value, true);
                    out.push('"');
                }
                out.push('}');
            }
            out.push(' ');
            write_value(&mut out, sample.value);
            if let Some(ts) = sample.timestamp_ms {
                out.push(' ');
                if om {
                    write_openmetrics_timestamp(&mut out, ts);
                } else {
                    out.push_str(&ts.to_string());
                }
            }
            out.push('\n');
        }
    }
    if om {
        out.push_str("# EOF\n");
    }
    out
}

/// Escapes `\` and newline, and `"` when `quotes` (label values; OpenMetrics help text).
fn escape_into(out: &mut String, text: &str, quotes: bool) {
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            _ => out.push(ch),
        }
    }
}
