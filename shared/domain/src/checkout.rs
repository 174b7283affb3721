//! The checkout's pure rules (SPEC §5.1 and §5.2 step 3): the request body and headers turned into
//! validated values before any I/O, and the cart priced from the products' own prices.
//!
//! Everything here either returns a value that is valid by construction or an error whose message
//! can be shown to the client as is: it speaks only of the client's input.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::money::{MilliPoints, MoneyError};

/// Why a request was refused before touching the database (`400 INVALID_REQUEST`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(
        "the request body is larger than {} bytes",
        CheckoutRequest::MAX_BODY_BYTES
    )]
    BodyTooLarge,
    #[error("the request body must be a JSON object")]
    NotAnObject,
    #[error("the request body is not valid: {0}")]
    Body(String),
    #[error(
        "deliveryAddress must be text of 1 to {} characters and at most {} lines, without \
         control characters other than line breaks",
        DeliveryAddress::MAX_CHARS,
        DeliveryAddress::MAX_LINES
    )]
    BadAddress,
    #[error(
        "Idempotency-Key must be {}-{} characters of A-Z, a-z, 0-9, '_' or '-'",
        IdempotencyKey::MIN_LEN,
        IdempotencyKey::MAX_LEN
    )]
    BadIdempotencyKey,
}

/// A delivery address, as the app's profile screen keeps it in `Address`: free text that may
/// span lines (building, street, city). Every line break — `\r\n`, `\r`, `\n`, vertical tab,
/// form feed, NEL (U+0085), LINE and PARAGRAPH SEPARATOR (U+2028, U+2029) — counts alike and is
/// stored as `\n`; each line is trimmed and blank lines dropped; then 1..=500 characters in at
/// most 10 lines, with no other control character.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryAddress(String);

impl DeliveryAddress {
    pub const MAX_CHARS: usize = 500;
    pub const MAX_LINES: usize = 10;

    /// Whether `c` ends a line, in any of the forms a keyboard or a paste may produce.
    fn is_line_break(c: char) -> bool {
        matches!(
            c,
            '\n' | '\r' | '\u{000B}' | '\u{000C}' | '\u{0085}' | '\u{2028}' | '\u{2029}'
        )
    }

    pub fn parse(raw: &str) -> Result<Self, RequestError> {
        let lines: Vec<&str> = raw
            .split(Self::is_line_break)
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect();
        let address = lines.join("\n");
        let chars = address.chars().count();
        let other_control = lines
            .iter()
            .flat_map(|line| line.chars())
            .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'));
        if chars == 0 || chars > Self::MAX_CHARS || lines.len() > Self::MAX_LINES || other_control {
            return Err(RequestError::BadAddress);
        }
        Ok(DeliveryAddress(address))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client's `Idempotency-Key`: 8..=128 characters of `[A-Za-z0-9_-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, RequestError> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        if (Self::MIN_LEN..=Self::MAX_LEN).contains(&raw.len()) && raw.bytes().all(allowed) {
            Ok(IdempotencyKey(raw.to_owned()))
        } else {
            Err(RequestError::BadIdempotencyKey)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The body of `POST /api/cart/checkout`, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckoutRequest {
    pub delivery_address: Option<DeliveryAddress>,
}

/// The body as sent: every field optional, nothing else allowed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CheckoutBody {
    #[serde(default)]
    delivery_address: Option<String>,
}

/// The canonical form a request is fingerprinted in.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CanonicalRequest<'a> {
    version: u8,
    delivery_address: Option<&'a str>,
}

impl CheckoutRequest {
    pub const MAX_BODY_BYTES: usize = 16 * 1024;

    /// Parses a request body. An empty body is a request with no fields.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        if body.len() > Self::MAX_BODY_BYTES {
            return Err(RequestError::BodyTooLarge);
        }
        let text = std::str::from_utf8(body)
            .map_err(|_| RequestError::Body("it is not UTF-8 text".into()))?;
        if text.trim().is_empty() {
            return Ok(CheckoutRequest::default());
        }
        // serde would also read a JSON array as a struct; only an object is a request.
        if !text.trim_start().starts_with('{') {
            return Err(RequestError::NotAnObject);
        }
        let body: CheckoutBody =
            serde_json::from_str(text).map_err(|e| RequestError::Body(e.to_string()))?;
        Ok(CheckoutRequest {
            delivery_address: body
                .delivery_address
                .as_deref()
                .map(DeliveryAddress::parse)
                .transpose()?,
        })
    }

    /// A digest of what the request asks for (not of its bytes): two bodies that differ only in
    /// spacing or key order have the same fingerprint. Stored beside an idempotency key so that
    /// the key reused with another request is refused.
    pub fn fingerprint(&self) -> String {
        let canonical = CanonicalRequest {
            version: 1,
            delivery_address: self.delivery_address.as_ref().map(DeliveryAddress::as_str),
        };
        // Serializing a struct of a number and an optional string cannot fail.
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// A cart line's quantity as stored: a whole number, or something that is not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawQuantity {
    Whole(i64),
    NotWhole,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CartLine<Id> {
    pub product_id: Id,
    pub quantity: RawQuantity,
}

/// A product as the checkout sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer<Id> {
    pub id: Id,
    pub name: String,
    pub price: MilliPoints,
    pub reward_points: MilliPoints,
    pub active: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PricedLine<Id> {
    pub product_id: Id,
    pub name: String,
    pub quantity: i64,
    pub unit_price: MilliPoints,
    pub unit_reward_points: MilliPoints,
    pub line_total: MilliPoints,
}

/// A cart with its total and its reward `R`, ready to be charged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PricedCart<Id> {
    pub lines: Vec<PricedLine<Id>>,
    pub total: MilliPoints,
    pub reward_points: MilliPoints,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError<Id: std::fmt::Debug> {
    #[error("the cart is empty")]
    Empty,
    #[error("some products in the cart are missing or no longer sold")]
    Unavailable(Vec<Id>),
    #[error("a cart quantity is not a whole number from 1 to {}", MAX_QUANTITY)]
    InvalidQuantity(Id),
    #[error("the cart total is too large")]
    Overflow,
    /// The stored cart is not a list of lines with a product id and a quantity.
    #[error("the cart is malformed: {0}")]
    Malformed(String),
}

impl<Id: std::fmt::Debug> From<MoneyError> for CartError<Id> {
    fn from(_: MoneyError) -> Self {
        CartError::Overflow
    }
}

/// The largest quantity of one cart line.
pub const MAX_QUANTITY: i64 = 999;

/// Prices a cart from the products' own prices (any price stored in the cart is ignored):
/// `total = Σ price × quantity`, `R = Σ rewardPoints × quantity`, in checked arithmetic.
/// Checks in order: an empty cart, then missing or inactive products (all of them reported, in
/// cart order), then quantities and overflow.
pub fn price_cart<Id>(
    lines: &[CartLine<Id>],
    offers: &[Offer<Id>],
) -> Result<PricedCart<Id>, CartError<Id>>
where
    Id: Clone + Eq + Hash + std::fmt::Debug,
{
    if lines.is_empty() {
        return Err(CartError::Empty);
    }
    let by_id: HashMap<&Id, &Offer<Id>> = offers.iter().map(|o| (&o.id, o)).collect();

    let mut reported = HashSet::new();
    // A product priced below zero (or rewarding below zero) would lower the total of the other
    // lines: it cannot be sold, whatever its `isActive` says.
    let sellable =
        |o: &&Offer<Id>| o.active && !o.price.is_negative() && !o.reward_points.is_negative();
    let unavailable: Vec<Id> = lines
        .iter()
        .filter(|line| !by_id.get(&line.product_id).is_some_and(sellable))
        .filter(|line| reported.insert(&line.product_id))
        .map(|line| line.product_id.clone())
        .collect();
    if !unavailable.is_empty() {
        return Err(CartError::Unavailable(unavailable));
    }

    let mut priced = Vec::with_capacity(lines.len());
    for line in lines {
        let quantity = match line.quantity {
            RawQuantity::Whole(q) if (1..=MAX_QUANTITY).contains(&q) => q,
            _ => return Err(CartError::InvalidQuantity(line.product_id.clone())),
        };
        let offer = by_id
            .get(&line.product_id)
            .ok_or_else(|| CartError::Unavailable(vec![line.product_id.clone()]))?;
        priced.push(PricedLine {
            product_id: line.product_id.clone(),
            name: offer.name.clone(),
            quantity,
            unit_price: offer.price,
            unit_reward_points: offer.reward_points,
            line_total: offer.price.checked_mul(quantity)?,
        });
    }
    let total = MilliPoints::checked_sum(priced.iter().map(|l| l.line_total))?;
    let reward_points = MilliPoints::checked_sum(
        priced
            .iter()
            .map(|l| l.unit_reward_points.checked_mul(l.quantity))
            .collect::<Result<Vec<_>, _>>()?,
    )?;
    if total.is_negative() || reward_points.is_negative() {
        // A negative price or reward in the catalogue would credit the buyer: refuse it.
        return Err(CartError::Overflow);
    }
    Ok(PricedCart {
        lines: priced,
        total,
        reward_points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(id: u8, price: i64, reward: i64, active: bool) -> Offer<u8> {
        Offer {
            id,
            name: format!("p{id}"),
            price: MilliPoints::from_milli(price),
            reward_points: MilliPoints::from_milli(reward),
            active,
        }
    }

    fn line(id: u8, quantity: i64) -> CartLine<u8> {
        CartLine {
            product_id: id,
            quantity: RawQuantity::Whole(quantity),
        }
    }

    #[test]
    fn prices_from_the_products() {
        let cart = price_cart(
            &[line(1, 2), line(2, 1)],
            &[
                offer(1, 250_000, 25_000, true),
                offer(2, 500_000, 50_000, true),
            ],
        )
        .unwrap();
        assert_eq!(cart.total, MilliPoints::from_milli(1_000_000));
        assert_eq!(cart.reward_points, MilliPoints::from_milli(100_000));
        assert_eq!(cart.lines[0].line_total, MilliPoints::from_milli(500_000));
    }

    #[test]
    fn empty_then_unavailable_then_quantity() {
        assert_eq!(price_cart::<u8>(&[], &[]), Err(CartError::Empty));
        let offers = [offer(1, 1, 1, true), offer(2, 1, 1, false)];
        assert_eq!(
            price_cart(&[line(3, 0), line(2, 1), line(3, 1), line(1, 1)], &offers),
            Err(CartError::Unavailable(vec![3, 2]))
        );
        for bad in [0, -1, 1000] {
            assert_eq!(
                price_cart(&[line(1, bad)], &offers),
                Err(CartError::InvalidQuantity(1))
            );
        }
        let fractional = CartLine {
            product_id: 1,
            quantity: RawQuantity::NotWhole,
        };
        assert_eq!(
            price_cart(&[fractional], &offers),
            Err(CartError::InvalidQuantity(1))
        );
    }

    #[test]
    fn totals_refuse_to_overflow() {
        let offers = [offer(1, i64::MAX / 2, 0, true)];
        assert_eq!(price_cart(&[line(1, 3)], &offers), Err(CartError::Overflow));
        assert_eq!(
            price_cart(&[line(1, 1), line(1, 1), line(1, 1)], &offers),
            Err(CartError::Overflow)
        );
    }

    #[test]
    fn a_product_priced_or_rewarding_below_zero_is_unavailable_not_a_discount() {
        // 100 points plus a -90 line must not charge 10.
        let offers = [
            offer(1, 100_000, 10_000, true),
            offer(2, -90_000, 0, true),
            offer(3, 5_000, -1, true),
        ];
        assert_eq!(
            price_cart(&[line(1, 1), line(2, 1), line(3, 1)], &offers),
            Err(CartError::Unavailable(vec![2, 3]))
        );
    }

    #[test]
    fn addresses_are_trimmed_and_bounded() {
        assert_eq!(
            DeliveryAddress::parse("  123 Main St ").unwrap().as_str(),
            "123 Main St"
        );
        assert!(
            DeliveryAddress::parse(&"é".repeat(500)).is_ok(),
            "500 characters, not bytes"
        );
        for bad in ["", "   ", "\n \r\n", "a\u{0}b", "tab\tinside", "bell\u{7}"] {
            assert_eq!(
                DeliveryAddress::parse(bad),
                Err(RequestError::BadAddress),
                "{bad:?}"
            );
        }
        assert!(DeliveryAddress::parse(&"a".repeat(501)).is_err());
        assert!(DeliveryAddress::parse(&"a\n".repeat(11)).is_err());
        assert!(DeliveryAddress::parse(&"a\n".repeat(10)).is_ok());
    }

    #[test]
    fn every_line_break_counts_alike_and_is_stored_as_a_newline() {
        for br in [
            "\n", "\r\n", "\r", "\u{000B}", "\u{000C}", "\u{0085}", "\u{2028}", "\u{2029}",
        ] {
            let raw = format!(" Building 5 {br}  12 Souq Waqif St {br}{br} Doha ");
            assert_eq!(
                DeliveryAddress::parse(&raw).unwrap().as_str(),
                "Building 5\n12 Souq Waqif St\nDoha",
                "{br:?}"
            );
        }
    }

    #[test]
    fn idempotency_keys_are_bounded_and_plain() {
        assert!(IdempotencyKey::parse("abcd-123_XYZ").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(128)).is_ok());
        for bad in [
            "short",
            "has space",
            "ünïcode1",
            "semi;colon",
            &"k".repeat(129),
        ] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bodies_parse_strictly() {
        assert_eq!(
            CheckoutRequest::parse(b"").unwrap(),
            CheckoutRequest::default()
        );
        assert_eq!(
            CheckoutRequest::parse(b"{}").unwrap(),
            CheckoutRequest::default()
        );
        assert_eq!(
            CheckoutRequest::parse(br#"{"deliveryAddress": null}"#).unwrap(),
            CheckoutRequest::default()
        );
        let with = CheckoutRequest::parse(br#"{"deliveryAddress": " 1 Souq Rd "}"#).unwrap();
        assert_eq!(with.delivery_address.unwrap().as_str(), "1 Souq Rd");
        for bad in [
            &br#"[]"#[..],
            br#"{"deliveryAddress": 5}"#,
            br#"{"deliveryAddress": {"$gt": ""}}"#,
            br#"{"userId": "x"}"#,
            br#"{"deliveryAddress": "a", "deliveryAddress": "b"}"#,
            br#"{"#,
            b"\xff\xfe",
            br#"{"deliveryAddress": ""}"#,
        ] {
            assert!(
                CheckoutRequest::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let huge = format!(r#"{{"deliveryAddress": "{}"}}"#, "a".repeat(17_000));
        assert_eq!(
            CheckoutRequest::parse(huge.as_bytes()),
            Err(RequestError::BodyTooLarge)
        );
    }

    #[test]
    fn fingerprints_follow_meaning_not_bytes() {
        let a = CheckoutRequest::parse(br#"{"deliveryAddress":"1 Souq Rd"}"#).unwrap();
        let b = CheckoutRequest::parse(br#"{ "deliveryAddress" : "  1 Souq Rd" }"#).unwrap();
        let c = CheckoutRequest::parse(br#"{"deliveryAddress":"2 Souq Rd"}"#).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_ne!(a.fingerprint(), CheckoutRequest::default().fingerprint());
        assert_eq!(a.fingerprint().len(), 64);
    }
}
