//! Numbers as the two formats write them: sample values, Prometheus millisecond timestamps and
//! OpenMetrics second timestamps. Also the float rendering that reads back to the same bits.

/// A sample value: a decimal or exponent float, or `NaN`/`Inf`/`infinity` with an optional
/// sign on the infinities, in any case (Go's `ParseFloat` and the OpenMetrics ABNF agree).
pub(crate) fn parse_value(token: &str) -> Option<f64> {
    let (sign, body) = match token.as_bytes().first() {
        Some(b'+') => (1.0, token.get(1..)?),
        Some(b'-') => (-1.0, token.get(1..)?),
        _ => (1.0, token),
    };
    if body.eq_ignore_ascii_case("inf") || body.eq_ignore_ascii_case("infinity") {
        return Some(sign * f64::INFINITY);
    }
    if body.eq_ignore_ascii_case("nan") {
        // A signed NaN means nothing; refuse it rather than guess.
        return (body.len() == token.len()).then_some(f64::NAN);
    }
    // Only the characters of a decimal or exponent float reach `str::parse`, which would
    // otherwise also accept spellings neither format has.
    let plain = body.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !plain || !body.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse::<f64>().ok()
}

/// A Prometheus timestamp: integer milliseconds since the epoch.
pub(crate) fn parse_prometheus_timestamp(token: &str) -> Option<i64> {
    token.parse::<i64>().ok()
}

/// An OpenMetrics timestamp: seconds since the epoch, possibly fractional or in exponent form,
/// as milliseconds (rounded half away from zero). The plain decimal form is converted with
/// integer arithmetic so that every millisecond timestamp survives render → parse exactly
/// (an `f64` holds only about 16 significant digits).
pub(crate) fn parse_openmetrics_timestamp(token: &str) -> Option<i64> {
    let (negative, body) = match token.as_bytes().first() {
        Some(b'+') => (false, token.get(1..)?),
        Some(b'-') => (true, token.get(1..)?),
        _ => (false, token),
    };
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if all_digits(int_part) && all_digits(frac_part) && !(int_part.is_empty() && frac_part.is_empty()) {
        let mut ms: i128 = 0;
        for b in int_part.bytes() {
            ms = ms.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
            // Stop early: a long run of digits is out of range long before i128 overflows.
            if ms > i128::from(i64::MAX) {
                return None;
            }
        }
        let mut frac = frac_part.bytes().map(|b| i128::from(b - b'0'));
        let mut millis: i128 = 0;
        for _ in 0..3 {
            millis = millis * 10 + frac.next().unwrap_or(0);
        }
        if frac.next().is_some_and(|d| d >= 5) {
            millis += 1;
        }
        let total = ms.checked_mul(1000)?.checked_add(millis)?;
        let signed = if negative { -total } else { total };
        return i64::try_from(signed).ok();
    }
    // Exponent form (`1.5e9`): through a float, and refused when out of range.
    let seconds = parse_value(token)?;
    let ms = (seconds * 1000.0).round();
    // 9.2e18 is just under i64::MAX; anything larger is not a timestamp.
    if !ms.is_finite() || ms.abs() >= 9.2e18 {
        return None;
    }
    // In range and integral: the cast is exact.
    #[allow(clippy::cast_possible_truncation)]
    Some(ms as i64)
}

/// A value as both formats accept it back: `NaN`, `+Inf`, `-Inf`, or Rust's shortest decimal
/// that reads back to the same `f64`.
pub(crate) fn write_value(out: &mut String, value: f64) {
    use std::fmt::Write as _;
    if value.is_nan() {
        out.push_str("NaN");
    } else if value == f64::INFINITY {
        out.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if value != 0.0 && (value.abs() >= 1e15 || value.abs() < 1e-4) {
        // Exponent form keeps huge and tiny values short (`{}` would write 300 digits).
        let _ = write!(out, "{value:e}");
    } else {
        let _ = write!(out, "{value}");
    }
}

/// A millisecond timestamp as OpenMetrics seconds with three decimals.
pub(crate) fn write_openmetrics_timestamp(out: &mut String, ms: i64) {
    use std::fmt::Write as _;
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    let _ = write!(out, "{sign}{}.{:03}", abs / 1000, abs % 1000);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_table() {
        let cases: &[(&str, Option<f64>)] = &[
            ("1", Some(1.0)),
            ("-4.7", Some(-4.7)),
            ("4.1848832e+08", Some(418_488_320.0)),
            ("1e-3", Some(0.001)),
            ("1E3", Some(1000.0)),
            ("+Inf", Some(f64::INFINITY)),
            ("-Inf", Some(f64::NEG_INFINITY)),
            ("Inf", Some(f64::INFINITY)),
            ("+infinity", Some(f64::INFINITY)),
            (".5", Some(0.5)),
            ("1.", Some(1.0)),
            ("1e999", Some(f64::INFINITY)),
            ("", None),
            ("+", None),
            ("-", None),
            ("e", None),
            ("1e", None),
            ("0x10", None),
            ("1_000", None),
            ("--1", None),
            ("+NaN", None),
            ("nanx", None),
            ("١", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_value(input), *want, "{input:?}");
        }
        assert!(parse_value("NaN").is_some_and(f64::is_nan));
        assert!(parse_value("nan").is_some_and(f64::is_nan));
    }

    #[test]
    fn openmetrics_timestamps_table() {
        let cases: &[(&str, Option<i64>)] = &[
            ("1520879607.789", Some(1_520_879_607_789)),
            ("1520879607", Some(1_520_879_607_000)),
            ("1.0005", Some(1001)),
            ("1.0004999", Some(1000)),
            ("-0.001", Some(-1)),
            (".5", Some(500)),
            ("1.", Some(1000)),
            ("1.5e3", Some(1_500_000)),
            ("-9223372036854775.808", Some(i64::MIN)),
            ("9223372036854775.807", Some(i64::MAX)),
            ("9223372036854775.808", None),
            ("99999999999999999999999999999999999999999", None),
            ("1e300", None),
            ("NaN", None),
            ("+Inf", None),
            ("", None),
            (".", None),
            ("1.2.3", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_openmetrics_timestamp(input), *want, "{input:?}");
        }
    }

    #[test]
    fn rendered_values_read_back_exactly() {
        for v in [0.0, -0.0, 1.0, -4.7, 418_488_320.0, 1e300, 5e-324, f64::MAX, f64::MIN, 0.1 + 0.2, 1e-5, 1e15] {
            let mut s = String::new();
            write_value(&mut s, v);
            assert_eq!(parse_value(&s).map(f64::to_bits), Some(v.to_bits()), "{v} as {s}");
        }
    }

    #[test]
    fn rendered_timestamps_read_back_exactly() {
        for ms in [0, 1, -1, 999, -999, 1_520_879_607_789, i64::MAX, i64::MIN] {
            let mut s = String::new();
            write_openmetrics_timestamp(&mut s, ms);
            assert_eq!(parse_openmetrics_timestamp(&s), Some(ms), "{ms} as {s}");
        }
    }
}
