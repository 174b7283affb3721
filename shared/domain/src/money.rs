//! Milli-point money: the one amount type of the mall.
//!
//! An amount is an integer count of 1/1000 points (SPEC §3). No float ever touches it: amounts are
//! parsed from and printed as decimal strings digit by digit, shares are computed in `i128` and
//! floored, and every operation that could overflow returns [`MoneyError::Overflow`] instead of
//! wrapping. In MongoDB and in serde's default form an amount is its `i64` milli count (Int64).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::policy::BasisPoints;

/// Milli-points per point.
const MILLI_PER_POINT: i64 = 1000;

/// An amount of points with exactly three decimals, held as an integer count of milli-points.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct MilliPoints(i64);

/// Why an arithmetic operation on amounts was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount arithmetic overflowed")]
    Overflow,
}

/// Why a decimal amount string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseAmountError {
    #[error("amount {0:?} is not a decimal number such as \"12.345\"")]
    Malformed(String),
    #[error("amount {0:?} has more than 3 decimal places")]
    TooManyDecimals(String),
    #[error("amount {0:?} is too large")]
    TooLarge(String),
}

impl MilliPoints {
    pub const ZERO: MilliPoints = MilliPoints(0);

    /// An amount from its milli-point count.
    pub const fn from_milli(milli: i64) -> Self {
        MilliPoints(milli)
    }

    /// The milli-point count (what MongoDB stores).
    pub const fn as_milli(self) -> i64 {
        self.0
    }

    /// A whole number of points.
    pub fn from_points(points: i64) -> Result<Self, MoneyError> {
        points
            .checked_mul(MILLI_PER_POINT)
            .map(MilliPoints)
            .ok_or(MoneyError::Overflow)
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn checked_add(self, other: MilliPoints) -> Result<Self, MoneyError> {
        self.0
            .checked_add(other.0)
            .map(MilliPoints)
            .ok_or(MoneyError::Overflow)
    }

    pub fn checked_sub(self, other: MilliPoints) -> Result<Self, MoneyError> {
        self.0
            .checked_sub(other.0)
            .map(MilliPoints)
            .ok_or(MoneyError::Overflow)
    }

    /// This amount times a whole factor, e.g. a unit price times a quantity.
    pub fn checked_mul(self, factor: i64) -> Result<Self, MoneyError> {
        self.0
            .checked_mul(factor)
            .map(MilliPoints)
            .ok_or(MoneyError::Overflow)
    }

    /// The sum of some amounts, refusing to wrap.
    pub fn checked_sum<I: IntoIterator<Item = MilliPoints>>(
        amounts: I,
    ) -> Result<Self, MoneyError> {
        amounts
            .into_iter()
            .try_fold(MilliPoints::ZERO, MilliPoints::checked_add)
    }

    /// `floor(self × bps / 10000)`: the SPEC §3 rounding rule for every share.
    ///
    /// Infallible: a basis-point value never exceeds 10000, so the share's magnitude never exceeds
    /// this amount's, and the product is taken in `i128`.
    pub fn share(self, bps: BasisPoints) -> MilliPoints {
        let product = i128::from(self.0) * i128::from(bps.get());
        let floored = product.div_euclid(i128::from(BasisPoints::WHOLE));
        // |floored| <= |self.0| because bps <= WHOLE, so the conversion cannot fail; saturate
        // rather than panic to keep this total.
        MilliPoints(i64::try_from(floored).unwrap_or(if floored < 0 { i64::MIN } else { i64::MAX }))
    }

    /// Divides this amount into `parts` equal floored shares: `(each, remainder)`, where
    /// `each × parts + remainder == self` and `0 <= remainder < parts` for a non-negative amount.
    /// `None` when `parts` is zero.
    pub fn split_evenly(self, parts: u32) -> Option<(MilliPoints, MilliPoints)> {
        if parts == 0 {
            return None;
        }
        let parts = i64::from(parts);
        Some((
            MilliPoints(self.0.div_euclid(parts)),
            MilliPoints(self.0.rem_euclid(parts)),
        ))
    }

    /// The shortest decimal form with at most three decimals (`1.75`, `0.875`, `4000`), as the JSON
    /// API renders amounts (SPEC §3).
    pub fn to_compact_string(self) -> String {
        let fixed = self.to_string();
        match fixed.split_once('.') {
            Some((whole, frac)) => {
                let frac = frac.trim_end_matches('0');
                if frac.is_empty() {
                    whole.to_owned()
                } else {
                    format!("{whole}.{frac}")
                }
            }
            None => fixed,
        }
    }
}

/// Exactly three decimals: `1.750`, `-0.005`, `4000.000` (the simulator's format, SPEC §9).
impl fmt::Display for MilliPoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let per_point = MILLI_PER_POINT.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:03}",
            magnitude / per_point,
            magnitude % per_point
        )
    }
}

/// Parses `-?DIGITS(.DIGITS{1,3})?`, e.g. `100`, `100.5`, `0.875`. Nothing else: no exponent, no
/// spaces, no `+`, no bare `.5`.
impl FromStr for MilliPoints {
    type Err = ParseAmountError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let malformed = || ParseAmountError::Malformed(text.to_owned());
        let too_large = || ParseAmountError::TooLarge(text.to_owned());

        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, frac) = match unsigned.split_once('.') {
            Some((whole, frac)) => (whole, Some(frac)),
            None => (unsigned, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(whole) {
            return Err(malformed());
        }
        let frac = match frac {
            None => "",
            Some(frac) if !all_digits(frac) => return Err(malformed()),
            Some(frac) if frac.len() > 3 => {
                return Err(ParseAmountError::TooManyDecimals(text.to_owned()))
            }
            Some(frac) => frac,
        };

        // Accumulate in the negative range when negative so that i64::MIN parses too.
        let sign: i64 = if negative { -1 } else { 1 };
        let padded_frac = format!("{frac:0<3}");
        let mut milli: i64 = 0;
        for digit in whole.bytes().chain(padded_frac.bytes()) {
            milli = milli
                .checked_mul(10)
                .and_then(|m| m.checked_add(sign * i64::from(digit - b'0')))
                .ok_or_else(too_large)?;
        }
        Ok(MilliPoints(milli))
    }
}

/// Why a decimal number could not be rounded to an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoundAmountError {
    #[error("{0:?} is not a finite decimal number")]
    NotANumber(String),
    #[error("{0:?} is too large to be an amount")]
    TooLarge(String),
}

/// A decimal number as number formatters print it — an optional sign, digits with an optional
/// fraction, an optional exponent (`-12.5`, `1.5E+3`, `5e-2`) — split into its parts: the one
/// reader of decimal text, for amounts and for shares alike.
pub(crate) struct DecimalText<'a> {
    pub negative: bool,
    /// The digits before the point (possibly empty).
    pub whole: &'a str,
    /// The digits after the point (possibly empty; not both).
    pub frac: &'a str,
    pub exponent: i32,
}

impl<'a> DecimalText<'a> {
    pub(crate) fn parse(text: &'a str) -> Option<Self> {
        let (mantissa, exponent) = match text.find(['e', 'E']) {
            Some(at) => (&text[..at], text[at + 1..].parse().ok()?),
            None => (text, 0),
        };
        let (negative, unsigned) = match mantissa.as_bytes().first() {
            Some(b'-') => (true, &mantissa[1..]),
            Some(b'+') => (false, &mantissa[1..]),
            _ => (false, mantissa),
        };
        let (whole, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let digits_only = whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit());
        if (whole.is_empty() && frac.is_empty()) || !digits_only {
            return None;
        }
        Some(DecimalText {
            negative,
            whole,
            frac,
            exponent,
        })
    }
}

impl MilliPoints {
    /// A decimal number of points rounded to the nearest milli-point, ties to even
    /// (`0.0005` → `0.000`, `0.0015` → `0.002`, `4239.149999999997` → `4239.150`).
    ///
    /// Accepts what number formatters print: an optional sign, digits with an optional fraction,
    /// and an optional exponent (`1.5E+3`, `-2e-4`). This is how a stored JavaScript number (a
    /// double taken at its shortest decimal form) or a Decimal128 becomes money: the rounding is
    /// done on the exact decimal digits, never in floating point.
    pub fn from_decimal_rounded(text: &str) -> Result<Self, RoundAmountError> {
        let not_a_number = || RoundAmountError::NotANumber(text.to_owned());
        let too_large = || RoundAmountError::TooLarge(text.to_owned());
        let DecimalText {
            negative,
            whole,
            frac,
            exponent,
        } = DecimalText::parse(text).ok_or_else(not_a_number)?;
        // The digits as one integer, with the decimal point `point` places from the left.
        let digits: Vec<u8> = whole
            .bytes()
            .chain(frac.bytes())
            .map(|b| b - b'0')
            .skip_while(|&d| d == 0)
            .collect();
        if digits.is_empty() {
            // Zero, in any notation (`0`, `-0.000`, `0E+17`).
            return Ok(MilliPoints::ZERO);
        }
        let significant = i64::try_from(digits.len()).map_err(|_| too_large())?;
        let leading_zeros =
            i64::try_from(whole.len() + frac.len()).map_err(|_| too_large())? - significant;
        // Position of the decimal point counted from the first significant digit, after scaling
        // to milli-points (× 10³) and applying the exponent.
        let point = i64::try_from(whole.len()).map_err(|_| too_large())? - leading_zeros
            + i64::from(exponent)
            + 3;
        if point > 19 {
            return Err(too_large());
        }
        let mut milli: i64 = 0;
        for index in 0..point.max(0) {
            let digit = usize::try_from(index)
                .ok()
                .and_then(|i| digits.get(i))
                .copied()
                .unwrap_or(0);
            milli = milli
                .checked_mul(10)
                .and_then(|m| m.checked_add(i64::from(digit)))
                .ok_or_else(too_large)?;
        }
        // Round half to even on the digits past the milli-point.
        let rest: &[u8] = match usize::try_from(point) {
            Ok(at) => digits.get(at..).unwrap_or(&[]),
            Err(_) => &digits,
        };
        let rest = if point < 0 {
            // Zeros stand between the milli-point and the first significant digit.
            None
        } else {
            Some(rest)
        };
        let round_up = match rest {
            None => false,
            Some([]) => false,
            Some([first, tail @ ..]) => {
                *first > 5 || *first == 5 && (tail.iter().any(|&d| d != 0) || milli % 2 == 1)
            }
        };
        if round_up {
            milli = milli.checked_add(1).ok_or_else(too_large)?;
        }
        Ok(MilliPoints(if negative { -milli } else { milli }))
    }
}

/// serde adapter for the simulator's string form (`"1.750"`): `#[serde(with = "decimal_string")]`.
pub mod decimal_string {
    use super::MilliPoints;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        amount: &MilliPoints,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(amount)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<MilliPoints, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The same, for an optional amount (`null` or absent: none).
pub mod optional_decimal_string {
    use super::MilliPoints;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        amount: &Option<MilliPoints>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match amount {
            Some(amount) => serializer.collect_str(amount),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<MilliPoints>, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)?;
        text.map(|t| t.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(text: &str) -> MilliPoints {
        text.parse().unwrap()
    }

    #[test]
    fn parses_whole_and_fractional_points() {
        assert_eq!(amount("100"), MilliPoints::from_milli(100_000));
        assert_eq!(amount("100.000"), MilliPoints::from_milli(100_000));
        assert_eq!(amount("1.75"), MilliPoints::from_milli(1_750));
        assert_eq!(amount("0.875"), MilliPoints::from_milli(875));
        assert_eq!(amount("0.5"), MilliPoints::from_milli(500));
        assert_eq!(amount("-2.005"), MilliPoints::from_milli(-2_005));
        assert_eq!(amount("007.1"), MilliPoints::from_milli(7_100));
    }

    #[test]
    fn rejects_anything_but_plain_decimals() {
        for bad in [
            "", "-", ".5", "5.", "1e3", " 1", "1 ", "+1", "1.2.3", "abc", "1,5", "--1", "0x10",
            "１",
        ] {
            assert!(
                matches!(
                    bad.parse::<MilliPoints>(),
                    Err(ParseAmountError::Malformed(_))
                ),
                "{bad:?} should be malformed"
            );
        }
        assert_eq!(
            "1.2345".parse::<MilliPoints>(),
            Err(ParseAmountError::TooManyDecimals("1.2345".into()))
        );
    }

    #[test]
    fn parsing_refuses_to_overflow() {
        assert_eq!(
            "9223372036854775.807".parse::<MilliPoints>(),
            Ok(MilliPoints::from_milli(i64::MAX))
        );
        assert_eq!(
            "-9223372036854775.808".parse::<MilliPoints>(),
            Ok(MilliPoints::from_milli(i64::MIN))
        );
        assert!(matches!(
            "9223372036854775.808".parse::<MilliPoints>(),
            Err(ParseAmountError::TooLarge(_))
        ));
        assert!(matches!(
            "99999999999999999999".parse::<MilliPoints>(),
            Err(ParseAmountError::TooLarge(_))
        ));
    }

    #[test]
    fn displays_exactly_three_decimals() {
        assert_eq!(MilliPoints::from_milli(1_750).to_string(), "1.750");
        assert_eq!(MilliPoints::from_milli(100_000).to_string(), "100.000");
        assert_eq!(MilliPoints::from_milli(5).to_string(), "0.005");
        assert_eq!(MilliPoints::from_milli(-5).to_string(), "-0.005");
        assert_eq!(MilliPoints::ZERO.to_string(), "0.000");
        assert_eq!(
            MilliPoints::from_milli(i64::MIN).to_string(),
            "-9223372036854775.808"
        );
    }

    #[test]
    fn compact_form_drops_trailing_zeros() {
        assert_eq!(MilliPoints::from_milli(1_750).to_compact_string(), "1.75");
        assert_eq!(MilliPoints::from_milli(875).to_compact_string(), "0.875");
        assert_eq!(
            MilliPoints::from_milli(4_000_000).to_compact_string(),
            "4000"
        );
        assert_eq!(MilliPoints::from_milli(-100).to_compact_string(), "-0.1");
        assert_eq!(MilliPoints::ZERO.to_compact_string(), "0");
    }

    #[test]
    fn share_floors_and_never_overflows() {
        let bps = |v| BasisPoints::new(v).unwrap();
        assert_eq!(amount("35").share(bps(500)), amount("1.75"));
        assert_eq!(amount("100").share(bps(3500)), amount("35"));
        assert_eq!(
            MilliPoints::from_milli(999).share(bps(1)),
            MilliPoints::ZERO
        );
        assert_eq!(
            MilliPoints::from_milli(19_999).share(bps(5000)),
            MilliPoints::from_milli(9_999)
        );
        let max = MilliPoints::from_milli(i64::MAX);
        assert_eq!(max.share(bps(10_000)), max);
        assert_eq!(max.share(bps(5000)), MilliPoints::from_milli(i64::MAX / 2));
    }

    #[test]
    fn checked_arithmetic_reports_overflow() {
        let max = MilliPoints::from_milli(i64::MAX);
        let one = MilliPoints::from_milli(1);
        assert_eq!(max.checked_add(one), Err(MoneyError::Overflow));
        assert_eq!(
            MilliPoints::from_milli(i64::MIN).checked_sub(one),
            Err(MoneyError::Overflow)
        );
        assert_eq!(max.checked_mul(2), Err(MoneyError::Overflow));
        assert_eq!(
            MilliPoints::from_points(i64::MAX / 999),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            MilliPoints::checked_sum([max, one]),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            MilliPoints::checked_sum([one, one]),
            Ok(MilliPoints::from_milli(2))
        );
    }

    #[test]
    fn split_evenly_keeps_the_remainder() {
        let (each, rest) = MilliPoints::from_milli(1_750).split_evenly(3).unwrap();
        assert_eq!((each.as_milli(), rest.as_milli()), (583, 1));
        assert_eq!(MilliPoints::from_milli(1).split_evenly(0), None);
    }

    #[test]
    fn serde_default_form_is_the_milli_integer() {
        let json = serde_json::to_string(&MilliPoints::from_milli(1_750)).unwrap();
        assert_eq!(json, "1750");
        assert!(serde_json::from_str::<MilliPoints>("1.75").is_err());
    }
}

#[cfg(test)]
mod rounding_tests {
    use super::*;

    fn rounded(text: &str) -> i64 {
        MilliPoints::from_decimal_rounded(text).unwrap().as_milli()
    }

    #[test]
    fn decimals_round_to_the_milli_point_half_to_even() {
        assert_eq!(rounded("7.777"), 7_777);
        assert_eq!(rounded("4239.149999999997"), 4_239_150);
        assert_eq!(rounded("5.1000000000000005"), 5_100);
        assert_eq!(rounded("0.0005"), 0);
        assert_eq!(rounded("0.0015"), 2);
        assert_eq!(rounded("0.0025"), 2);
        assert_eq!(rounded("0.00251"), 3);
        assert_eq!(rounded("-0.0015"), -2);
        assert_eq!(rounded("0.00001"), 0);
        assert_eq!(rounded("1.5E+3"), 1_500_000);
        assert_eq!(rounded("1.5e-3"), 2);
        assert_eq!(rounded("12"), 12_000);
        assert_eq!(rounded("+12.5"), 12_500);
        assert_eq!(rounded("0"), 0);
        assert_eq!(rounded("0.000"), 0);
        assert_eq!(rounded("0E+17"), 0);
        assert_eq!(rounded("-0"), 0);
        assert_eq!(rounded("100"), 100_000);
    }

    #[test]
    fn what_is_not_a_number_or_too_large_is_refused() {
        for bad in [
            "", "-", ".", "e5", "1e", "abc", "NaN", "Infinity", "1.2.3", "1,5",
        ] {
            assert!(
                matches!(
                    MilliPoints::from_decimal_rounded(bad),
                    Err(RoundAmountError::NotANumber(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            MilliPoints::from_decimal_rounded("1e300"),
            Err(RoundAmountError::TooLarge(_))
        ));
        assert!(matches!(
            MilliPoints::from_decimal_rounded("9223372036854775.808"),
            Err(RoundAmountError::TooLarge(_))
        ));
    }
}
