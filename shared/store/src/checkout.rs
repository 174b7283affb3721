//! The checkout transaction (SPEC §5.2): one multi-document transaction that prices the cart,
//! charges the wallet, records the purchase, clears the cart, saves the address and enqueues the
//! reward job — all of it or none of it. Six commands on success: one aggregation (customer,
//! cart, products and any earlier use of the idempotency key), four writes, and the commit.
//!
//! It reads and writes the app's own shapes: carts whose `productId` is a hex string, the
//! wallet in points (Int32 or Double), the address in `Address`, the purchase as the app's
//! transaction. The wallet is never changed by a server-side `$inc` of a Double (that addition
//! would drift): the new balance is computed exactly from the balance read inside the
//! transaction's snapshot, and written by `_id`: a write by anyone else to that wallet since the
//! snapshot (an admin top-up by the app, another checkout) makes the transaction's write conflict
//! — mongod's and WiredTiger's rule for transactions, which a store test proves of the test
//! server too — and the checkout reads again; so such a write is never lost.
//!
//! Guarantees:
//! - a refused checkout (empty cart, unavailable product, low balance, …) writes nothing;
//! - the wallet is never charged without its purchase and its job (the original system charged
//!   first and could lose the job, and with it the rewards);
//! - concurrent checkouts of one wallet cannot overdraw it: the charge is computed from the
//!   balance read, and concurrent transactions on one customer conflict and retry;
//! - one purchase per `(customer, Idempotency-Key)`: a unique index decides between concurrent
//!   duplicates inside the transaction, and a repeat of a committed key gets the first receipt
//!   back without any write.

use mall_domain::checkout::{
    price_cart, CartError, CartLine, CheckoutRequest, IdempotencyKey, Offer, PricedCart,
    RawQuantity,
};
use mall_domain::{MilliPoints, RewardPolicy, RewardSplit};
use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use mongodb::error::Error;
use mongodb::ClientSession;
use serde::Deserialize;

use crate::collections;
use crate::documents::{
    reference_of, CheckoutJobDoc, JobStatus, ProductDoc, PurchaseDoc, PurchaseLineDoc,
    RewardsStatus, ShippingAddressDoc, TransactionType, CURRENCY, ENTRY_COMPLETED,
    PAID_FROM_WALLET,
};
use crate::error::{is_topology_unknown, is_unreachable, StoreError};
use crate::failpoints::Failpoint;
use crate::queue::CurrentTerms;
use crate::settings::SettingsReading;
use crate::store::{Store, REWARD_POLICY_SETTINGS_ID};
use crate::transaction::{TransactionFailure, TransactionRetry};

/// Which economy a checkout splits by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Economy {
    /// A fixed basis-point split: the command's policy (the documents' rules, or `original`).
    Split,
    /// The app's current economy: R split by the admin's `rewardsettings`, read inside the
    /// transaction; the job records them and whether this is the buyer's first purchase.
    Current {
        /// The deployment lets jobs pay level gifts (`REWARD_LEVEL_GIFTS`).
        level_gifts_allowed: bool,
    },
}

/// What one checkout asks for, validated.
#[derive(Clone, Copy, Debug)]
pub struct CheckoutCommand<'a> {
    /// The verified customer.
    pub customer_id: ObjectId,
    pub request: &'a CheckoutRequest,
    pub idempotency_key: Option<&'a IdempotencyKey>,
    /// The tree rules (and, for a fixed split, the split) in force now; the job keeps a copy.
    pub policy: &'a RewardPolicy,
    pub economy: Economy,
    pub job_max_attempts: i32,
}

/// What the buyer is told: the same for the first request and for every replay of its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutReceipt {
    pub transaction_id: ObjectId,
    /// The purchase's `TXN…` reference, as the app shows it.
    pub reference: String,
    pub job_id: ObjectId,
    pub cart_total: MilliPoints,
    pub new_wallet_balance: MilliPoints,
    pub reward_points: MilliPoints,
    pub split: RewardSplit,
    /// This is a replay of an earlier request with the same key: nothing was charged now.
    pub replayed: bool,
    /// The admin's `rewardsettings` could not be used: the app's defaults applied (logged;
    /// the checkout function counts it).
    pub settings_unusable: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("the customer does not exist")]
    CustomerNotFound,
    #[error(transparent)]
    Cart(CartError<String>),
    #[error("the wallet holds {available}, the cart costs {required}")]
    InsufficientBalance {
        required: MilliPoints,
        available: MilliPoints,
    },
    #[error("the idempotency key was used for a different request")]
    IdempotencyKeyReused,
    #[error("a request with this idempotency key is still being processed")]
    IdempotencyInProgress,
    /// The database is unreachable, or the transaction kept conflicting: try again later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Stored data the checkout cannot read, or another server-side failure.
    #[error("internal checkout failure: {0}")]
    Internal(String),
}

/// How one attempt of the transaction ended, short of success.
enum CheckoutAttemptError {
    /// A business refusal: abort, nothing was written.
    Refused(CheckoutError),
    /// The customer went away between our read and our write: a fresh attempt reads again.
    CustomerGone,
    /// Inserting the purchase with its `Idempotency-Key` conflicted: another request with the
    /// same key is in flight (or just committed, which the next attempt will replay).
    KeyConflict(Error),
    /// The key was already used by a committed purchase with the same request.
    Replay(Box<CheckoutReceipt>),
    Database(Error),
}

impl From<Error> for CheckoutAttemptError {
    fn from(err: Error) -> Self {
        CheckoutAttemptError::Database(err)
    }
}

impl crate::transaction::TransactionError for CheckoutAttemptError {
    /// A conflict on the key, on the wallet, or any write conflict a fresh attempt gets past
    /// (a duplicate key on the idempotency index too: the next attempt's read sees the committed
    /// purchase and replays it).
    fn is_conflict(&self) -> bool {
        match self {
            CheckoutAttemptError::KeyConflict(_) | CheckoutAttemptError::CustomerGone => true,
            CheckoutAttemptError::Database(err) => is_retryable_conflict(err),
            _ => false,
        }
    }
}

/// The one aggregation's result: the customer with everything the checkout reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckoutSnapshot {
    /// The wallet exactly as stored.
    #[serde(default)]
    points: Bson,
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(rename = "Address", default)]
    address: Option<Bson>,
    #[serde(default)]
    cart: Option<SnapshotCart>,
    #[serde(default)]
    products: Vec<Document>,
    #[serde(default)]
    existing: Vec<PurchaseDoc>,
    /// The admin's settings document (the oldest), in the current economy.
    #[serde(default)]
    settings: Vec<Document>,
    /// The buyer's earliest completed purchase, if any (current economy).
    #[serde(default)]
    earlier_purchases: Vec<crate::documents::PurchaseOrder>,
}

#[derive(Deserialize)]
struct SnapshotCart {
    /// As stored: read line by line, so that a malformed cart is a clear refusal.
    #[serde(default)]
    items: Bson,
}

/// The cart's lines as the pricing rule sees them, or why the stored cart is malformed.
fn cart_lines(cart: Option<SnapshotCart>) -> Result<Vec<CartLine<String>>, CartError<String>> {
    let items = match cart.map(|c| c.items) {
        None | Some(Bson::Null) => return Ok(vec![]),
        Some(Bson::Array(items)) => items,
        Some(_) => return Err(CartError::Malformed("its items are not a list".into())),
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let line = index + 1;
            let item = item
                .as_document()
                .ok_or_else(|| CartError::Malformed(format!("line {line} is not an item")))?;
            // The app stores the product's ObjectId as a hex string; an ObjectId is read too.
            let product_id = match item.get("productId") {
                Some(Bson::String(hex)) if ObjectId::parse_str(hex).is_ok() => hex.clone(),
                Some(Bson::ObjectId(id)) => id.to_hex(),
                _ => {
                    return Err(CartError::Malformed(format!(
                        "line {line} does not name a product by its id"
                    )))
                }
            };
            Ok(CartLine {
                product_id,
                quantity: raw_quantity(item.get("quantity").unwrap_or(&Bson::Null)),
            })
        })
        .collect()
}

impl Checkouts<'_> {
    async fn checkout_attempt(
        self,
        session: &mut ClientSession,
        command: &CheckoutCommand<'_>,
    ) -> Result<CheckoutReceipt, CheckoutAttemptError> {
        let customer = command.customer_id;
        let fingerprint = command.request.fingerprint();
        let snapshot = self
            .read_checkout_snapshot(session, customer, command.idempotency_key, command.economy)
            .await?
            .ok_or(CheckoutAttemptError::Refused(
                CheckoutError::CustomerNotFound,
            ))?;

        if let Some(earlier) = snapshot.existing.into_iter().next() {
            return if earlier.request_fingerprint.as_deref() == Some(fingerprint.as_str()) {
                Err(CheckoutAttemptError::Replay(Box::new(receipt_of(
                    &earlier, true,
                )?)))
            } else {
                Err(CheckoutAttemptError::Refused(
                    CheckoutError::IdempotencyKeyReused,
                ))
            };
        }

        let internal = |e: String| CheckoutAttemptError::Refused(CheckoutError::Internal(e));
        let balance = crate::amount::wallet_or_default(&snapshot.points)
            .map_err(|e| internal(format!("customer {customer}: points: {e}")))?;
        let cart = price(snapshot.cart, &snapshot.products)?;
        if balance < cart.total {
            return Err(CheckoutAttemptError::Refused(
                CheckoutError::InsufficientBalance {
                    required: cart.total,
                    available: balance,
                },
            ));
        }
        let mut settings_unusable = false;
        let (split, mut terms) = match command.economy {
            Economy::Split => (
                RewardSplit::of(cart.reward_points, command.policy)
                    .map_err(|e| internal(e.to_string()))?,
                None,
            ),
            Economy::Current {
                level_gifts_allowed,
            } => {
                let reading = SettingsReading::of(snapshot.settings.first());
                reading.report_problems();
                settings_unusable = !reading.problems.is_empty();
                let mut settings = reading.settings;
                settings.level_gifts_enabled &= level_gifts_allowed;
                (
                    settings.split(cart.reward_points),
                    Some(CurrentTerms {
                        settings,
                        // Decided below, once this purchase has its place.
                        first_purchase: false,
                    }),
                )
            }
        };
        let new_balance = balance
            .checked_sub(cart.total)
            .map_err(|e| internal(e.to_string()))?;
        let now = DateTime::now();

        // The purchase first: when it carries an Idempotency-Key, a conflict here is a conflict
        // on the key (another request with it is in flight), not on the wallet.
        let buyer = Buyer {
            username: snapshot.username,
            email: snapshot.email,
            stored_address: match snapshot.address {
                Some(Bson::String(address)) => Some(address),
                _ => None,
            },
        };
        let purchase = purchase_doc(command, &buyer, &cart, split, new_balance, fingerprint, now);
        if let Some(terms) = terms.as_mut() {
            terms.first_purchase = mall_domain::is_first_purchase(
                &crate::documents::PurchaseOrder::of(&purchase),
                snapshot.earlier_purchases.first(),
            );
        }
        self.store
            .purchases()
            .insert_one(&purchase)
            .session(&mut *session)
            .await
            .map_err(|err| match command.idempotency_key {
                Some(_) if is_conflict_on_insert(&err) => CheckoutAttemptError::KeyConflict(err),
                _ => CheckoutAttemptError::Database(err),
            })?;

        // Charge (and save the address) in one update by `_id`: the new balance comes from the
        // balance this transaction's snapshot read, and anyone writing the wallet since (another
        // checkout, the worker, the app) makes this write conflict, so the checkout reads again.
        let mut set = doc! {
            "points": crate::amount::to_bson(new_balance).map_err(|e| internal(e.to_string()))?,
            "updatedAt": now,
        };
        if let Some(address) = &command.request.delivery_address {
            set.insert("Address", address.as_str());
        }
        let charged = self
            .store
            .customers()
            .update_one(doc! {"_id": customer}, doc! {"$set": set})
            .session(&mut *session)
            .await?;
        if charged.matched_count == 0 {
            return Err(CheckoutAttemptError::CustomerGone);
        }
        self.store
            .carts()
            .update_one(
                doc! {"customerId": customer},
                // As the app clears a cart.
                doc! {"$set": {"items": [], "totalAmount": 0, "totalItems": 0, "updatedAt": now}},
            )
            .session(&mut *session)
            .await?;
        self.store
            .failpoints()
            .check(Failpoint::CheckoutBeforeJobInsert)?;
        self.store
            .checkout_jobs()
            .insert_one(
                crate::queue::enqueued(
                    &purchase,
                    split,
                    command.policy,
                    terms.as_ref(),
                    command.job_max_attempts,
                    now,
                )
                .map_err(|e| internal(e.to_string()))?,
            )
            .session(&mut *session)
            .await?;
        self.store
            .failpoints()
            .check(Failpoint::CheckoutBeforeCommit)?;
        Ok(CheckoutReceipt {
            settings_unusable,
            ..receipt_of(&purchase, false)?
        })
    }

    /// One aggregation on the customer: its balance, its cart, the cart's products, and a
    /// purchase that already used the idempotency key, if any.
    async fn read_checkout_snapshot(
        self,
        session: &mut ClientSession,
        customer: ObjectId,
        key: Option<&IdempotencyKey>,
        economy: Economy,
    ) -> Result<Option<CheckoutSnapshot>, CheckoutAttemptError> {
        let mut pipeline = vec![
            doc! {"$match": {"_id": customer}},
            doc! {"$project": {"points": 1, "username": 1, "email": 1, "Address": 1}},
            doc! {"$lookup": {"from": collections::CARTS, "localField": "_id",
            "foreignField": "customerId", "as": "cart"}},
            doc! {"$set": {"cart": {"$arrayElemAt": ["$cart", 0]}}},
            // An explicit $map rather than the path "cart.items.productId": the same on every
            // server, whether or not it resolves paths through arrays of sub-documents. The app
            // stores the id as a hex string; one that is not an ObjectId's matches no product.
            doc! {"$set": {"productIds": {"$map": {
                "input": {"$cond": [{"$isArray": "$cart.items"}, "$cart.items", []]}, "as": "item",
                "in": {"$convert": {"input": "$$item.productId", "to": "objectId",
                                    "onError": Bson::Null, "onNull": Bson::Null}},
            }}}},
            doc! {"$lookup": {
                "from": collections::PRODUCTS, "localField": "productIds",
                "foreignField": "_id", "as": "products",
            }},
            doc! {"$project": {"productIds": 0}},
        ];
        if let Some(key) = key {
            // Joined on `customerId` (an indexed field), then filtered: a server needs to read
            // only this customer's transactions, never the whole collection.
            pipeline.push(doc! {"$lookup": {
                "from": collections::TRANSACTIONS,
                "localField": "_id", "foreignField": "customerId",
                "pipeline": [
                    {"$match": {"idempotencyKey": key.as_str()}},
                    {"$limit": 1},
                ],
                "as": "existing",
            }});
        }
        if let Economy::Current { .. } = economy {
            // The settings in force, and the buyer's earliest completed purchase (the
            // first-purchase rule's), read in this transaction's snapshot.
            pipeline.push(crate::settings::lookup_settings("settings"));
            pipeline.push(doc! {"$lookup": {
                "from": collections::TRANSACTIONS,
                "localField": "_id", "foreignField": "customerId",
                "pipeline": [
                    {"$match": {"type": TransactionType::Purchase, "status": ENTRY_COMPLETED}},
                    {"$sort": {"createdAt": 1, "_id": 1}},
                    {"$limit": 1},
                    {"$project": {"_id": 1, "createdAt": 1}},
                ],
                "as": "earlierPurchases",
            }});
        }
        let mut cursor = self
            .store
            .database()
            .collection::<Document>(collections::CUSTOMERS)
            .aggregate(pipeline)
            .session(&mut *session)
            .await?;
        let Some(found) = cursor.next(session).await.transpose()? else {
            return Ok(None);
        };
        mongodb::bson::from_document(found)
            .map(Some)
            .map_err(|e| CheckoutAttemptError::Refused(CheckoutError::Internal(e.to_string())))
    }
}

fn price(
    cart: Option<SnapshotCart>,
    products: &[Document],
) -> Result<PricedCart<String>, CheckoutAttemptError> {
    let refused = |e| CheckoutAttemptError::Refused(CheckoutError::Cart(e));
    let lines = cart_lines(cart).map_err(refused)?;
    let offers: Vec<Offer<String>> = products
        .iter()
        .filter_map(|product| {
            let id = match product.get("_id") {
                Some(Bson::ObjectId(id)) => id.to_hex(),
                _ => return None,
            };
            match crate::documents::read_document::<ProductDoc>(product.clone()) {
                Ok(p) => Some(Offer {
                    id,
                    name: p.name,
                    price: p.price,
                    reward_points: p.reward_points,
                    active: p.is_active,
                }),
                // A product whose price or reward cannot be read cannot be sold: the buyer is
                // told which one, and operators read why.
                Err(problem) => {
                    tracing::warn!(product_id = %id, %problem, "a cart product cannot be priced");
                    Some(Offer {
                        id,
                        name: String::new(),
                        price: MilliPoints::ZERO,
                        reward_points: MilliPoints::ZERO,
                        active: false,
                    })
                }
            }
        })
        .collect();
    price_cart(&lines, &offers).map_err(refused)
}

/// A stored quantity as the pricing rule sees it. Legacy carts may hold quantities as doubles;
/// a double is a whole number only when it has no fraction (this is a count, not money).
fn raw_quantity(value: &Bson) -> RawQuantity {
    match value {
        Bson::Int32(q) => RawQuantity::Whole(i64::from(*q)),
        Bson::Int64(q) => RawQuantity::Whole(*q),
        #[allow(clippy::cast_possible_truncation)]
        Bson::Double(q) if q.fract() == 0.0 && q.abs() <= 1e15 => RawQuantity::Whole(*q as i64),
        _ => RawQuantity::NotWhole,
    }
}

/// Who is buying, as the purchase names them.
struct Buyer {
    username: String,
    email: String,
    stored_address: Option<String>,
}

fn purchase_doc(
    command: &CheckoutCommand<'_>,
    buyer: &Buyer,
    cart: &PricedCart<String>,
    split: RewardSplit,
    balance_after: MilliPoints,
    fingerprint: String,
    now: DateTime,
) -> PurchaseDoc {
    let key = command.idempotency_key.map(|k| k.as_str().to_owned());
    let id = ObjectId::new();
    let street = command
        .request
        .delivery_address
        .as_ref()
        .map(|a| a.as_str().to_owned())
        .or_else(|| buyer.stored_address.clone());
    PurchaseDoc {
        id,
        kind: TransactionType::Purchase,
        customer_id: command.customer_id,
        user_name: buyer.username.clone(),
        user_email: buyer.email.clone(),
        amount: cart.total,
        currency: CURRENCY.to_owned(),
        status: ENTRY_COMPLETED.to_owned(),
        description: format!("Purchase - {} item(s)", cart.lines.len()),
        payment_method: PAID_FROM_WALLET.to_owned(),
        reference: reference_of(id),
        items: cart
            .lines
            .iter()
            .map(|l| PurchaseLineDoc {
                product_id: l.product_id.clone(),
                product_name: l.name.clone(),
                quantity: l.quantity,
                price: l.unit_price,
                subtotal: l.line_total,
                unit_reward_points: l.unit_reward_points,
            })
            .collect(),
        shipping_address: street.map(|street| ShippingAddressDoc { street }),
        processed_at: now,
        cart_total: cart.total,
        reward_points_earned: cart.reward_points,
        app_points_share: split.app,
        gifts_points_share: split.gifts,
        tree_points_share: split.tree,
        tree_distribution: vec![],
        reward_split: Some(split.into()),
        rewards_status: RewardsStatus::mirroring(JobStatus::Pending),
        job_id: ObjectId::new(),
        wallet_balance_after: balance_after,
        request_fingerprint: key.as_ref().map(|_| fingerprint),
        idempotency_key: key,
        reward_log: None,
        created_at: now,
        updated_at: now,
    }
}

/// The receipt of a recorded purchase: the split as made at checkout (`rewardSplit`; the job
/// later rewrites the app's share fields with the final pools). A purchase from before that
/// field derives its gifts share (`R − app − tree`): its job rewrote only `giftsPointsShare`.
fn receipt_of(
    purchase: &PurchaseDoc,
    replayed: bool,
) -> Result<CheckoutReceipt, CheckoutAttemptError> {
    let split = match purchase.reward_split {
        Some(split) => split.into(),
        None => RewardSplit {
            app: purchase.app_points_share,
            gifts: purchase
                .reward_points_earned
                .checked_sub(purchase.app_points_share)
                .and_then(|rest| rest.checked_sub(purchase.tree_points_share))
                .map_err(|e| {
                    CheckoutAttemptError::Refused(CheckoutError::Internal(e.to_string()))
                })?,
            tree: purchase.tree_points_share,
            referral: MilliPoints::ZERO,
        },
    };
    Ok(CheckoutReceipt {
        transaction_id: purchase.id,
        reference: purchase.reference.clone(),
        job_id: purchase.job_id,
        cart_total: purchase.cart_total,
        new_wallet_balance: purchase.wallet_balance_after,
        reward_points: purchase.reward_points_earned,
        split,
        replayed,
        settings_unusable: false,
    })
}

/// The insert itself collided with another writer of the same unique key: a write conflict
/// (an uncommitted insert of it) or a duplicate key (a committed one, replayed next attempt).
/// Any other transient error (a transaction aborted for another reason) is not the key's.
fn is_conflict_on_insert(err: &Error) -> bool {
    const WRITE_CONFLICT: i32 = 112;
    let code = match err.kind.as_ref() {
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(e)) => e.code,
        mongodb::error::ErrorKind::Command(e) => e.code,
        _ => return false,
    };
    code == WRITE_CONFLICT || code == crate::error::DUPLICATE_KEY
}

/// A conflict that a fresh attempt can get past: a write conflict, or a duplicate key on the
/// idempotency index (the next attempt's read sees the committed purchase and replays it).
fn is_retryable_conflict(err: &Error) -> bool {
    !is_unreachable(err)
        && (err.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR)
            || crate::error::is_duplicate_key(err))
}

fn classify_failure(err: Error) -> CheckoutError {
    if is_unreachable(&err)
        || is_topology_unknown(&err)
        || err.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR)
    {
        CheckoutError::Unavailable(err.to_string())
    } else {
        CheckoutError::Internal(err.to_string())
    }
}

/// A purchase as its buyer sees it: the read model behind `GET /api/cart/checkout/{id}`,
/// in domain values, with nothing of the documents' shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct PurchaseView {
    pub transaction_id: ObjectId,
    pub created_at: DateTime,
    pub cart_total: MilliPoints,
    pub lines: Vec<PurchaseLineView>,
    pub delivery_address: Option<String>,
    /// R, the purchase's reward points.
    pub reward_points: MilliPoints,
    /// The split as made at checkout, whatever the job rewrote since.
    pub split: RewardSplit,
    pub rewards: RewardsProgress,
    /// The reward job; `None` once retention removed it.
    pub job: Option<JobView>,
    /// What the job distributed; `None` until it completed.
    pub distribution: Option<DistributionView>,
}

/// One line of a purchase.
#[derive(Clone, Debug, PartialEq)]
pub struct PurchaseLineView {
    pub product_id: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price: MilliPoints,
    pub line_total: MilliPoints,
}

/// Where a purchase's rewards stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewardsProgress {
    Processing,
    Completed,
    Failed,
}

/// Where a purchase's reward job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobProgress {
    Pending,
    Processing,
    Completed,
    Failed,
}

/// A purchase's reward job, as its buyer sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobView {
    pub id: ObjectId,
    pub progress: JobProgress,
    pub attempts: i32,
    pub max_attempts: i32,
}

/// What a completed job distributed, in totals.
#[derive(Clone, Debug, PartialEq)]
pub struct DistributionView {
    pub tree_distributed: MilliPoints,
    pub tree_unused: MilliPoints,
    pub gifts_final: MilliPoints,
    pub app_final: MilliPoints,
    pub direct_referral: MilliPoints,
    pub pool_gifts: MilliPoints,
    pub recipients: usize,
    pub promotions: usize,
}

/// The purchase and its job as the view's aggregation returns them.
#[derive(Deserialize)]
struct PurchaseWithJob {
    #[serde(flatten)]
    purchase: PurchaseDoc,
    #[serde(default, rename = "job")]
    jobs: Vec<CheckoutJobDoc>,
}

impl PurchaseWithJob {
    fn into_view(self) -> PurchaseView {
        let p = self.purchase;
        let split = match receipt_of(&p, false) {
            Ok(receipt) => receipt.split,
            Err(_) => RewardSplit {
                app: p.app_points_share,
                gifts: p.gifts_points_share,
                tree: p.tree_points_share,
                referral: MilliPoints::ZERO,
            },
        };
        PurchaseView {
            transaction_id: p.id,
            created_at: p.created_at,
            cart_total: p.cart_total,
            lines: p
                .items
                .into_iter()
                .map(|line| PurchaseLineView {
                    product_id: line.product_id,
                    name: line.product_name,
                    quantity: line.quantity,
                    unit_price: line.price,
                    line_total: line.subtotal,
                })
                .collect(),
            delivery_address: p.shipping_address.map(|a| a.street),
            reward_points: p.reward_points_earned,
            split,
            rewards: match p.rewards_status {
                RewardsStatus::Processing => RewardsProgress::Processing,
                RewardsStatus::Completed => RewardsProgress::Completed,
                RewardsStatus::Failed => RewardsProgress::Failed,
            },
            job: self.jobs.into_iter().next().map(|job| JobView {
                id: job.id,
                progress: match job.status {
                    JobStatus::Pending => JobProgress::Pending,
                    JobStatus::Processing => JobProgress::Processing,
                    JobStatus::Completed => JobProgress::Completed,
                    JobStatus::Failed => JobProgress::Failed,
                },
                attempts: job.attempts,
                max_attempts: job.max_attempts,
            }),
            distribution: p.reward_log.map(|d| DistributionView {
                tree_distributed: d.tree_distributed,
                tree_unused: d.tree_unused,
                gifts_final: d.gifts_final,
                app_final: d.app_final,
                direct_referral: d.direct.map_or(MilliPoints::ZERO, |x| x.amount),
                pool_gifts: MilliPoints::checked_sum(d.gifts.iter().map(|g| g.amount))
                    .unwrap_or_default(),
                recipients: d.payouts.len(),
                promotions: d.promotions.len(),
            }),
        }
    }
}

/// The checkout's operations: the checkout transaction, a purchase's read model, the reward policy in force.
#[derive(Clone, Copy, Debug)]
pub struct Checkouts<'a> {
    pub(crate) store: &'a Store,
}

impl Checkouts<'_> {
    /// Runs the checkout transaction, retrying it while it conflicts (bounded).
    pub async fn checkout(
        self,
        command: &CheckoutCommand<'_>,
    ) -> Result<CheckoutReceipt, CheckoutError> {
        let ran = self
            .store
            .in_transaction(
                &TransactionRetry::default(),
                &mut (self, command),
                |session, (checkouts, command)| {
                    Box::pin(checkouts.checkout_attempt(session, command))
                },
            )
            .await;
        match ran {
            Ok(committed) => Ok(committed.value),
            Err(TransactionFailure::Stopped(CheckoutAttemptError::Replay(receipt))) => Ok(*receipt),
            Err(TransactionFailure::Stopped(CheckoutAttemptError::Refused(err))) => Err(err),
            Err(TransactionFailure::Stopped(CheckoutAttemptError::Database(err))) => {
                Err(classify_failure(err))
            }
            Err(TransactionFailure::Stopped(CheckoutAttemptError::KeyConflict(err))) => {
                Err(classify_failure(err))
            }
            Err(TransactionFailure::Stopped(CheckoutAttemptError::CustomerGone)) => Err(
                CheckoutError::Unavailable("the checkout kept conflicting".into()),
            ),
            Err(TransactionFailure::CommitUnknown(err)) => Err(CheckoutError::Unavailable(
                format!("the commit's outcome is unknown: {err}"),
            )),
            // Only a conflict on the key itself says that its first request is still running.
            Err(TransactionFailure::Exhausted {
                last: Some(CheckoutAttemptError::KeyConflict(err)),
                ..
            }) => {
                tracing::debug!(error = %err, "the idempotency key is in flight");
                Err(CheckoutError::IdempotencyInProgress)
            }
            Err(TransactionFailure::Exhausted { last: None, .. }) => Err(
                CheckoutError::Unavailable("the database's topology is still unknown".into()),
            ),
            Err(TransactionFailure::Exhausted { .. }) => Err(CheckoutError::Unavailable(
                "the checkout kept conflicting".into(),
            )),
        }
    }

    /// One purchase of `customer` with its job, in one aggregation; `None` when there is no such
    /// purchase, it belongs to someone else, or it is the original system's (it has no job of
    /// ours: the app's own screens list those).
    pub async fn purchase_view(
        self,
        customer: ObjectId,
        transaction_id: ObjectId,
    ) -> Result<Option<PurchaseView>, StoreError> {
        let pipeline = vec![
            doc! {"$match": {"_id": transaction_id, "customerId": customer, "type": TransactionType::Purchase,
            "jobId": {"$exists": true}}},
            doc! {"$lookup": {"from": collections::CHECKOUT_JOBS, "localField": "_id",
            "foreignField": "checkoutTransactionId", "as": "job"}},
        ];
        let found: Option<Document> = self
            .store
            .aggregate_first(collections::TRANSACTIONS, pipeline)
            .await?;
        found
            .map(|raw| {
                mongodb::bson::from_document::<PurchaseWithJob>(raw).map(PurchaseWithJob::into_view)
            })
            .transpose()
            .map_err(|e| StoreError::Unreadable(e.to_string()))
    }
}

impl Checkouts<'_> {
    /// The policy in force: `configured`, refined by the settings document
    /// `{_id: "rewardPolicy", …policy fields}` when there is one. Read once at start-up.
    pub async fn effective_reward_policy(
        self,
        configured: &mall_domain::RewardPolicy,
    ) -> Result<mall_domain::RewardPolicy, crate::error::PolicySettingsError> {
        use crate::error::PolicySettingsError;
        let settings = self
            .store
            .database()
            .collection::<mongodb::bson::Document>(collections::SETTINGS)
            .find_one(mongodb::bson::doc! {"_id": REWARD_POLICY_SETTINGS_ID})
            .await
            .map_err(StoreError::from)?;
        let Some(mut settings) = settings else {
            return Ok(*configured);
        };
        settings.remove("_id");
        settings.remove("updatedAt");
        let overrides: mall_domain::PolicyOverrides = crate::documents::read_document(settings)
            .map_err(|e| {
                StoreError::Unreadable(format!("the reward policy settings document: {e}"))
            })?;
        overrides
            .apply_to(configured)
            .map_err(PolicySettingsError::Invalid)
    }
}
