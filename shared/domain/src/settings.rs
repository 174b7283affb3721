//! The admin's reward settings (the app's `rewardsettings` document, APP-DATA "The app today"),
//! read as they are meant, and the checkout's split of R by them.
//!
//! Guarantees:
//! - a [`Share`] is the exact decimal the admin stored (a JavaScript number taken at its shortest
//!   decimal form), and `floor(R × share)` is computed exactly in integers, never in floating
//!   point;
//! - values mean what they say: a configured 0 is 0 (the app's `value || default` is a defect we
//!   do not copy), a missing field takes the app's default;
//! - [`RawSettings::read`] reads the document field by field as the app reads each field: the
//!   four shares as one group, which falls back to the app's defaults when any of them cannot be
//!   used or tree, gifts and direct-referral shares add up to more than 1 — so
//!   [`AppSettings::split`] never pays more than R; every other field on its own, an unusable
//!   one paying no gift. Every field it cannot use is named.

use std::cmp::Ordering;
use std::fmt;

use crate::level::{Level, LevelGifts};
use crate::money::{DecimalText, MilliPoints};
use crate::reward::RewardSplit;

/// The finest scale a share keeps exactly: 10⁻³⁸. A stored double that needs more decimals is
/// below 10⁻²¹, and `floor(R × share)` is 0 for every amount either way.
const MAX_SCALE: u32 = 38;

/// A share of R in `0..=1`, kept as the exact decimal `digits / 10^scale`.
#[derive(Clone, Copy, Debug)]
pub struct Share {
    digits: u64,
    scale: u32,
}

impl PartialEq for Share {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Share {}
impl PartialOrd for Share {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Share {
    fn cmp(&self, other: &Self) -> Ordering {
        self.scaled().cmp(&other.scaled())
    }
}

/// Why a stored value is not a share.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    #[error("{0:?} is not a number")]
    NotANumber(String),
    #[error("{0} is not a share between 0 and 1")]
    OutOfRange(String),
}

impl Share {
    pub const ZERO: Share = Share {
        digits: 0,
        scale: 0,
    };

    /// A share of `numerator / 100` (tests and the app's defaults).
    pub const fn percent(numerator: u64) -> Share {
        Share {
            digits: numerator,
            scale: 2,
        }
    }

    /// Parses a decimal number (`0.05`, `1`, `5E-2`, as a double or a Decimal128 prints) that
    /// must lie in `0..=1`.
    pub fn parse(text: &str) -> Result<Share, ShareError> {
        let not_a_number = || ShareError::NotANumber(text.to_owned());
        let out_of_range = || ShareError::OutOfRange(text.to_owned());
        let DecimalText {
            negative,
            whole,
            frac,
            exponent,
        } = DecimalText::parse(text).ok_or_else(not_a_number)?;
        let all: String = whole.chars().chain(frac.chars()).collect();
        let significant = all.trim_start_matches('0');
        if significant.trim_end_matches('0').is_empty() {
            return Ok(Share::ZERO);
        }
        if negative {
            return Err(out_of_range());
        }
        // value = all / 10^(frac.len() - exponent)
        let mut scale =
            i64::try_from(frac.len()).map_err(|_| not_a_number())? - i64::from(exponent);
        let mut digits: &str = significant;
        // Trailing zeros say nothing; drop them (and keep the scale non-negative).
        while scale > 0 && digits.ends_with('0') {
            digits = &digits[..digits.len() - 1];
            scale -= 1;
        }
        if scale < 0 {
            // A whole number of at least 10: more than 1.
            return Err(out_of_range());
        }
        // Too fine to keep: drop the least significant digits (a floor of a value < 10⁻²¹).
        let max_scale = i64::from(MAX_SCALE);
        if scale > max_scale {
            let drop = usize::try_from(scale - max_scale).unwrap_or(usize::MAX);
            digits = digits
                .get(..digits.len().saturating_sub(drop))
                .unwrap_or("");
            scale = max_scale;
        }
        let mut kept = digits.to_owned();
        // More than 19 significant digits cannot come from a double; keep the first 19 (floor).
        while kept.len() > 19 && scale > 0 {
            kept.pop();
            scale -= 1;
        }
        let digits: u64 = if kept.is_empty() {
            0
        } else {
            kept.parse().map_err(|_| out_of_range())?
        };
        let share = Share {
            digits,
            scale: u32::try_from(scale).map_err(|_| out_of_range())?,
        };
        if share.scaled() > Share::one_scaled() {
            return Err(out_of_range());
        }
        Ok(share)
    }

    /// The share times 10³⁸, exactly (a share is at most 1, so this fits).
    fn scaled(self) -> u128 {
        u128::from(self.digits).saturating_mul(10u128.pow(MAX_SCALE - self.scale.min(MAX_SCALE)))
    }

    fn one_scaled() -> u128 {
        10u128.pow(MAX_SCALE)
    }

    /// `floor(amount × share)`, exactly; 0 for a negative amount.
    pub fn of(self, amount: MilliPoints) -> MilliPoints {
        let Ok(milli) = u128::try_from(amount.as_milli()) else {
            return MilliPoints::ZERO;
        };
        // milli < 2⁶³ and digits < 2⁶⁴: the product fits in 128 bits.
        let product = milli * u128::from(self.digits);
        let floored = product / 10u128.pow(self.scale);
        MilliPoints::from_milli(i64::try_from(floored).unwrap_or(i64::MAX))
    }

    /// This share as a double (the app's type), exactly the double it was read from.
    pub fn to_f64(self) -> f64 {
        self.to_string().parse().unwrap_or(0.0)
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.digits == 0 {
            return write!(f, "0");
        }
        let digits = self.digits.to_string();
        let scale = usize::try_from(self.scale).unwrap_or(0);
        if scale == 0 {
            return write!(f, "{digits}");
        }
        if digits.len() > scale {
            let (whole, frac) = digits.split_at(digits.len() - scale);
            write!(f, "{whole}.{frac}")
        } else {
            write!(f, "0.{}{digits}", "0".repeat(scale - digits.len()))
        }
    }
}

/// The admin's settings, validated: what a checkout of the current economy splits by and what
/// its job pays from the gifts pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppSettings {
    pub tree_share: Share,
    pub gifts_share: Share,
    /// The mall's share as configured. Informational: the app's part of R is what the other
    /// three leave, so the four always add up to R.
    pub app_share: Share,
    /// `firstPaymentReferral`: the direct-referral share D.
    pub referral_share: Share,
    /// The signup gift paid at a first purchase, when enabled.
    pub signup_gift: Option<MilliPoints>,
    pub level_gifts: LevelGifts,
    pub level_gifts_enabled: bool,
}

impl AppSettings {
    /// What the app uses when there is no settings document.
    pub fn app_defaults() -> Self {
        AppSettings {
            tree_share: Share::percent(50),
            gifts_share: Share::percent(15),
            app_share: Share::percent(30),
            referral_share: Share::percent(5),
            signup_gift: Some(MilliPoints::from_milli(50_000)),
            level_gifts: LevelGifts::app_defaults(),
            level_gifts_enabled: true,
        }
    }

    /// The split of `reward`: tree, gifts and direct-referral share floored, the app the rest.
    /// Never more than R: resolved settings share out at most 1.
    pub fn split(&self, reward: MilliPoints) -> RewardSplit {
        let tree = self.tree_share.of(reward);
        let gifts = self.gifts_share.of(reward);
        let referral = self.referral_share.of(reward);
        let app = MilliPoints::from_milli(
            reward
                .as_milli()
                .saturating_sub(tree.as_milli())
                .saturating_sub(gifts.as_milli())
                .saturating_sub(referral.as_milli())
                .max(0),
        );
        RewardSplit {
            app,
            gifts,
            tree,
            referral,
        }
    }

    /// The level gifts a job pays, or none when they are turned off.
    pub fn payable_level_gifts(&self) -> Option<LevelGifts> {
        self.level_gifts_enabled.then_some(self.level_gifts)
    }
}

/// One stored value as the settings reader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawValue {
    /// The field is not there: the app's default.
    Missing,
    /// `null` (or `undefined`): falsy, as the app reads it.
    Null,
    /// A number, as its shortest decimal text.
    Number(String),
    Bool(bool),
    /// A sub-document, field by field.
    Document(Vec<(String, RawValue)>),
    /// Anything else, named by its type (`string`, `array`, …).
    Other(&'static str),
}

/// A field the settings reader cannot use, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsProblem {
    pub field: String,
    pub problem: String,
}

impl fmt::Display for SettingsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// The `rewardsettings` document's fields, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSettings {
    pub tree_share: RawValue,
    pub gifts_share: RawValue,
    pub app_share: RawValue,
    pub first_payment_referral: RawValue,
    pub signup_points: RawValue,
    pub level_gifts: RawValue,
    pub enable_level_gifts: RawValue,
}

/// The settings a document gives, read field by field, and every field that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsRead {
    pub settings: AppSettings,
    /// Each unusable field, named; the settings say what applies instead.
    pub problems: Vec<SettingsProblem>,
}

impl RawSettings {
    /// The document's fields by their stored names (`treeShare`, `signupPoints`, …), each as
    /// `field` finds it: one mapping for the stored document and the simulator's JSON.
    pub fn from_fields(field: impl Fn(&str) -> RawValue) -> RawSettings {
        RawSettings {
            tree_share: field("treeShare"),
            gifts_share: field("giftsShare"),
            app_share: field("appShare"),
            first_payment_referral: field("firstPaymentReferral"),
            signup_points: field("signupPoints"),
            level_gifts: field("levelGifts"),
            enable_level_gifts: field("enableLevelGifts"),
        }
    }

    /// Reads the document field by field, as the app reads each field (APP-DATA "The app
    /// today": `x || default` for the shares, `enabled && amount > 0` for the signup gift,
    /// `enableLevelGifts && levelGifts[letter] > 0` for a level gift), except that a configured
    /// 0 share is 0:
    ///
    /// - the four shares fall back to the app's defaults as one group when any of them cannot be
    ///   used or tree + gifts + direct referral exceed 1 (so a split never pays more than R);
    ///   a missing or null share is its default;
    /// - every other field on its own: a missing field takes the app's default; `null`, `false`
    ///   and 0 switch a gift off (as the app reads them); a value that cannot be used (a
    ///   negative amount, a string, a bad letter) is named and pays no gift — never a gift the
    ///   admin may have switched off.
    pub fn read(&self) -> SettingsRead {
        let defaults = AppSettings::app_defaults();
        let mut problems = Vec::new();
        let mut share_problems = Vec::new();
        let mut share = |field: &str, raw: &RawValue, default: Share| match raw {
            RawValue::Missing | RawValue::Null => default,
            RawValue::Number(text) => Share::parse(text).unwrap_or_else(|e| {
                share_problems.push(problem(field, e.to_string()));
                default
            }),
            other => {
                share_problems.push(problem(
                    field,
                    format!("{} is not a number", describe(other)),
                ));
                default
            }
        };
        let mut shares = (
            share("treeShare", &self.tree_share, defaults.tree_share),
            share("giftsShare", &self.gifts_share, defaults.gifts_share),
            share("appShare", &self.app_share, defaults.app_share),
            share(
                "firstPaymentReferral",
                &self.first_payment_referral,
                defaults.referral_share,
            ),
        );
        let (tree, gifts, _, referral) = shares;
        if tree.scaled() + gifts.scaled() + referral.scaled() > Share::one_scaled() {
            share_problems.push(problem(
                "treeShare + giftsShare + firstPaymentReferral",
                format!("{tree} + {gifts} + {referral} is more than 1"),
            ));
        }
        if !share_problems.is_empty() {
            shares = (
                defaults.tree_share,
                defaults.gifts_share,
                defaults.app_share,
                defaults.referral_share,
            );
            problems.append(&mut share_problems);
        }
        let (tree_share, gifts_share, app_share, referral_share) = shares;

        let signup_gift = match &self.signup_points {
            RawValue::Missing => defaults.signup_gift,
            RawValue::Document(fields) => {
                let enabled = switch(&field_of(fields, "enabled"), true).unwrap_or_else(|e| {
                    problems.push(problem("signupPoints.enabled", e));
                    false
                });
                let amount = gift(&field_of(fields, "amount"), defaults.signup_gift)
                    .unwrap_or_else(|e| {
                        problems.push(problem("signupPoints.amount", e));
                        None
                    });
                amount.filter(|_| enabled)
            }
            RawValue::Null => {
                // The app's worker throws on it at a first purchase (after writing the other
                // entries): nothing we could copy. No gift.
                problems.push(problem("signupPoints", "null: no signup gift".into()));
                None
            }
            other => {
                problems.push(problem(
                    "signupPoints",
                    format!("{} is not a sub-document: no signup gift", describe(other)),
                ));
                None
            }
        };
        let level_gifts = match &self.level_gifts {
            RawValue::Missing => defaults.level_gifts,
            RawValue::Null => LevelGifts::default(),
            RawValue::Document(fields) => {
                let mut gifts = LevelGifts::default();
                for (key, value) in fields {
                    let field = format!("levelGifts.{key}");
                    match key.parse::<Level>() {
                        Err(_) => {
                            problems.push(problem(&field, "is not a letter from A to J".into()))
                        }
                        Ok(level) => match gift(value, None) {
                            Ok(Some(points)) => gifts.set(level, points),
                            Ok(None) => {}
                            Err(e) => problems.push(problem(&field, e)),
                        },
                    }
                }
                gifts
            }
            other => {
                problems.push(problem(
                    "levelGifts",
                    format!(
                        "{} is not a sub-document of points: no level gifts",
                        describe(other)
                    ),
                ));
                LevelGifts::default()
            }
        };
        let level_gifts_enabled = switch(&self.enable_level_gifts, true).unwrap_or_else(|e| {
            problems.push(problem("enableLevelGifts", e));
            false
        });
        SettingsRead {
            settings: AppSettings {
                tree_share,
                gifts_share,
                app_share,
                referral_share,
                signup_gift,
                level_gifts,
                level_gifts_enabled,
            },
            problems,
        }
    }

    /// The document's settings when every field can be used (a copy we wrote, for one); else
    /// every field that cannot.
    pub fn resolve(&self) -> Result<AppSettings, Vec<SettingsProblem>> {
        let read = self.read();
        if read.problems.is_empty() {
            Ok(read.settings)
        } else {
            Err(read.problems)
        }
    }
}

fn problem(field: &str, text: String) -> SettingsProblem {
    SettingsProblem {
        field: field.to_owned(),
        problem: text,
    }
}

fn field_of(fields: &[(String, RawValue)], name: &str) -> RawValue {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map_or(RawValue::Missing, |(_, value)| value.clone())
}

/// A switch as the app reads it: missing is its default; `null`, `false` and 0 are off; `true`
/// and 1 are on (mongoose casts 0 and 1 to booleans); anything else is unusable.
fn switch(raw: &RawValue, default: bool) -> Result<bool, String> {
    match raw {
        RawValue::Missing => Ok(default),
        RawValue::Null => Ok(false),
        RawValue::Bool(value) => Ok(*value),
        RawValue::Number(text) => match MilliPoints::from_decimal_rounded(text) {
            Ok(n) if n.is_zero() => Ok(false),
            Ok(n) if n.as_milli() == 1000 => Ok(true),
            _ => Err(format!("{text} is not true or false: off")),
        },
        other => Err(format!("{} is not true or false: off", describe(other))),
    }
}

/// A gift's amount as the app reads it (`amount > 0`): missing is `default`; `null`, `false`
/// and 0 are no gift; a positive number is the gift; anything else is unusable (no gift).
fn gift(raw: &RawValue, default: Option<MilliPoints>) -> Result<Option<MilliPoints>, String> {
    match raw {
        RawValue::Missing => Ok(default),
        RawValue::Null | RawValue::Bool(false) => Ok(None),
        RawValue::Number(text) => match MilliPoints::from_decimal_rounded(text) {
            Ok(points) if points.is_zero() => Ok(None),
            Ok(points) if !points.is_negative() => Ok(Some(points)),
            Ok(_) => Err(format!("{text} is below zero: no gift")),
            Err(e) => Err(format!("{e}: no gift")),
        },
        other => Err(format!("{} is not a number: no gift", describe(other))),
    }
}

fn describe(value: &RawValue) -> String {
    match value {
        RawValue::Missing => "nothing".into(),
        RawValue::Null => "null".into(),
        RawValue::Number(text) => text.clone(),
        RawValue::Bool(b) => b.to_string(),
        RawValue::Document(_) => "a sub-document".into(),
        RawValue::Other(kind) => format!("a {kind}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn points(text: &str) -> MilliPoints {
        text.parse().unwrap()
    }

    fn number(text: &str) -> RawValue {
        RawValue::Number(text.to_owned())
    }

    /// The document the app writes with its defaults (the shape in the team's dump).
    fn app_default_document() -> RawSettings {
        RawSettings {
            tree_share: number("0.5"),
            gifts_share: number("0.15"),
            app_share: number("0.3"),
            first_payment_referral: number("0.05"),
            signup_points: RawValue::Document(vec![
                ("enabled".into(), RawValue::Bool(true)),
                ("amount".into(), number("50")),
            ]),
            level_gifts: RawValue::Document(
                [
                    ("B", "10"),
                    ("D", "20"),
                    ("F", "30"),
                    ("H", "40"),
                    ("J", "50"),
                ]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), number(v)))
                .collect(),
            ),
            enable_level_gifts: RawValue::Bool(true),
        }
    }

    fn missing() -> RawSettings {
        RawSettings {
            tree_share: RawValue::Missing,
            gifts_share: RawValue::Missing,
            app_share: RawValue::Missing,
            first_payment_referral: RawValue::Missing,
            signup_points: RawValue::Missing,
            level_gifts: RawValue::Missing,
            enable_level_gifts: RawValue::Missing,
        }
    }

    #[test]
    fn shares_parse_exactly_and_floor_exactly() {
        assert_eq!(Share::parse("0.05").unwrap(), Share::percent(5));
        assert_eq!(Share::parse("5E-2").unwrap(), Share::percent(5));
        assert_eq!(Share::parse("1").unwrap(), Share::percent(100));
        assert_eq!(Share::parse("0").unwrap(), Share::ZERO);
        assert_eq!(Share::parse("-0.0").unwrap(), Share::ZERO);
        // 0.15 of 14.5 points is 2.175 exactly (a double product would be 2.1750000000000003).
        assert_eq!(Share::percent(15).of(points("14.5")), points("2.175"));
        // floor: 0.05 × 0.019 = 0.00095 → 0.000.
        assert_eq!(Share::percent(5).of(points("0.019")), MilliPoints::ZERO);
        assert_eq!(
            Share::parse("0.1").unwrap().of(points("33.333")),
            points("3.333")
        );
        assert_eq!(
            Share::parse("0.30000000000000004").unwrap().to_string(),
            "0.30000000000000004"
        );
    }

    #[test]
    fn shares_outside_zero_to_one_are_refused() {
        for bad in ["1.0000001", "2", "10", "-0.1", "1e1"] {
            assert!(
                matches!(Share::parse(bad), Err(ShareError::OutOfRange(_))),
                "{bad}"
            );
        }
        for bad in ["", "abc", "0.1.2", "NaN", "inf", "1e"] {
            assert!(
                matches!(Share::parse(bad), Err(ShareError::NotANumber(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_app_default_document_resolves_to_the_app_defaults() {
        assert_eq!(
            app_default_document().resolve(),
            Ok(AppSettings::app_defaults())
        );
        assert_eq!(missing().resolve(), Ok(AppSettings::app_defaults()));
    }

    #[test]
    fn a_configured_zero_is_zero() {
        let settings = RawSettings {
            first_payment_referral: number("0"),
            signup_points: RawValue::Document(vec![("amount".into(), number("0"))]),
            level_gifts: RawValue::Document(vec![("B".into(), number("0"))]),
            ..app_default_document()
        }
        .resolve()
        .unwrap();
        assert_eq!(settings.referral_share, Share::ZERO);
        // A gift of 0 is no gift (the app's `amount > 0`).
        assert_eq!(settings.signup_gift, None);
        assert_eq!(settings.level_gifts.of(Level::B), MilliPoints::ZERO);
        let split = settings.split(points("100"));
        assert_eq!(split.referral, MilliPoints::ZERO);
        assert_eq!(split.app, points("35"));
    }

    #[test]
    fn signup_disabled_pays_no_gift() {
        let settings = RawSettings {
            signup_points: RawValue::Document(vec![("enabled".into(), RawValue::Bool(false))]),
            ..missing()
        }
        .resolve()
        .unwrap();
        assert_eq!(settings.signup_gift, None);
    }

    #[test]
    fn every_unusable_field_is_named() {
        let problems = RawSettings {
            tree_share: number("0.9"),
            gifts_share: RawValue::Other("string"),
            first_payment_referral: number("0.2"),
            signup_points: RawValue::Document(vec![("amount".into(), number("-5"))]),
            level_gifts: RawValue::Document(vec![
                ("K".into(), number("1")),
                ("B".into(), RawValue::Other("string")),
            ]),
            enable_level_gifts: number("2"),
            ..missing()
        }
        .resolve()
        .unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "giftsShare",
                "treeShare + giftsShare + firstPaymentReferral",
                "signupPoints.amount",
                "levelGifts.K",
                "levelGifts.B",
                "enableLevelGifts",
            ]
        );
    }

    /// The case: the admin page accepted `firstPaymentReferral: 0.4`, so the shares
    /// (0.5 + 0.15 + 0.4) exceed 1 and fall back to the defaults as a group; the admin's
    /// switches still hold, field by field.
    #[test]
    fn unusable_shares_fall_back_as_a_group_and_the_switches_still_hold() {
        let read = RawSettings {
            first_payment_referral: number("0.4"),
            signup_points: RawValue::Document(vec![("enabled".into(), RawValue::Bool(false))]),
            enable_level_gifts: RawValue::Bool(false),
            ..app_default_document()
        }
        .read();
        let fields: Vec<&str> = read.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["treeShare + giftsShare + firstPaymentReferral"]);
        let defaults = AppSettings::app_defaults();
        let s = &read.settings;
        assert_eq!(
            (s.tree_share, s.gifts_share, s.app_share, s.referral_share),
            (
                defaults.tree_share,
                defaults.gifts_share,
                defaults.app_share,
                defaults.referral_share
            )
        );
        assert_eq!(s.signup_gift, None);
        assert_eq!(s.payable_level_gifts(), None);
        // One unusable share takes the group back to the defaults, the others included.
        let read = RawSettings {
            tree_share: number("0.6"),
            gifts_share: RawValue::Other("string"),
            ..app_default_document()
        }
        .read();
        assert_eq!(read.settings.tree_share, defaults.tree_share);
        assert_eq!(read.problems.len(), 1);
    }

    /// `null`, `false` and 0 read as the app reads them: no gift, nothing to name; a missing
    /// field is the app's default; a null share is its default.
    #[test]
    fn falsy_values_switch_gifts_off_as_the_app_reads_them() {
        for (enabled, amount) in [
            (RawValue::Null, number("50")),
            (RawValue::Bool(true), RawValue::Null),
            (number("0"), number("50")),
            (RawValue::Bool(true), number("0")),
            (RawValue::Bool(false), RawValue::Missing),
        ] {
            let read = RawSettings {
                signup_points: RawValue::Document(vec![
                    ("enabled".into(), enabled.clone()),
                    ("amount".into(), amount.clone()),
                ]),
                ..app_default_document()
            }
            .read();
            assert_eq!(read.settings.signup_gift, None, "{enabled:?} {amount:?}");
            assert!(read.problems.is_empty(), "{:?}", read.problems);
        }
        // Missing fields of the sub-document are the app's defaults (enabled, 50).
        let read = RawSettings {
            signup_points: RawValue::Document(vec![]),
            first_payment_referral: RawValue::Null,
            enable_level_gifts: RawValue::Null,
            level_gifts: RawValue::Document(vec![
                ("B".into(), RawValue::Null),
                ("D".into(), number("20")),
            ]),
            ..app_default_document()
        }
        .read();
        assert!(read.problems.is_empty(), "{:?}", read.problems);
        assert_eq!(read.settings.signup_gift, Some(points("50")));
        assert_eq!(read.settings.referral_share, Share::percent(5));
        assert!(!read.settings.level_gifts_enabled);
        assert_eq!(read.settings.level_gifts.of(Level::B), MilliPoints::ZERO);
        assert_eq!(read.settings.level_gifts.of(Level::D), points("20"));
        // A null sub-document (the app's worker throws on it) and a negative amount pay no gift
        // and are named.
        let read = RawSettings {
            signup_points: RawValue::Null,
            level_gifts: RawValue::Document(vec![("B".into(), number("-10"))]),
            ..app_default_document()
        }
        .read();
        assert_eq!(read.settings.signup_gift, None);
        assert_eq!(read.settings.level_gifts.of(Level::B), MilliPoints::ZERO);
        let fields: Vec<&str> = read.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["signupPoints", "levelGifts.B"]);
    }

    #[test]
    fn split_of_the_app_defaults() {
        let split = AppSettings::app_defaults().split(points("100"));
        assert_eq!(
            (split.tree, split.gifts, split.referral, split.app),
            (points("50"), points("15"), points("5"), points("30"))
        );
    }

    proptest! {
        /// Whatever the shares (each in 0..=1, three of them at most 1 together), the split adds
        /// up to R exactly and never pays a negative app share.
        #[test]
        fn a_split_always_adds_up_to_r(
            (tree, gifts, referral) in (0u64..=10_000)
                .prop_flat_map(|tree| (Just(tree), 0..=10_000 - tree))
                .prop_flat_map(|(tree, gifts)| (Just(tree), Just(gifts), 0..=10_000 - tree - gifts)),
            reward in 0i64..1_000_000_000_000,
        ) {
            let share = |n: u64| Share::parse(&format!("{}", n as f64 / 10_000.0)).unwrap();
            let settings = AppSettings {
                tree_share: share(tree),
                gifts_share: share(gifts),
                referral_share: share(referral),
                ..AppSettings::app_defaults()
            };
            let reward = MilliPoints::from_milli(reward);
            let split = settings.split(reward);
            prop_assert!(!split.app.is_negative());
            prop_assert_eq!(split.total(), Ok(reward));
            prop_assert_eq!(split.tree.as_milli(), reward.as_milli() * i64::try_from(tree).unwrap() / 10_000);
        }

        /// A double's shortest text parses to the share that prints as that text again.
        #[test]
        fn shares_round_trip_as_doubles(x in 0.0f64..=1.0) {
            let share = Share::parse(&x.to_string()).unwrap();
            prop_assert_eq!(share.to_f64(), x);
        }
    }
}
