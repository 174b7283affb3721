//! The admin's reward settings as stored (`rewardsettings`, written only by the app) and as we
//! keep a copy of them in each job of the current economy (`payload.settings`, in the same
//! shape), converted to and from the domain's [`RawSettings`] / [`AppSettings`].
//!
//! Guarantees: the settings are read, never written, by us; several documents mean the oldest by
//! `_id`; none means the app's defaults; a document is read field by field
//! ([`RawSettings::read`]) — never a blocked checkout, never more than R paid, never a gift the
//! admin may have switched off — with every unusable field named (for the log, a metric and
//! `mall cutover check`).

use mall_domain::{AppSettings, Level, RawSettings, RawValue, SettingsProblem};
use mongodb::bson::{doc, Bson, Document};

use crate::collections;
use crate::error::StoreError;

/// The settings a checkout or a job uses, and what was wrong with the stored document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsReading {
    /// What applies: the document's settings read field by field (the app's defaults for the
    /// shares when they cannot be used as a group, no gift where a gift's field cannot be used).
    pub settings: AppSettings,
    /// A settings document was found.
    pub found: bool,
    /// Every field that could not be used.
    pub problems: Vec<SettingsProblem>,
}

impl SettingsReading {
    /// Reads a `rewardsettings` document (or its absence).
    pub fn of(document: Option<&Document>) -> Self {
        let Some(document) = document else {
            return SettingsReading {
                settings: AppSettings::app_defaults(),
                found: false,
                problems: vec![],
            };
        };
        let read = raw_settings(document).read();
        SettingsReading {
            settings: read.settings,
            found: true,
            problems: read.problems,
        }
    }

    /// Logs the fields that cannot be used (a checkout or a job still goes through; the
    /// functions count it).
    pub fn report_problems(&self) {
        if self.problems.is_empty() {
            return;
        }
        let problems: Vec<String> = self.problems.iter().map(ToString::to_string).collect();
        tracing::warn!(
            ?problems,
            "fields of the reward settings cannot be used: the shares' defaults apply if a share is among them, and no gift where a gift's field is"
        );
    }
}

/// The stored document's fields as the domain reads them.
pub fn raw_settings(document: &Document) -> RawSettings {
    RawSettings::from_fields(|name| raw_value(document.get(name)))
}

fn raw_value(value: Option<&Bson>) -> RawValue {
    match value {
        None => RawValue::Missing,
        Some(Bson::Null | Bson::Undefined) => RawValue::Null,
        // Rust prints a double at its shortest round-trip form, the digits JavaScript prints.
        Some(Bson::Double(x)) => RawValue::Number(x.to_string()),
        Some(Bson::Int32(n)) => RawValue::Number(n.to_string()),
        Some(Bson::Int64(n)) => RawValue::Number(n.to_string()),
        Some(Bson::Decimal128(d)) => RawValue::Number(d.to_string()),
        Some(Bson::Boolean(b)) => RawValue::Bool(*b),
        Some(Bson::Document(fields)) => RawValue::Document(
            fields
                .iter()
                .map(|(key, value)| (key.clone(), raw_value(Some(value))))
                .collect(),
        ),
        Some(Bson::String(_)) => RawValue::Other("string"),
        Some(Bson::Array(_)) => RawValue::Other("list"),
        Some(_) => RawValue::Other("value of another type"),
    }
}

/// The settings in the app's own shape, as a job keeps the copy it pays by.
pub fn settings_document(settings: &AppSettings) -> Result<Document, StoreError> {
    let points =
        |amount| crate::amount::to_bson(amount).map_err(|e| StoreError::Unreadable(e.to_string()));
    let mut level_gifts = Document::new();
    for level in Level::ALL {
        let amount = settings.level_gifts.of(level);
        if !amount.is_zero() {
            level_gifts.insert(level.to_string(), points(amount)?);
        }
    }
    Ok(doc! {
        "treeShare": settings.tree_share.to_f64(),
        "giftsShare": settings.gifts_share.to_f64(),
        "appShare": settings.app_share.to_f64(),
        "firstPaymentReferral": settings.referral_share.to_f64(),
        "signupPoints": {
            "enabled": settings.signup_gift.is_some(),
            "amount": points(settings.signup_gift.unwrap_or_default())?,
        },
        "levelGifts": level_gifts,
        "enableLevelGifts": settings.level_gifts_enabled,
    })
}

/// The aggregation stages that bring the settings document (the oldest) into a pipeline's
/// document as `field` (a list of at most one).
pub(crate) fn lookup_settings(field: &str) -> Document {
    doc! {"$lookup": {
        "from": collections::REWARD_SETTINGS,
        "pipeline": [{"$sort": {"_id": 1}}, {"$limit": 1}],
        "as": field,
    }}
}

#[cfg(test)]
mod tests {
    use super::*;
    use mall_domain::MilliPoints;

    #[test]
    fn the_apps_document_reads_as_its_defaults_and_round_trips() {
        let stored = doc! {
            "levelGifts": {"B": 10, "D": 20, "F": 30, "H": 40, "J": 50},
            "firstPaymentReferral": 0.05, "treeShare": 0.5, "giftsShare": 0.15, "appShare": 0.3,
            "signupPoints": {"enabled": true, "amount": 50}, "enableLevelGifts": true,
        };
        let reading = SettingsReading::of(Some(&stored));
        assert!(reading.problems.is_empty());
        assert_eq!(reading.settings, AppSettings::app_defaults());
        let copy = settings_document(&reading.settings).unwrap();
        assert_eq!(SettingsReading::of(Some(&copy)).settings, reading.settings);
    }

    #[test]
    fn an_unusable_document_falls_back_to_the_defaults_and_names_the_field() {
        let stored = doc! {"treeShare": "half", "firstPaymentReferral": 0.1};
        let reading = SettingsReading::of(Some(&stored));
        assert_eq!(reading.settings, AppSettings::app_defaults());
        assert_eq!(reading.problems.len(), 1);
        assert_eq!(reading.problems[0].field, "treeShare");
        let none = SettingsReading::of(None);
        assert!(!none.found && none.problems.is_empty());
    }

    #[test]
    fn a_disabled_signup_gift_round_trips() {
        let settings = AppSettings {
            signup_gift: None,
            ..AppSettings::app_defaults()
        };
        let copy = settings_document(&settings).unwrap();
        assert_eq!(SettingsReading::of(Some(&copy)).settings, settings);
        let zero = AppSettings {
            signup_gift: Some(MilliPoints::ZERO),
            ..AppSettings::app_defaults()
        };
        // A gift of 0 is no gift, as the app reads `amount > 0`.
        let copy = settings_document(&zero).unwrap();
        assert_eq!(SettingsReading::of(Some(&copy)).settings, settings);
    }
}
