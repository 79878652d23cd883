//! Fuzz target: arbitrary bytes through the exposition parser in both formats.
//!
//! The parser must never panic. When it accepts an input, rendering what it parsed and parsing
//! that again must give the same scrape, and rendering must be a fixed point; with tiny limits it
//! must fail with a typed error, not a panic or a large allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mixmon_exposition::{parse, parse_with_limits, render, Format, Limits};

fuzz_target!(|data: &[u8]| {
    // Lossy, so that invalid UTF-8 still reaches the parser (as U+FFFD) instead of being skipped.
    let text = String::from_utf8_lossy(data);
    let tiny =
        Limits { max_input_bytes: 4096, max_line_bytes: 64, max_labels_per_sample: 2, max_samples: 3, max_families: 2 };
    // Rendering can lengthen a line (`\x` in a HELP text becomes `\\x`, `1e3` seconds becomes
    // `1000.000`), so the re-parse is not held to the line limit.
    let relaxed = Limits { max_input_bytes: usize::MAX, max_line_bytes: usize::MAX, ..Limits::default() };
    for format in [Format::Prometheus, Format::OpenMetrics] {
        let _ = parse_with_limits(&text, format, &tiny);
        let Ok(scrape) = parse(&text, format) else { continue };
        let rendered = render(&scrape, format);
        let again = match parse_with_limits(&rendered, format, &relaxed) {
            Ok(again) => again,
            Err(e) => {
                panic!("{format:?}: rendered scrape does not parse: {e}\ninput: {text:?}\nrendered: {rendered:?}")
            }
        };
        assert!(
            scrape.equivalent(&again),
            "{format:?}: round trip changed the scrape\ninput: {text:?}\nrendered: {rendered:?}"
        );
        assert_eq!(render(&again, format), rendered, "{format:?}: render is not a fixed point");
    }
});
