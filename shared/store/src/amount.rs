//! Amounts at the store's boundary: the app's points (a JavaScript number) in MongoDB,
//! [`MilliPoints`] in the code.
//!
//! The running mall app reads and writes every amount as a plain JS number of points, which its
//! driver stores as Int32 (whole values) or Double. So:
//!
//! - **read**: Int32, Int64 and Decimal128 are points, exactly. A Double is taken at its shortest
//!   decimal form (the digits JavaScript prints for it: `4239.149999999997`) and rounded to the
//!   milli-point half to even (`4239.150`); rounding works on those decimal digits, never in
//!   floating point. Anything else (a string, null, NaN, an infinity, a value too large) is a
//!   named [`AmountError`], never a guess;
//! - **write**: the Double nearest to `milli / 1000` (one correctly rounded IEEE division of two
//!   exact values), refused unless it reads back as the same milli-point count, so every amount
//!   we write round-trips exactly and the app's `$sum` reports see the points it expects.
//!
//! Use the serde adapters on document fields: `#[serde(with = "crate::amount::points")]`, the
//! `optional_points` and `wallet` variants, or [`to_bson`] when building an update by hand.

use mall_domain::{MilliPoints, RoundAmountError};
use mongodb::bson::{Bson, Decimal128};

/// The largest amount written as a Double (a trillion points, less one milli-point): a decimal
/// of at most 15 significant digits always reads back from its nearest Double (IEEE 754's
/// `DBL_DIG`), and every milli-point count up to here is an exact integer in an f64.
const MAX_WRITABLE_MILLI: i64 = 999_999_999_999_999;

/// Why a stored value is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("the amount is missing")]
    Missing,
    #[error("a {0} is not an amount of points")]
    WrongType(&'static str),
    #[error("{0} is not a finite number of points")]
    NotFinite(String),
    #[error(transparent)]
    Rounding(#[from] RoundAmountError),
    #[error("{0} points is out of range")]
    OutOfRange(String),
    #[error("the wallet holds a negative balance ({0} points)")]
    NegativeWallet(String),
}

/// A stored number of points as milli-points (the read rule above).
pub fn from_bson(value: &Bson) -> Result<MilliPoints, AmountError> {
    let out_of_range = |text: String| AmountError::OutOfRange(text);
    match value {
        Bson::Int32(points) => MilliPoints::from_points(i64::from(*points))
            .map_err(|_| out_of_range(points.to_string())),
        Bson::Int64(points) => {
            MilliPoints::from_points(*points).map_err(|_| out_of_range(points.to_string()))
        }
        Bson::Double(points) if points.is_finite() => {
            // Rust's Display of an f64 is its shortest round-trip decimal form, without exponent.
            Ok(MilliPoints::from_decimal_rounded(&points.to_string())?)
        }
        Bson::Double(points) => Err(AmountError::NotFinite(points.to_string())),
        Bson::Decimal128(points) => from_decimal128(points),
        Bson::Null | Bson::Undefined => Err(AmountError::Missing),
        other => Err(AmountError::WrongType(type_name(other))),
    }
}

fn from_decimal128(points: &Decimal128) -> Result<MilliPoints, AmountError> {
    let text = points.to_string();
    let lower = text.to_ascii_lowercase();
    if lower.contains("nan") || lower.contains("inf") {
        return Err(AmountError::NotFinite(text));
    }
    Ok(MilliPoints::from_decimal_rounded(&text)?)
}

/// An amount as the app stores it: the nearest Double to its points (the write rule above).
pub fn to_f64(amount: MilliPoints) -> Result<f64, AmountError> {
    let milli = amount.as_milli();
    if !(-MAX_WRITABLE_MILLI..=MAX_WRITABLE_MILLI).contains(&milli) {
        return Err(AmountError::OutOfRange(amount.to_string()));
    }
    #[allow(clippy::cast_precision_loss)] // exact: |milli| < 10^15 < 2^53
    let points = milli as f64 / 1000.0;
    // Guaranteed by the bound; checked all the same, since an amount must never drift.
    if from_bson(&Bson::Double(points)) != Ok(amount) {
        return Err(AmountError::OutOfRange(amount.to_string()));
    }
    Ok(points)
}

/// An amount as a BSON Double of points, for updates built by hand.
pub fn to_bson(amount: MilliPoints) -> Result<Bson, AmountError> {
    to_f64(amount).map(Bson::Double)
}

/// A wallet balance as stored: an amount that is never negative.
pub fn wallet_from_bson(value: &Bson) -> Result<MilliPoints, AmountError> {
    let balance = from_bson(value)?;
    if balance.is_negative() {
        return Err(AmountError::NegativeWallet(balance.to_string()));
    }
    Ok(balance)
}

/// A wallet as the app reads it: a customer whose `points` were never written (or are null)
/// has 0, mongoose's default; anything else as [`wallet_from_bson`].
pub fn wallet_or_default(value: &Bson) -> Result<MilliPoints, AmountError> {
    match value {
        Bson::Null | Bson::Undefined => Ok(MilliPoints::ZERO),
        other => wallet_from_bson(other),
    }
}

fn type_name(value: &Bson) -> &'static str {
    match value {
        Bson::String(_) => "string",
        Bson::Boolean(_) => "boolean",
        Bson::Document(_) => "document",
        Bson::Array(_) => "array",
        Bson::ObjectId(_) => "ObjectId",
        Bson::DateTime(_) => "date",
        _ => "non-numeric value",
    }
}

/// `#[serde(with = "crate::amount::points")]` on a [`MilliPoints`] field.
pub mod points {
    use super::*;
    use serde::{de::Error as _, ser::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(amount: &MilliPoints, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(to_f64(*amount).map_err(S::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MilliPoints, D::Error> {
        from_bson(&Bson::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// `#[serde(with = "crate::amount::wallet")]` on a wallet balance: never negative.
pub mod wallet {
    use super::*;
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(amount: &MilliPoints, s: S) -> Result<S::Ok, S::Error> {
        super::points::serialize(amount, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MilliPoints, D::Error> {
        wallet_from_bson(&Bson::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// `#[serde(default, with = "crate::amount::optional_points", skip_serializing_if = …)]`.
pub mod optional_points {
    use super::*;
    use serde::{de::Error as _, ser::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(amount: &Option<MilliPoints>, s: S) -> Result<S::Ok, S::Error> {
        match amount {
            Some(amount) => s.serialize_f64(to_f64(*amount).map_err(S::Error::custom)?),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MilliPoints>, D::Error> {
        match Bson::deserialize(d)? {
            Bson::Null | Bson::Undefined => Ok(None),
            value => from_bson(&value).map(Some).map_err(D::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn milli(text: &str) -> MilliPoints {
        text.parse().unwrap()
    }

    #[test]
    fn whole_numbers_of_every_integer_type_are_points() {
        assert_eq!(from_bson(&Bson::Int32(5000)), Ok(milli("5000")));
        assert_eq!(from_bson(&Bson::Int64(-7)), Ok(milli("-7")));
        assert_eq!(from_bson(&Bson::Double(5000.0)), Ok(milli("5000")));
    }

    #[test]
    fn doubles_the_app_wrote_round_to_the_milli_point_half_to_even() {
        assert_eq!(
            from_bson(&Bson::Double(4239.149999999997)),
            Ok(milli("4239.15"))
        );
        assert_eq!(
            from_bson(&Bson::Double(5.1000000000000005)),
            Ok(milli("5.1"))
        );
        assert_eq!(
            from_bson(&Bson::Double(23.849999999999998)),
            Ok(milli("23.85"))
        );
        assert_eq!(from_bson(&Bson::Double(0.0005)), Ok(milli("0")));
        assert_eq!(from_bson(&Bson::Double(0.0015)), Ok(milli("0.002")));
        assert_eq!(from_bson(&Bson::Double(-0.0025)), Ok(milli("-0.002")));
    }

    #[test]
    fn decimal128_is_read_exactly() {
        let d = |t: &str| Bson::Decimal128(Decimal128::from_str(t).unwrap());
        assert_eq!(from_bson(&d("12.345")), Ok(milli("12.345")));
        assert_eq!(from_bson(&d("1.5E+3")), Ok(milli("1500")));
        assert_eq!(from_bson(&d("0.00050")), Ok(milli("0")));
        assert!(matches!(
            from_bson(&d("NaN")),
            Err(AmountError::NotFinite(_))
        ));
    }

    #[test]
    fn anything_else_is_a_named_error() {
        assert_eq!(
            from_bson(&Bson::String("5".into())),
            Err(AmountError::WrongType("string"))
        );
        assert_eq!(from_bson(&Bson::Null), Err(AmountError::Missing));
        assert!(matches!(
            from_bson(&Bson::Double(f64::NAN)),
            Err(AmountError::NotFinite(_))
        ));
        assert!(matches!(
            from_bson(&Bson::Double(f64::INFINITY)),
            Err(AmountError::NotFinite(_))
        ));
        assert!(matches!(
            from_bson(&Bson::Double(1e300)),
            Err(AmountError::Rounding(RoundAmountError::TooLarge(_)))
        ));
        assert!(matches!(
            from_bson(&Bson::Int64(i64::MAX)),
            Err(AmountError::OutOfRange(_))
        ));
        assert!(matches!(
            wallet_from_bson(&Bson::Double(-0.5)),
            Err(AmountError::NegativeWallet(_))
        ));
        // A wallet never written is mongoose's default, 0; a required amount is not optional.
        assert_eq!(wallet_or_default(&Bson::Null), Ok(MilliPoints::ZERO));
        assert_eq!(wallet_from_bson(&Bson::Null), Err(AmountError::Missing));
    }

    #[test]
    fn writes_the_nearest_double_of_the_points() {
        assert_eq!(to_f64(milli("0.875")), Ok(0.875));
        assert_eq!(to_f64(milli("4239.15")), Ok(4239.15));
        assert_eq!(to_f64(milli("0.1")), Ok(0.1));
        assert!(to_f64(MilliPoints::from_milli(i64::MAX)).is_err());
        assert!(to_f64(MilliPoints::from_milli(MAX_WRITABLE_MILLI + 1)).is_err());
        assert_eq!(
            to_f64(MilliPoints::from_milli(MAX_WRITABLE_MILLI)),
            Ok(999_999_999_999.999)
        );
    }

    proptest! {
        #[test]
        fn every_written_amount_reads_back_exactly(m in -MAX_WRITABLE_MILLI..=MAX_WRITABLE_MILLI) {
            let amount = MilliPoints::from_milli(m);
            let written = to_bson(amount).unwrap();
            prop_assert_eq!(from_bson(&written), Ok(amount));
        }

        #[test]
        fn reading_a_double_is_rounding_its_exact_decimal(m in -(1i64 << 40)..(1i64 << 40), micro in 0i64..1000) {
            // A value between two milli-points, written by the app in floating point.
            #[allow(clippy::cast_precision_loss)]
            let x = (m as f64) / 1000.0 + (micro as f64) / 1_000_000.0;
            let read = from_bson(&Bson::Double(x)).unwrap().as_milli();
            #[allow(clippy::cast_precision_loss)]
            let scaled = x * 1000.0;
            // Never more than half a milli-point (plus the double's own error) away.
            #[allow(clippy::cast_precision_loss)]
            let distance = (read as f64 - scaled).abs();
            prop_assert!(distance <= 0.5 + scaled.abs() * 1e-15, "{x} read as {read}");
        }
    }
}
