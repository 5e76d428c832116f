//! The JSON bodies the services send each other and the outside world.
//!
//! Defined once here: the orders service serializes an [`OrderView`] and the
//! payments service deserializes the same type, so a renamed field breaks
//! the build instead of the workshop. Money travels as `f64` with two
//! decimals (`109.08`) and is compared in whole cents ([`to_cents`]).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// `GET /healthz`'s answer: `{"status":"ok"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `"ok"` while the process serves.
    pub status: String,
}

impl Health {
    /// The one answer a live service gives.
    pub fn ok() -> Self {
        Self {
            status: "ok".to_owned(),
        }
    }
}

/// `POST /signup` and `POST /login` bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The name to sign up or log in with.
    pub username: String,
    /// The password in clear (only ever over the cluster network).
    pub password: String,
}

/// `POST /signup`'s answer: the new user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Generated id; the `sub` of this user's tokens.
    pub id: String,
    /// The name the user signed up with.
    pub username: String,
}

/// `POST /login`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// An HS256 JWT to send as `Authorization: Bearer <token>`.
    pub token: String,
}

/// One product of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Ten upper-case letters and digits, e.g. `L9ECAV7KIM`.
    pub id: String,
    /// Display name; what `/products/search/{name}` matches.
    pub name: String,
    /// Lower-case category; what `/products/category/{category}` matches.
    pub category: String,
    /// Price in the shop's currency, two decimals.
    pub price: f64,
}

/// Where an order stands. Serialized in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Created, not paid yet.
    Pending,
    /// Paid through the payments service.
    Paid,
    /// Given up.
    Cancelled,
}

impl OrderStatus {
    /// The lower-case name used in JSON and in `?status=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "paid" => Ok(Self::Paid),
            "cancelled" => Ok(Self::Cancelled),
            other => Err(format!(
                "invalid status {other:?}: expected pending, paid or cancelled"
            )),
        }
    }
}

/// `POST /orders`'s body (the gateway fills `user_id` from the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrder {
    /// Who orders.
    pub user_id: String,
    /// What they order; an id may repeat (two of the same).
    pub product_ids: Vec<String>,
}

/// An order as stored by the orders service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Generated id.
    pub id: String,
    /// Who ordered.
    pub user_id: String,
    /// What was ordered, in the order given.
    pub product_ids: Vec<String>,
    /// Where it stands.
    pub status: OrderStatus,
}

/// What the orders service answers for an order: the order and its amount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    /// The order itself.
    pub order: Order,
    /// The sum of the products' prices at ordering time, in cents precision.
    pub amount: f64,
}

impl OrderView {
    /// Whether the order has been paid already.
    pub fn is_paid(&self) -> bool {
        self.order.status == OrderStatus::Paid
    }
}

/// `PATCH /orders/{id}/status`'s query: `?status=paid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusQuery {
    /// The new status, as text (validated by the handler into an
    /// [`OrderStatus`], so a bad value gets a helpful 400).
    pub status: String,
}

/// `?user_id=`: whose order or payment the caller may see. The gateway
/// always sends the caller's id; another user's order or payment is then
/// answered as unknown (404), so its existence is not revealed. Without it
/// (calls inside the shop) every one is visible.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerQuery {
    /// The user the answer is for, if the caller speaks for one.
    pub user_id: Option<String>,
}

impl OwnerQuery {
    /// A query for `user_id`'s own things.
    pub fn of(user_id: impl Into<String>) -> Self {
        Self {
            user_id: Some(user_id.into()),
        }
    }

    /// Whether something owned by `owner` may be shown to this caller.
    pub fn allows(&self, owner: &str) -> bool {
        self.user_id.as_deref().is_none_or(|user| user == owner)
    }

    /// As query pairs for [`crate::Peer`]: none when no user is named.
    pub fn pairs(&self) -> Vec<(&'static str, &str)> {
        self.user_id
            .as_deref()
            .map(|user| ("user_id", user))
            .into_iter()
            .collect()
    }
}

/// `POST /payments`'s body (the gateway fills `user_id` from the token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewPayment {
    /// The order to pay.
    pub order_id: String,
    /// What the payer believes the order costs; must match to the cent.
    pub amount: f64,
    /// Who pays.
    pub user_id: String,
}

/// Where a payment stands. The shop only records successful ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    /// The money was taken and the order marked paid.
    Paid,
}

/// A recorded payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    /// Generated id.
    pub id: String,
    /// Who paid.
    pub user_id: String,
    /// What was paid.
    pub order_id: String,
    /// How much, two decimals.
    pub amount: f64,
    /// Always `paid`.
    pub status: PaymentStatus,
}

/// An amount in whole cents, rounded to the nearest (`109.08` → `10908`).
/// Out-of-range values saturate, which never equals a real order's amount.
pub fn to_cents(amount: f64) -> i64 {
    // `as` saturates on overflow and maps NaN to 0: no panic on any input.
    (amount * 100.0).round() as i64
}

/// Cents back to the two-decimal amount (`10908` → `109.08`).
pub fn from_cents(cents: i64) -> f64 {
    cents as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_round_trip() {
        assert_eq!(to_cents(109.08), 10908);
        assert_eq!(to_cents(89.09 + 19.99), 10908);
        assert_eq!(from_cents(10908).to_string(), "109.08");
        assert_eq!(to_cents(f64::NAN), 0);
        assert_eq!(to_cents(1e300), i64::MAX);
    }

    #[test]
    fn owner_query_allows_its_user_only() {
        assert!(OwnerQuery::default().allows("u-1"));
        assert!(OwnerQuery::of("u-1").allows("u-1"));
        assert!(!OwnerQuery::of("u-2").allows("u-1"));
        assert!(!OwnerQuery::of("").allows("u-1"));
        assert_eq!(OwnerQuery::of("u-1").pairs(), [("user_id", "u-1")]);
        assert!(OwnerQuery::default().pairs().is_empty());
    }

    #[test]
    fn statuses_parse_and_print() {
        for status in [
            OrderStatus::Pending,
            OrderStatus::Paid,
            OrderStatus::Cancelled,
        ] {
            assert_eq!(status.as_str().parse(), Ok(status));
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
        }
        assert!("PAID".parse::<OrderStatus>().is_err());
    }
}
