//! Demo and fixture data, written the way the app's own screens write it: for `mall demo-seed`,
//! and for anything else that must put customers, products and carts in place without reaching
//! past the store.
//!
//! Not on any request path: these are plain writes, outside transactions.

use mongodb::bson::{doc, oid::ObjectId, Document};

use crate::documents::{CustomerDoc, ProductDoc};
use crate::error::StoreError;
use crate::ops::Operators;

/// One line of a cart as the app's cart screen writes it.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoCartLine {
    pub product: ObjectId,
    pub product_name: String,
    /// The price the screen showed, in whole points (the checkout re-prices from the product).
    pub price: i64,
    pub quantity: i64,
}

impl Operators<'_> {
    /// Inserts customers (in one command per thousand).
    pub async fn insert_customers(self, customers: &[CustomerDoc]) -> Result<(), StoreError> {
        for chunk in customers.chunks(1_000) {
            self.store.customers().insert_many(chunk).await?;
        }
        Ok(())
    }

    /// Inserts products (in one command per thousand).
    pub async fn insert_products(self, products: &[ProductDoc]) -> Result<(), StoreError> {
        for chunk in products.chunks(1_000) {
            self.store.products().insert_many(chunk).await?;
        }
        Ok(())
    }

    /// The customer with this username, if any.
    pub async fn customer_named(self, username: &str) -> Result<Option<CustomerDoc>, StoreError> {
        Ok(self
            .store
            .customers()
            .find_one(doc! {"username": username})
            .await?)
    }

    /// The product with this name, if any.
    pub async fn product_named(self, name: &str) -> Result<Option<ProductDoc>, StoreError> {
        Ok(self.store.products().find_one(doc! {"name": name}).await?)
    }

    /// Fills the customer's cart with `lines` unless it already holds items, as the app's cart
    /// screen writes a cart (product ids as hex strings, the totals beside the items). `true`
    /// when the cart was filled.
    pub async fn fill_empty_cart(
        self,
        customer: ObjectId,
        lines: &[DemoCartLine],
    ) -> Result<bool, StoreError> {
        let items: Vec<Document> = lines
            .iter()
            .map(|line| {
                doc! {"productId": line.product.to_hex(), "productName": &line.product_name,
                "price": line.price, "quantity": line.quantity}
            })
            .collect();
        let total: i64 = lines.iter().map(|l| l.price * l.quantity).sum();
        let count: i64 = lines.iter().map(|l| l.quantity).sum();
        let filled = self
            .store
            .carts()
            .update_one(
                doc! {"customerId": customer, "items.0": {"$exists": false}},
                doc! {"$set": {"items": items, "totalAmount": total, "totalItems": count,
                         "status": "active"},
                "$setOnInsert": {"_id": ObjectId::new(), "customerId": customer}},
            )
            .upsert(true)
            .await;
        match filled {
            Ok(result) => Ok(result.modified_count + u64::from(result.upserted_id.is_some()) > 0),
            // A cart with items already: the unique index refused a second one.
            Err(err) if crate::error::is_duplicate_key(&err) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }
}
