//! Numbers as flock(1) reads them with the C library: `-w` with
//! `strtold` (hexadecimal, exponents, `inf`, `nan`), `-E` and descriptor
//! numbers with `strtoimax`, `--start`/`--length` as sizes (`4K`, `1MiB`).
//! Scripts pass what util-linux accepts, so this accepts exactly that and
//! rejects exactly the rest.

use std::time::Duration;

/// Why a number was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum NumberError {
    /// Not a number, or text after it.
    Invalid,
    /// A number beyond the type's range (the C library's `ERANGE`).
    OutOfRange,
}

/// What `-w SECS` asks for, read as util-linux turns it into a timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// Less than a microsecond: the same as `-n`.
    NoWait,
    /// A timer of this length.
    After(Duration),
    /// A value no timer can be set for (negative, infinite, NaN, more
    /// seconds than a `time_t` holds): flock(1) fails to set its timer.
    Unsettable,
}

/// `-w SECS`: a C floating-point number, cut to whole microseconds.
pub fn timeout(text: &str) -> Result<Timeout, NumberError> {
    Ok(timer_for(strtod(text)?))
}

/// The timer util-linux sets for `seconds`: `tv_sec` is the value cast to
/// `time_t` (on overflow or NaN the cast gives `time_t`'s minimum, as
/// x86-64 does), `tv_usec` the rest in microseconds, cut toward zero; a
/// negative field is refused by the kernel.
fn timer_for(seconds: f64) -> Timeout {
    const TIME_T_LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if seconds.is_nan() || seconds.abs() >= TIME_T_LIMIT {
        return Timeout::Unsettable;
    }
    let whole = seconds.trunc();
    let micros = micros_toward_zero(seconds - whole); // exact: no rounding
    match (whole as i64, micros) {
        (0, 0) => Timeout::NoWait,
        (secs, micros) if secs < 0 || micros < 0 => Timeout::Unsettable,
        (secs, micros) => Timeout::After(
            Duration::from_secs(secs.unsigned_abs()) + Duration::from_micros(micros.unsigned_abs()),
        ),
    }
}

/// `fraction * 1e6` cut toward zero, computed exactly from the binary
/// value (`|fraction| < 1`): plain floating-point arithmetic would round
/// 0.000001 (just below 1e-6 in binary) up to one microsecond, where C's
/// extended precision keeps it below.
fn micros_toward_zero(fraction: f64) -> i64 {
    if fraction == 0.0 {
        return 0;
    }
    let bits = fraction.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let (mantissa, exponent) = if exponent == 0 {
        (bits & ((1 << 52) - 1), -1074)
    } else {
        ((bits & ((1 << 52) - 1)) | (1 << 52), exponent - 1075)
    };
    // |fraction| = mantissa * 2^exponent, with exponent <= -53 here.
    let scaled = u128::from(mantissa) * 1_000_000;
    let shift = exponent.unsigned_abs();
    let micros = if shift >= 128 { 0 } else { (scaled >> shift) as i64 };
    if fraction < 0.0 { -micros } else { micros }
}

/// The largest decimal and binary exponents of a finite `long double`,
/// and the smallest of a normal one: beyond them `strtold` says `ERANGE`.
const MAX_EXP10: i64 = 4932;
const MIN_EXP10: i64 = -4932;
const MAX_EXP2: i64 = 16384;
const MIN_EXP2: i64 = -16382;

/// Reads `text` as C's `strtold` does, the whole of it: leading white
/// space, a sign, then a decimal or `0x` hexadecimal number with an
/// optional exponent, `inf`, `infinity` or `nan(...)`, in any case.
/// Values beyond a double's range but within a `long double`'s come back
/// infinite (no timer can be set for either).
pub fn strtod(text: &str) -> Result<f64, NumberError> {
    let mut scan = Scan::new(text.trim_start_matches(is_c_space));
    let negative = scan.sign();
    let magnitude = if let Some(special) = scan.special() {
        special
    } else if scan.eat_prefix("0x") {
        scan.hexadecimal()?
    } else {
        scan.decimal()?
    };
    if !scan.rest().is_empty() {
        return Err(NumberError::Invalid);
    }
    Ok(if negative { -magnitude } else { magnitude })
}

/// C's `isspace` in the C locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// A cursor over the text of a number.
struct Scan<'a> {
    text: &'a str,
}

impl<'a> Scan<'a> {
    fn new(text: &'a str) -> Self {
        Self { text }
    }

    fn rest(&self) -> &'a str {
        self.text
    }

    fn sign(&mut self) -> bool {
        if self.eat_prefix("-") {
            true
        } else {
            self.eat_prefix("+");
            false
        }
    }

    /// Consumes `prefix` (any case) if the text starts with it.
    fn eat_prefix(&mut self, prefix: &str) -> bool {
        let len = prefix.len();
        let matches = self.text.get(..len).is_some_and(|head| head.eq_ignore_ascii_case(prefix));
        if matches {
            self.text = &self.text[len..];
        }
        matches
    }

    /// `inf`, `infinity`, `nan` and `nan(chars)`.
    fn special(&mut self) -> Option<f64> {
        if self.eat_prefix("infinity") || self.eat_prefix("inf") {
            return Some(f64::INFINITY);
        }
        if !self.eat_prefix("nan") {
            return None;
        }
        let rest = self.text;
        if let Some(inner) = rest.strip_prefix('(') {
            let end = inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            if let Some(end) = end.filter(|&end| inner[end..].starts_with(')')) {
                self.text = &inner[end + 1..];
            }
        }
        Some(f64::NAN)
    }

    /// Digits of `radix`, as a string.
    fn digits(&mut self, radix: u32) -> &'a str {
        let end = self.text.find(|c: char| !c.is_digit(radix)).unwrap_or(self.text.len());
        let (digits, rest) = self.text.split_at(end);
        self.text = rest;
        digits
    }

    /// An exponent after `marker` (`e` or `p`): its value (saturated), or
    /// 0 — and nothing consumed — when no digits follow.
    fn exponent(&mut self, marker: &str) -> i64 {
        let saved = self.text;
        if !self.eat_prefix(marker) {
            return 0;
        }
        let negative = self.sign();
        let digits = self.digits(10);
        if digits.is_empty() {
            self.text = saved;
            return 0;
        }
        let value = digits.bytes().fold(0i64, |value, digit| {
            value.saturating_mul(10).saturating_add(i64::from(digit - b'0'))
        });
        if negative { -value } else { value }
    }

    /// `123`, `1.5`, `.5`, `5.`, each with an optional `e` exponent.
    fn decimal(&mut self) -> Result<f64, NumberError> {
        let start = self.text;
        let whole = self.digits(10);
        let fraction = if self.text.starts_with('.') {
            self.text = &self.text[1..];
            self.digits(10)
        } else {
            ""
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(NumberError::Invalid);
        }
        let exponent = self.exponent("e");
        check_range(decimal_magnitude(whole, fraction, exponent), MIN_EXP10, MAX_EXP10)?;
        let consumed = &start[..start.len() - self.text.len()];
        // Rust reads what is left (a plain decimal) the same way, rounding
        // to the nearest double; huge exponents come back as inf or 0.
        consumed.parse::<f64>().or_else(|_| Ok(saturated(exponent)))
    }

    /// Hexadecimal digits with an optional point and `p` exponent (of 2).
    fn hexadecimal(&mut self) -> Result<f64, NumberError> {
        let whole = self.digits(16);
        let fraction = if self.text.starts_with('.') {
            self.text = &self.text[1..];
            self.digits(16)
        } else {
            ""
        };
        if whole.is_empty() && fraction.is_empty() {
            // "0x" alone: C reads the "0" and stops at the "x".
            return Err(NumberError::Invalid);
        }
        let exponent = self.exponent("p");
        let leading = hex_magnitude(whole, fraction, exponent);
        check_range(leading, MIN_EXP2, MAX_EXP2)?;
        let mut value = 0f64;
        for digit in whole.chars().chain(fraction.chars()) {
            value = value * 16.0 + f64::from(digit.to_digit(16).unwrap_or(0));
        }
        let scale = exponent.saturating_sub(4 * fraction.len() as i64);
        Ok(value * 2f64.powi(scale.clamp(-2000, 2000) as i32))
    }
}

/// A decimal too large for `str::parse` can only be an out-of-range one.
fn saturated(exponent: i64) -> f64 {
    if exponent > 0 { f64::INFINITY } else { 0.0 }
}

/// The power of ten of a decimal number's first significant digit; `None`
/// for zero.
fn decimal_magnitude(whole: &str, fraction: &str, exponent: i64) -> Option<i64> {
    if let Some(first) = whole.find(|c| c != '0') {
        return Some(exponent.saturating_add((whole.len() - first - 1) as i64));
    }
    let zeros = fraction.find(|c| c != '0')?;
    Some(exponent.saturating_sub(zeros as i64 + 1))
}

/// The power of two of a hexadecimal number's first significant bit;
/// `None` for zero.
fn hex_magnitude(whole: &str, fraction: &str, exponent: i64) -> Option<i64> {
    let bits = |digit: char| 32 - digit.to_digit(16).unwrap_or(0).leading_zeros();
    if let Some(first) = whole.find(|c| c != '0') {
        let digit = whole[first..].chars().next()?;
        let below = 4 * (whole.len() - first - 1) as i64 + i64::from(bits(digit)) - 1;
        return Some(exponent.saturating_add(below));
    }
    let zeros = fraction.find(|c| c != '0')?;
    let digit = fraction[zeros..].chars().next()?;
    let below = 4 * (zeros as i64 + 1) - i64::from(bits(digit)) + 1;
    Some(exponent.saturating_sub(below))
}

fn check_range(magnitude: Option<i64>, min: i64, max: i64) -> Result<(), NumberError> {
    match magnitude {
        Some(m) if m > max || m < min => Err(NumberError::OutOfRange),
        _ => Ok(()),
    }
}

/// A C `strtoimax` in base 10, the whole text, within `i32` (util-linux's
/// `strtos32_or_err`): leading white space and a sign are fine.
pub fn strtos32(text: &str) -> Result<i32, NumberError> {
    let mut scan = Scan::new(text.trim_start_matches(is_c_space));
    let negative = scan.sign();
    let digits = scan.digits(10);
    if digits.is_empty() || !scan.rest().is_empty() {
        return Err(NumberError::Invalid);
    }
    let magnitude = digits
        .bytes()
        .try_fold(0i64, |value, digit| value.checked_mul(10)?.checked_add(i64::from(digit - b'0')));
    let value = magnitude.map(|m| if negative { -m } else { m });
    value.and_then(|v| i32::try_from(v).ok()).ok_or(NumberError::OutOfRange)
}

/// A size as util-linux reads `--start` and `--length`: a non-negative C
/// integer (decimal, `0x` hexadecimal or `0` octal), optionally followed by
/// `K`, `M`, `G`, `T`, `P` or `E`, alone or with `iB` (powers of 1024) or
/// with `B` (powers of 1000).
pub fn size(text: &str) -> Result<u64, NumberError> {
    let trimmed = text.trim_start_matches(is_c_space);
    if trimmed.starts_with('-') {
        return Err(NumberError::Invalid);
    }
    let mut scan = Scan::new(trimmed);
    scan.eat_prefix("+");
    let radix = if scan.eat_prefix("0x") {
        16
    } else if scan.rest().starts_with('0') && scan.rest().len() > 1 {
        8
    } else {
        10
    };
    let digits = scan.digits(radix);
    if digits.is_empty() && radix != 8 {
        return Err(NumberError::Invalid);
    }
    let value = if digits.is_empty() { Ok(0) } else { u64::from_str_radix(digits, radix) };
    let value = value.map_err(|_| NumberError::OutOfRange)?;
    scale(value, scan.rest())
}

/// Multiplies by a size suffix's power.
fn scale(value: u64, suffix: &str) -> Result<u64, NumberError> {
    if suffix.is_empty() {
        return Ok(value);
    }
    let mut chars = suffix.chars();
    let letter = chars.next().ok_or(NumberError::Invalid)?.to_ascii_uppercase();
    let power = "KMGTPE".find(letter).ok_or(NumberError::Invalid)? as u32 + 1;
    let base: u64 = match chars.as_str() {
        "" | "iB" | "ib" => 1024,
        "B" | "b" => 1000,
        _ => return Err(NumberError::Invalid),
    };
    base.checked_pow(power).and_then(|unit| value.checked_mul(unit)).ok_or(NumberError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(secs: u64, micros: u64) -> Timeout {
        Timeout::After(Duration::from_secs(secs) + Duration::from_micros(micros))
    }

    #[test]
    fn timeouts_read_as_util_linux_sets_its_timer() {
        use NumberError::*;
        let cases = [
            ("1", Ok(after(1, 0))),
            (" 1", Ok(after(1, 0))),
            ("+1", Ok(after(1, 0))),
            ("0.5", Ok(after(0, 500_000))),
            (".5", Ok(after(0, 500_000))),
            ("5.", Ok(after(5, 0))),
            ("0x1", Ok(after(1, 0))),
            ("0X1P0", Ok(after(1, 0))),
            ("0x1p-1", Ok(after(0, 500_000))),
            ("0x.8", Ok(after(0, 500_000))),
            ("0x1p-30", Ok(Timeout::NoWait)),
            ("1e9", Ok(after(1_000_000_000, 0))),
            ("9.2e18", Ok(after(9_200_000_000_000_000_000, 0))),
            ("0", Ok(Timeout::NoWait)),
            ("-0", Ok(Timeout::NoWait)),
            ("1e-7", Ok(Timeout::NoWait)),
            ("-1e-7", Ok(Timeout::NoWait)),
            ("0.000001", Ok(Timeout::NoWait)),
            ("0.000002", Ok(after(0, 1))),
            ("-0.5", Ok(Timeout::Unsettable)),
            ("-1", Ok(Timeout::Unsettable)),
            ("9.3e18", Ok(Timeout::Unsettable)),
            ("1e30", Ok(Timeout::Unsettable)),
            ("1e400", Ok(Timeout::Unsettable)),
            ("inf", Ok(Timeout::Unsettable)),
            ("INFINITY", Ok(Timeout::Unsettable)),
            ("NaN", Ok(Timeout::Unsettable)),
            ("nan(123)", Ok(Timeout::Unsettable)),
            ("1e5000", Err(OutOfRange)),
            ("1e-5000", Err(OutOfRange)),
            ("0x1p20000", Err(OutOfRange)),
            ("", Err(Invalid)),
            ("1 ", Err(Invalid)),
            ("1s", Err(Invalid)),
            ("0x", Err(Invalid)),
            ("1.5e", Err(Invalid)),
            ("abc", Err(Invalid)),
            ("infin", Err(Invalid)),
            ("nan(", Err(Invalid)),
            (".", Err(Invalid)),
        ];
        for (text, expected) in cases {
            assert_eq!(timeout(text), expected, "{text:?}");
        }
    }

    #[test]
    fn exit_codes_and_descriptors_read_as_strtos32() {
        use NumberError::*;
        let cases = [
            ("5", Ok(5)),
            (" 5", Ok(5)),
            ("+9", Ok(9)),
            ("-0", Ok(0)),
            (" -1", Ok(-1)),
            ("0x5", Err(Invalid)),
            ("1e1", Err(Invalid)),
            ("5x", Err(Invalid)),
            ("", Err(Invalid)),
            ("99999999999", Err(OutOfRange)),
            ("-99999999999", Err(OutOfRange)),
            ("2147483648", Err(OutOfRange)),
        ];
        for (text, expected) in cases {
            assert_eq!(strtos32(text), expected, "{text:?}");
        }
    }

    #[test]
    fn sizes_take_util_linux_suffixes() {
        use NumberError::*;
        let cases = [
            ("0", Ok(0)),
            ("100", Ok(100)),
            ("0x10", Ok(16)),
            ("010", Ok(8)),
            ("4K", Ok(4096)),
            ("4KiB", Ok(4096)),
            ("4KB", Ok(4000)),
            ("1m", Ok(1 << 20)),
            ("-1", Err(Invalid)),
            ("1X", Err(Invalid)),
            ("", Err(Invalid)),
            ("16E", Err(OutOfRange)),
        ];
        for (text, expected) in cases {
            assert_eq!(size(text), expected, "{text:?}");
        }
    }
}
