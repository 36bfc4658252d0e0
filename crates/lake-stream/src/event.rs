//! A sales event of the `ventes-temps-reel` topic (data contract, section
//! 6): parsing and validation of one message value.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A valid sales event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SalesEvent {
    pub event_id: String,
    pub event_time: DateTime<Utc>,
    /// The country as sent (any alias); standardized when aggregated.
    pub pays: String,
    pub montant: f64,
    pub quantite: Option<i64>,
    /// Product name or id, as text.
    pub produit: Option<String>,
    pub client: Option<String>,
}

/// Why a message goes to the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DlqReason {
    /// Not UTF-8 JSON (or no value at all).
    NotJson,
    /// A required field is absent or null.
    MissingField,
    /// A field has the wrong type or an impossible value.
    InvalidField,
    /// `montant` below zero.
    NegativeAmount,
    /// `event_time` is not an RFC 3339 timestamp.
    InvalidTime,
    /// Older than the watermark of its partition.
    Late,
    /// An event_id already counted.
    Duplicate,
}

impl DlqReason {
    pub const ALL: [DlqReason; 7] = [
        DlqReason::NotJson,
        DlqReason::MissingField,
        DlqReason::InvalidField,
        DlqReason::NegativeAmount,
        DlqReason::InvalidTime,
        DlqReason::Late,
        DlqReason::Duplicate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DlqReason::NotJson => "not_json",
            DlqReason::MissingField => "missing_field",
            DlqReason::InvalidField => "invalid_field",
            DlqReason::NegativeAmount => "negative_amount",
            DlqReason::InvalidTime => "invalid_time",
            DlqReason::Late => "late",
            DlqReason::Duplicate => "duplicate",
        }
    }
}

/// A message that is not a countable event, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub reason: DlqReason,
    pub detail: String,
}

impl Rejection {
    fn new(reason: DlqReason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }

    /// `reason: detail`, as stored in the DLQ's `error` column.
    pub fn error(&self) -> String {
        format!("{}: {}", self.reason.as_str(), self.detail)
    }
}

fn required<'a>(object: &'a Map<String, Value>, field: &str) -> Result<&'a Value, Rejection> {
    match object.get(field) {
        None | Some(Value::Null) => Err(Rejection::new(
            DlqReason::MissingField,
            format!("{field} is missing"),
        )),
        Some(value) => Ok(value),
    }
}

fn text<'a>(value: &'a Value, field: &str) -> Result<&'a str, Rejection> {
    value
        .as_str()
        .ok_or_else(|| Rejection::new(DlqReason::InvalidField, format!("{field} must be a string")))
}

fn optional_text(
    object: &Map<String, Value>,
    field: &str,
    numbers_too: bool,
) -> Result<Option<String>, Rejection> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if numbers_too => Ok(Some(n.to_string())),
        Some(_) => Err(Rejection::new(
            DlqReason::InvalidField,
            format!("{field} must be a string"),
        )),
    }
}

/// Parses and validates one message value.
pub fn parse_event(payload: Option<&[u8]>) -> Result<SalesEvent, Rejection> {
    let payload =
        payload.ok_or_else(|| Rejection::new(DlqReason::NotJson, "the message has no value"))?;
    let value: Value = serde_json::from_slice(payload)
        .map_err(|err| Rejection::new(DlqReason::NotJson, format!("not JSON: {err}")))?;
    let object = value.as_object().ok_or_else(|| {
        Rejection::new(DlqReason::InvalidField, "the message is not a JSON object")
    })?;

    let event_id = text(required(object, "event_id")?, "event_id")?;
    if event_id.trim().is_empty() {
        return Err(Rejection::new(DlqReason::InvalidField, "event_id is empty"));
    }
    let raw_time = text(required(object, "event_time")?, "event_time")?;
    let event_time = DateTime::parse_from_rfc3339(raw_time)
        .map_err(|err| {
            Rejection::new(
                DlqReason::InvalidTime,
                format!("event_time {raw_time:?}: {err}"),
            )
        })?
        .with_timezone(&Utc);
    let pays = text(required(object, "pays")?, "pays")?;
    if pays.trim().is_empty() {
        return Err(Rejection::new(DlqReason::InvalidField, "pays is blank"));
    }
    let montant = required(object, "montant")?
        .as_f64()
        .ok_or_else(|| Rejection::new(DlqReason::InvalidField, "montant must be a number"))?;
    if montant < 0.0 {
        return Err(Rejection::new(
            DlqReason::NegativeAmount,
            format!("montant {montant} is negative"),
        ));
    }
    let quantite = match object.get("quantite") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_i64() {
            Some(q) if q >= 1 => Some(q),
            _ => {
                return Err(Rejection::new(
                    DlqReason::InvalidField,
                    format!("quantite must be an integer >= 1, got {value}"),
                ));
            }
        },
    };
    Ok(SalesEvent {
        event_id: event_id.to_string(),
        event_time,
        pays: pays.to_string(),
        montant,
        quantite,
        produit: optional_text(object, "produit", true)?,
        client: optional_text(object, "client", false)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<SalesEvent, Rejection> {
        parse_event(Some(json.as_bytes()))
    }

    fn reason(json: &str) -> DlqReason {
        parse(json).unwrap_err().reason
    }

    const VALID: &str = r#"{"event_id":"e1","event_time":"2026-11-26T10:15:30Z","pays":"France","montant":12.5,"quantite":2,"produit":"Chai","client":"ALFKI"}"#;

    #[test]
    fn a_complete_event_parses() {
        let event = parse(VALID).unwrap();
        assert_eq!(event.event_id, "e1");
        assert_eq!(event.event_time.to_rfc3339(), "2026-11-26T10:15:30+00:00");
        assert_eq!((event.montant, event.quantite), (12.5, Some(2)));
        assert_eq!(event.produit.as_deref(), Some("Chai"));
    }

    #[test]
    fn optional_fields_may_be_absent_or_null_and_products_may_be_ids() {
        let event = parse(r#"{"event_id":"e","event_time":"2026-11-26T10:15:30+02:00","pays":"USA ","montant":0,"quantite":null,"produit":11}"#).unwrap();
        assert_eq!(
            (event.quantite, event.produit.as_deref(), event.client),
            (None, Some("11"), None)
        );
        assert_eq!(event.event_time.to_rfc3339(), "2026-11-26T08:15:30+00:00");
    }

    #[test]
    fn every_rejection_reason() {
        assert_eq!(parse_event(None).unwrap_err().reason, DlqReason::NotJson);
        assert_eq!(reason("{not json"), DlqReason::NotJson);
        assert_eq!(reason("[1,2]"), DlqReason::InvalidField);
        assert_eq!(
            reason(r#"{"event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":1}"#),
            DlqReason::MissingField
        );
        assert_eq!(
            reason(
                r#"{"event_id":null,"event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":1}"#
            ),
            DlqReason::MissingField
        );
        assert_eq!(
            reason(r#"{"event_id":7,"event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":1}"#),
            DlqReason::InvalidField
        );
        assert_eq!(
            reason(r#"{"event_id":"e","event_time":"yesterday","pays":"FR","montant":1}"#),
            DlqReason::InvalidTime
        );
        assert_eq!(
            reason(
                r#"{"event_id":"e","event_time":"2026-11-26T10:15:30Z","pays":"  ","montant":1}"#
            ),
            DlqReason::InvalidField
        );
        assert_eq!(
            reason(r#"{"event_id":"e","event_time":"2026-11-26T10:15:30Z","pays":"FR"}"#),
            DlqReason::MissingField
        );
        assert_eq!(
            reason(
                r#"{"event_id":"e","event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":"12"}"#
            ),
            DlqReason::InvalidField
        );
        assert_eq!(
            reason(
                r#"{"event_id":"e","event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":-0.5}"#
            ),
            DlqReason::NegativeAmount
        );
        assert_eq!(
            reason(
                r#"{"event_id":"e","event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":1,"quantite":0}"#
            ),
            DlqReason::InvalidField
        );
        assert_eq!(
            reason(
                r#"{"event_id":"e","event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":1,"quantite":1.5}"#
            ),
            DlqReason::InvalidField
        );
        assert_eq!(
            reason(
                r#"{"event_id":"e","event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":1,"client":5}"#
            ),
            DlqReason::InvalidField
        );
    }

    #[test]
    fn errors_name_the_field() {
        let rejection = parse(
            r#"{"event_id":"e","event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":-3}"#,
        )
        .unwrap_err();
        assert_eq!(rejection.error(), "negative_amount: montant -3 is negative");
        let rejection = parse(r#"{"event_id":"e","pays":"FR","montant":3}"#).unwrap_err();
        assert_eq!(rejection.error(), "missing_field: event_time is missing");
    }
}
