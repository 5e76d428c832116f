//! The two messages on the wire, as JSON: what a patient orders and what a
//! worker delivers. The order id is also each message's key, so every message
//! about one order lands in the same partition, in order.

use serde::{Deserialize, Serialize};

/// An order, published to [`crate::ORDERS_TOPIC`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// `<patient>-<seq>`: unique per patient pod and readable in logs.
    pub id: String,
    pub patient: String,
}

impl Order {
    /// The `seq`th order of `patient`.
    pub fn new(patient: &str, seq: u64) -> Self {
        Order {
            id: format!("{patient}-{seq}"),
            patient: patient.to_owned(),
        }
    }
}

/// A delivery, published to [`crate::DELIVERIES_TOPIC`] once an order is worked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The id of the order delivered.
    pub order: String,
    /// The worker (pod) that did the work.
    pub worker: String,
}

/// A payload that is not the message it should be.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the message has no payload")]
    Empty,
    #[error("the payload is not the expected JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The JSON of `message`, the payload to publish.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // Plain structs of strings: serialising them cannot fail.
    serde_json::to_vec(message).unwrap_or_default()
}

/// The message in `payload`, as a consumer reads it.
pub fn decode<'a, T: Deserialize<'a>>(payload: Option<&'a [u8]>) -> Result<T, DecodeError> {
    let payload = payload
        .filter(|p| !p.is_empty())
        .ok_or(DecodeError::Empty)?;
    Ok(serde_json::from_slice(payload)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_is_the_documented_json() {
        let order = Order::new("patient-7d9f-x2", 12);
        assert_eq!(
            String::from_utf8(encode(&order)).unwrap(),
            r#"{"id":"patient-7d9f-x2-12","patient":"patient-7d9f-x2"}"#
        );
    }

    #[test]
    fn a_delivery_is_the_documented_json() {
        let delivery = Delivery {
            order: "p-1".into(),
            worker: "medicine-a".into(),
        };
        assert_eq!(
            String::from_utf8(encode(&delivery)).unwrap(),
            r#"{"order":"p-1","worker":"medicine-a"}"#
        );
    }

    #[test]
    fn an_order_survives_the_round_trip() {
        let order = Order::new("p", 1);
        let bytes = encode(&order);
        assert_eq!(decode::<Order>(Some(&bytes)).unwrap(), order);
    }

    #[test]
    fn extra_fields_are_ignored() {
        let bytes = br#"{"id":"p-1","patient":"p","priority":"high"}"#;
        assert_eq!(decode::<Order>(Some(bytes)).unwrap().id, "p-1");
    }

    #[test]
    fn an_empty_or_foreign_payload_is_an_error() {
        assert!(matches!(decode::<Order>(None), Err(DecodeError::Empty)));
        assert!(matches!(
            decode::<Order>(Some(b"")),
            Err(DecodeError::Empty)
        ));
        assert!(matches!(
            decode::<Order>(Some(b"not json")),
            Err(DecodeError::Json(_))
        ));
    }
}
