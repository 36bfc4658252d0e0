//! A sales event of the `ventes-temps-reel` topic (data contract, section
//! 6): parsing and validation of one message value.
//!
//! One parse decides. [`parse_event`] reads the JSON text once, with serde,
//! and refuses an object that gives a key twice (at any depth): readers
//! disagree on such a text (`serde_json::Value` keeps the last copy of a
//! key, a serde derive refuses the first repeat of one of its own fields,
//! another parser may keep the first), so two of them could read two event
//! ids or two amounts out of one message. Routing reads the event id from
//! this same parse ([`crate::route::routing_id`]).

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use chrono::{DateTime, Timelike, Utc};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::error::Category;
use serde_json::{Map, Value};

/// The largest `montant` of one sale (data contract, section 6). With it,
/// a partition's total stays finite (and exact to the cent far beyond any
/// real stream): a sum of amounts near `f64::MAX` overflowed to infinity
/// and its compensation to NaN.
pub const MAX_AMOUNT: f64 = 1e9;

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
    /// `event_time` more than the allowed clock skew ahead of the batch's
    /// processing time. Last: checkpoints (postcard) store a reason by its
    /// index, so a new reason goes at the end.
    FutureTime,
}

impl DlqReason {
    pub const ALL: [DlqReason; 8] = [
        DlqReason::NotJson,
        DlqReason::MissingField,
        DlqReason::InvalidField,
        DlqReason::NegativeAmount,
        DlqReason::InvalidTime,
        DlqReason::FutureTime,
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
            DlqReason::FutureTime => "future_time",
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
    pub(crate) fn new(reason: DlqReason, detail: impl Into<String>) -> Self {
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

/// The fields validation reads.
const FIELDS: [&str; 7] = [
    "event_id",
    "event_time",
    "pays",
    "montant",
    "quantite",
    "produit",
    "client",
];

fn given_twice<E: de::Error>(key: &str) -> E {
    E::custom(format!("the key {key:?} is given twice"))
}

/// A message value as one parse reads it.
enum Parsed {
    /// A JSON object whose keys are all distinct: the values of the fields
    /// validation reads (the others were checked for repeated keys and
    /// dropped).
    Object(Map<String, Value>),
    /// Any other JSON value.
    NotObject,
}

/// Reads a whole message value into [`Parsed`], refusing a repeated key.
struct TopLevel<'a> {
    /// The key whose value could not be read, for the error.
    failed_key: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = Parsed;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Parsed, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Parsed, E> {
        Ok(Parsed::NotObject)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Parsed, E> {
        Ok(Parsed::NotObject)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Parsed, E> {
        Ok(Parsed::NotObject)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Parsed, E> {
        Ok(Parsed::NotObject)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Parsed, E> {
        Ok(Parsed::NotObject)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Parsed, E> {
        Ok(Parsed::NotObject)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parsed, A::Error> {
        // Not an object whatever it holds, but read to its end so that the
        // text as a whole is checked to be JSON.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Parsed::NotObject)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut fields = Map::new();
        let mut others: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            // Keys compare as decoded: `"event\u005fid"` is `event_id`.
            let known = FIELDS.contains(&key.as_str());
            if fields.contains_key(&key) || others.contains(&key) {
                return Err(given_twice(&key));
            }
            let value = if known {
                map.next_value::<Value>().map(Some)
            } else {
                map.next_value_seed(NoRepeatedKeys).map(|()| None)
            };
            match value {
                Ok(Some(value)) => {
                    fields.insert(key, value);
                }
                Ok(None) => {
                    others.insert(key);
                }
                Err(err) => {
                    self.failed_key.replace(Some(key));
                    return Err(err);
                }
            }
        }
        Ok(Parsed::Object(fields))
    }
}

/// Reads any JSON value, keeping nothing, refusing an object that gives a
/// key twice at any depth.
struct NoRepeatedKeys;

impl<'de> DeserializeSeed<'de> for NoRepeatedKeys {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NoRepeatedKeys {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(NoRepeatedKeys)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if keys.contains(&key) {
                return Err(given_twice(&key));
            }
            map.next_value_seed(NoRepeatedKeys)?;
            keys.insert(key);
        }
        Ok(())
    }
}

/// Reads the message value once: its fields when it is a JSON object with
/// distinct keys.
fn read(payload: &[u8]) -> Result<Parsed, Rejection> {
    // UTF-8 first: serde_json's check of a text's syntax alone (below) does
    // not look inside strings.
    let text = std::str::from_utf8(payload)
        .map_err(|err| Rejection::new(DlqReason::NotJson, format!("not UTF-8: {err}")))?;
    let failed_key = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = TopLevel {
        failed_key: &failed_key,
    }
    .deserialize(&mut deserializer)
    .and_then(|parsed| deserializer.end().map(|()| parsed));
    parsed.map_err(|err| {
        let at = failed_key
            .into_inner()
            .map_or(String::new(), |key| format!("{key}: "));
        match err.classify() {
            // A repeated key: the visitors' own errors.
            Category::Data => Rejection::new(DlqReason::InvalidField, err.to_string()),
            // Valid JSON text whose value serde_json cannot hold: a number
            // beyond f64 (`1e400`; never read as infinity), a lone
            // surrogate escape. The syntax check alone does not evaluate
            // numbers or escapes.
            _ if serde_json::from_str::<IgnoredAny>(text).is_ok() => {
                Rejection::new(DlqReason::InvalidField, format!("{at}{err}"))
            }
            _ => Rejection::new(DlqReason::NotJson, format!("not JSON: {err}")),
        }
    })
}

/// Parses and validates one message value.
pub fn parse_event(payload: Option<&[u8]>) -> Result<SalesEvent, Rejection> {
    let payload =
        payload.ok_or_else(|| Rejection::new(DlqReason::NotJson, "the message has no value"))?;
    let Parsed::Object(object) = read(payload)? else {
        return Err(Rejection::new(
            DlqReason::InvalidField,
            "the message is not a JSON object",
        ));
    };
    let object = &object;

    let event_id = text(required(object, "event_id")?, "event_id")?;
    if event_id.trim().is_empty() {
        return Err(Rejection::new(DlqReason::InvalidField, "event_id is empty"));
    }
    let raw_time = text(required(object, "event_time")?, "event_time")?;
    let event_time = DateTime::parse_from_rfc3339(raw_time).map_err(|err| {
        Rejection::new(
            DlqReason::InvalidTime,
            format!("event_time {raw_time:?}: {err}"),
        )
    })?;
    // chrono reads a leap second (`23:59:60`, or `:60` in any minute) as
    // the second before it with a nanosecond count of 1e9 or more, then
    // counts it as that earlier second: two texts, one instant. The
    // contract calls it a bad time.
    if event_time.nanosecond() >= 1_000_000_000 {
        return Err(Rejection::new(
            DlqReason::InvalidTime,
            format!("event_time {raw_time:?} is a leap second"),
        ));
    }
    let event_time = event_time.with_timezone(&Utc);
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
    // serde_json never yields a non-finite number; checked anyway, as the
    // bound is what keeps the totals finite.
    if !montant.is_finite() || montant > MAX_AMOUNT {
        return Err(Rejection::new(
            DlqReason::InvalidField,
            format!("montant {montant:e} is above {MAX_AMOUNT:e}, the bound of one sale"),
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

    /// A valid event with `montant` given as this JSON text.
    fn with_amount(montant: &str) -> Result<SalesEvent, Rejection> {
        parse(&format!(
            r#"{{"event_id":"e","event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":{montant}}}"#
        ))
    }

    fn with_time(time: &str) -> Result<SalesEvent, Rejection> {
        parse(&format!(
            r#"{{"event_id":"e","event_time":"{time}","pays":"FR","montant":1}}"#
        ))
    }

    #[test]
    fn amounts_are_finite_and_at_most_one_sale() {
        assert_eq!(with_amount("1e9").unwrap().montant, 1e9);
        assert_eq!(with_amount("1000000000").unwrap().montant, 1e9);
        assert_eq!(with_amount("999999999.99").unwrap().montant, 999_999_999.99);
        assert_eq!(with_amount("0").unwrap().montant, 0.0);
        for refused in [
            "1000000001",
            "1000000000.5",
            "1e308",
            "1.7976931348623157e308",
            // Beyond f64: serde_json refuses it (never infinity), and the
            // message is still a JSON object: a bad field, not bad JSON.
            "1e400",
            "-1e400",
            "123456789012345678901234567890123456789012345678901234567890",
            // Text is not a number, whatever it says.
            r#""NaN""#,
            r#""Infinity""#,
            r#""-Infinity""#,
            r#""1e3""#,
        ] {
            let rejection = with_amount(refused).unwrap_err();
            assert_eq!(
                rejection.reason,
                DlqReason::InvalidField,
                "{refused}: {rejection:?}"
            );
        }
        assert!(
            with_amount("1e400")
                .unwrap_err()
                .detail
                .starts_with("montant: "),
            "the error names the field"
        );
        assert_eq!(
            with_amount("1e308").unwrap_err().error(),
            "invalid_field: montant 1e308 is above 1e9, the bound of one sale"
        );
        // Bare NaN and Infinity are not JSON at all.
        for not_json in ["NaN", "Infinity", "-Infinity", "1e", "tru"] {
            assert_eq!(
                with_amount(not_json).unwrap_err().reason,
                DlqReason::NotJson,
                "{not_json}"
            );
        }
    }

    #[test]
    fn a_leap_second_is_a_bad_time() {
        // chrono takes it, as the second before with 1e9 nanoseconds or more.
        let chrono_reads = DateTime::parse_from_rfc3339("2026-12-31T23:59:60Z").unwrap();
        assert!(chrono_reads.nanosecond() >= 1_000_000_000);
        for leap in [
            "2026-12-31T23:59:60Z",
            "2026-12-31T23:59:60.5Z",
            "2026-11-26T10:15:60Z",
            "2026-12-31T23:59:60+00:00",
        ] {
            let rejection = with_time(leap).unwrap_err();
            assert_eq!(rejection.reason, DlqReason::InvalidTime, "{leap}");
            assert!(rejection.detail.contains("leap second"), "{rejection:?}");
        }
        // The second before and after are fine.
        assert!(with_time("2026-12-31T23:59:59.999999Z").is_ok());
        assert!(with_time("2027-01-01T00:00:00Z").is_ok());
        assert_eq!(
            with_time("2026-12-31T23:59:61Z").unwrap_err().reason,
            DlqReason::InvalidTime
        );
    }

    #[test]
    fn an_object_giving_a_key_twice_is_refused() {
        let twice = [
            r#"{"event_id":"zK","event_id":"aK","event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":1}"#,
            r#"{"event_id":"e","event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":1,"montant":1000}"#,
            // The same value twice is still two keys.
            r#"{"event_id":"e","event_id":"e","event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":1}"#,
            // An escape spells the same key: keys compare decoded.
            r#"{"event_id":"zK","event\u005fid":"aK","event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":1}"#,
            // A field validation does not read.
            r#"{"event_id":"e","event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":1,"x":1,"x":2}"#,
            // Nested, in an object or an array.
            r#"{"event_id":"e","event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":1,"meta":{"k":1,"k":2}}"#,
            r#"{"event_id":"e","event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":1,"meta":[{"k":{"j":1,"j":1}}]}"#,
            // A duplicate in an ignored field's value after the fields.
            r#"{"x":{"k":null,"k":null},"event_id":"e","event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":1}"#,
        ];
        for json in twice {
            let rejection = parse(json).unwrap_err();
            assert_eq!(rejection.reason, DlqReason::InvalidField, "{json}");
            assert!(rejection.detail.contains("is given twice"), "{rejection:?}");
        }
        assert!(
            parse(twice[0])
                .unwrap_err()
                .detail
                .starts_with(r#"the key "event_id" is given twice"#)
        );
        // One key per object, the same name in two objects: fine.
        let event = parse(
            r#"{"event_id":"e","event_time":"2026-11-26T10:15:30Z","pays":"FR","montant":1,"a":{"k":1},"b":{"k":[{"k":2}]}}"#,
        )
        .unwrap();
        assert_eq!(event.event_id, "e");
    }

    #[test]
    fn text_that_is_not_json_stays_not_json() {
        for bad in [
            &b"{\"event_id\":\"e\",\"pays\":\"\xff\"}"[..],
            b"{\"event_id\":\"e\"} trailing",
            b"{\"event_id\":\"e\",}",
            b"",
        ] {
            assert_eq!(
                parse_event(Some(bad)).unwrap_err().reason,
                DlqReason::NotJson,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Any JSON value other than an object.
        for other in ["null", "1", "\"text\"", "[{\"a\":1,\"a\":2}]", "true"] {
            assert_eq!(reason(other), DlqReason::InvalidField, "{other}");
        }
    }
}
