//! Kubernetes resource quantities (`512Mi`, `1Gi`, `1G`, `1e9`, `500M`, `0.5Gi`) as a whole
//! number of bytes, and CPU quantities (`8`, `7910m`, `250000n`) as whole nanocores.
//!
//! The grammar is Kubernetes' own: a decimal number (optionally signed, optionally with a
//! fraction), then either a binary suffix (`Ki` … `Ei`), a decimal suffix (`n`, `u`, `m`, none,
//! `k`, `M`, `G`, `T`, `P`, `E`) or a decimal exponent (`e3`, `E-2`). A fraction of a byte is
//! rounded up, as Kubernetes does. Negative values, anything over `u64::MAX` and garbage are
//! `None`: a limit we cannot read is an unknown limit, never a wrong one.

/// Digits of the mantissa we keep exactly; more cannot fit the arithmetic (and no real
/// quantity has them).
const MAX_DIGITS: usize = 30;

/// The quantity `text` in bytes (rounded up), or `None` when it is not a valid, non-negative
/// quantity that fits a `u64`.
pub fn parse_bytes(text: &str) -> Option<u64> {
    parse_scaled(text, 0)
}

/// The CPU quantity `text` in nanocores (`"8"` is 8 000 000 000, `"7910m"` 7 910 000 000),
/// rounded up, or `None` as for [`parse_bytes`].
pub fn parse_nanocores(text: &str) -> Option<u64> {
    parse_scaled(text, 9)
}

/// The quantity times `10^scale`, rounded up.
fn parse_scaled(text: &str, scale: i32) -> Option<u64> {
    let text = text.trim();
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    let number_len = unsigned.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let digits: String = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > MAX_DIGITS {
        return None;
    }
    let mantissa: u128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    let (pow2, pow10) = multiplier(suffix)?;
    let frac_digits = i32::try_from(frac_part.len()).ok()?;
    let exp10 = pow10.checked_add(scale)?.checked_sub(frac_digits)?;
    let scaled = mantissa.checked_mul(1u128.checked_shl(pow2)?)?;
    let value = if exp10 >= 0 {
        if scaled == 0 {
            0
        } else {
            scaled.checked_mul(10u128.checked_pow(u32::try_from(exp10).ok()?)?)?
        }
    } else {
        match 10u128.checked_pow(exp10.unsigned_abs()) {
            Some(divisor) => scaled.div_ceil(divisor),
            // More than 38 decimal places down: less than one byte, rounded up.
            None => u128::from(scaled > 0),
        }
    };
    u64::try_from(value).ok()
}

/// `(power of two, power of ten)` of a suffix, or `None` for an unknown one.
fn multiplier(suffix: &str) -> Option<(u32, i32)> {
    let m = match suffix {
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "" => (0, 0),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        exp => {
            let rest = exp.strip_prefix('e').or_else(|| exp.strip_prefix('E'))?;
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (0, rest.parse().ok()?)
        }
    };
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_in_bytes() {
        let cases: &[(&str, Option<u64>)] = &[
            ("512Mi", Some(512 * 1024 * 1024)),
            ("1Gi", Some(1 << 30)),
            ("1G", Some(1_000_000_000)),
            ("1e9", Some(1_000_000_000)),
            ("1E9", Some(1_000_000_000)),
            ("500M", Some(500_000_000)),
            ("128974848", Some(128_974_848)),
            ("129e6", Some(129_000_000)),
            ("123Mi", Some(123 * 1024 * 1024)),
            ("0.5Gi", Some(512 * 1024 * 1024)),
            ("1.5k", Some(1500)),
            ("100Ki", Some(102_400)),
            ("1Ti", Some(1 << 40)),
            ("1E", Some(1_000_000_000_000_000_000)),
            ("8Ei", Some(1 << 63)),
            ("+2k", Some(2000)),
            ("0", Some(0)),
            ("0Mi", Some(0)),
            (" 64Mi ", Some(64 << 20)),
            // Fractions of a byte round up, as Kubernetes does.
            ("1500m", Some(2)),
            ("1m", Some(1)),
            ("1n", Some(1)),
            ("0.1", Some(1)),
            ("5e-1", Some(1)),
            ("1e-40", Some(1)),
            ("", None),
            ("Mi", None),
            (".", None),
            ("-1Gi", None),
            ("1.2.3", None),
            ("12MB", None),
            ("1mi", None),
            ("1e", None),
            ("1e+", None),
            ("1 Gi", None),
            ("16Ei", None),
            ("1e20", None),
            ("99999999999999999999999999999999999999", None),
            ("1e99999", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_bytes(text), *want, "{text:?}");
        }
    }

    #[test]
    fn cpu_quantities_in_nanocores() {
        let cases: &[(&str, Option<u64>)] = &[
            ("8", Some(8_000_000_000)),
            ("7910m", Some(7_910_000_000)),
            ("0.5", Some(500_000_000)),
            ("250000n", Some(250_000)),
            ("1500u", Some(1_500_000)),
            ("2k", Some(2_000_000_000_000)),
            ("0.0000000001", Some(1)),
            ("-1", None),
            ("8 cores", None),
            ("1e12", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_nanocores(text), *want, "{text:?}");
        }
    }
}
