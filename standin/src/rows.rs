//! Row → op data: the service's mapping of PostgreSQL values to the JSON `data` string
//! (sync-protocol.md §4).
//!
//! Values arrive in their PostgreSQL text output format (pgoutput text tuples, or the text
//! result format of the snapshot query), with the session settings `TimeZone=UTC`,
//! `DateStyle=ISO`, `extra_float_digits=1`.

use serde_json::Value as Json;

/// Type OIDs with a special mapping.
mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const OID: u32 = 26;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const TIMESTAMPTZ: u32 = 1184;
}

/// A column as far as the data mapping is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnType {
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
}

/// The JSON text of one value, or `None` when the column is left out of `data` (bytea).
///
/// - int2/int4/int8/oid: JSON integer (text as is, no quotes);
/// - float4/float8: JSON number formatted like JavaScript (`1`, `1.5`); NaN/±Infinity: `null`;
/// - bool: `1`/`0`;
/// - timestamptz: the ISO text with `+00` replaced by `Z`;
/// - everything else (text, varchar, uuid, numeric, json/jsonb, date, arrays, ...): a JSON
///   string of the text form.
pub fn json_value(type_oid: u32, text: &str) -> Option<String> {
    Some(match type_oid {
        oid::BYTEA => return None,
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID if is_integer(text) => text.to_owned(),
        oid::FLOAT4 | oid::FLOAT8 => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => format_js_number(f),
            _ => "null".to_owned(),
        },
        oid::BOOL => match text {
            "t" => "1".to_owned(),
            _ => "0".to_owned(),
        },
        oid::TIMESTAMPTZ => json_string(&match text.strip_suffix("+00") {
            Some(utc) => format!("{utc}Z"),
            None => text.to_owned(),
        }),
        _ => json_string(text),
    })
}

fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `f64` as JavaScript's `Number#toString` prints it, for the usual range (Rust's `Display`
/// gives the shortest round-trip digits without an exponent, as JS does below 1e21).
fn format_js_number(f: f64) -> String {
    if f == 0.0 {
        return "0".to_owned();
    }
    format!("{f}")
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    push_json_string(&mut out, text);
    out
}

/// Appends `text` as a JSON string literal, escaped as JavaScript's `JSON.stringify` does
/// (`"`, `\\`, and control characters; `\b \f \n \r \t` short forms, else `\u00xx`).
pub fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        let escape: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            0..=0x1f => None,
            _ => continue,
        };
        out.push_str(&text[start..i]);
        match escape {
            Some(e) => out.push_str(e),
            None => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", b);
            }
        }
        start = i + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

/// Appends the JSON of one non-NULL value (bytea must be filtered out before).
fn push_value(out: &mut String, type_oid: u32, text: &str) {
    match type_oid {
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID if is_integer(text) => out.push_str(text),
        oid::FLOAT4 | oid::FLOAT8 | oid::BOOL | oid::TIMESTAMPTZ => {
            if let Some(v) = json_value(type_oid, text) {
                out.push_str(&v);
            }
        }
        _ => push_json_string(out, text),
    }
}

/// A row's values as text (`None` = SQL NULL), in column order.
pub type TextRow<'a> = [Option<&'a str>];

/// Builds `(object_id, data)` for a row: `data` is the JSON object of all columns in table
/// order (`id` included), and `object_id` is the `id` column as text (`""` without one).
pub fn row_data(columns: &[ColumnType], values: &TextRow<'_>) -> (String, String) {
    let mut data = String::with_capacity(16 * columns.len() + 16);
    let mut id = String::new();
    data.push('{');
    let mut first = true;
    for (column, value) in columns.iter().zip(values) {
        if column.type_oid == oid::BYTEA && value.is_some() {
            continue;
        }
        if column.name == "id"
            && let Some(text) = value
        {
            id = (*text).to_owned();
        }
        if !first {
            data.push(',');
        }
        first = false;
        push_json_string(&mut data, &column.name);
        data.push(':');
        match value {
            None => data.push_str("null"),
            Some(text) => push_value(&mut data, column.type_oid, text),
        }
    }
    data.push('}');
    (id, data)
}

/// Looks up one column of a previously sent `data` string and returns its text form, as
/// needed to fill in an unchanged TOASTed value. Returns `None` if unavailable.
pub fn previous_text(previous_data: &str, column: &str) -> Option<String> {
    let object: serde_json::Map<String, Json> = serde_json::from_str(previous_data).ok()?;
    match object.get(column)? {
        Json::String(s) => Some(s.clone()),
        Json::Null => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, type_oid: u32) -> ColumnType {
        ColumnType {
            name: name.to_owned(),
            type_oid,
        }
    }

    #[test]
    fn maps_types_like_the_service() {
        let columns = [
            col("id", 25),
            col("k", 23),
            col("big", 20),
            col("f", 701),
            col("b", 16),
            col("j", 3802),
            col("raw", 17),
            col("n", 1700),
            col("t", 1184),
            col("nothing", 25),
        ];
        let values = [
            Some("a"),
            Some("1"),
            Some("9007199254740993"),
            Some("1.5"),
            Some("t"),
            Some(r#"{"x": 1}"#),
            Some("\\x00"),
            Some("1.10"),
            Some("2024-01-02 03:04:05.123456+00"),
            None,
        ];
        let (id, data) = row_data(&columns, &values);
        assert_eq!(id, "a");
        assert_eq!(
            data,
            r#"{"id":"a","k":1,"big":9007199254740993,"f":1.5,"b":1,"j":"{\"x\": 1}","n":"1.10","t":"2024-01-02 03:04:05.123456Z","nothing":null}"#
        );
    }

    #[test]
    fn strings_escape_like_json_stringify() {
        for text in [
            "plain",
            "q\"uote",
            "back\\slash",
            "nl\n tab\t cr\r",
            "\u{1}\u{8}\u{c}\u{1f}\u{7f}",
            "ünï ☃",
        ] {
            let mine = json_string(text);
            assert_eq!(serde_json::from_str::<String>(&mine).unwrap(), text);
            assert_eq!(
                mine,
                serde_json::to_string(text).unwrap(),
                "same escapes as serde_json"
            );
        }
        assert_eq!(json_string("\u{1}"), "\"\\u0001\"");
    }

    #[test]
    fn floats_print_like_javascript() {
        assert_eq!(json_value(701, "1").unwrap(), "1");
        assert_eq!(json_value(701, "-0").unwrap(), "0");
        assert_eq!(json_value(701, "0.1").unwrap(), "0.1");
        assert_eq!(json_value(701, "NaN").unwrap(), "null");
        assert_eq!(json_value(700, "Infinity").unwrap(), "null");
    }

    #[test]
    fn integer_id_and_missing_id() {
        let (id, data) = row_data(&[col("id", 23), col("v", 25)], &[Some("7"), Some("x")]);
        assert_eq!((id.as_str(), data.as_str()), ("7", r#"{"id":7,"v":"x"}"#));
        let (id, _) = row_data(&[col("v", 25)], &[Some("x")]);
        assert_eq!(id, "");
    }

    #[test]
    fn previous_values_for_toast() {
        let data = r#"{"id":"a","big":"xyz","n":3}"#;
        assert_eq!(previous_text(data, "big").as_deref(), Some("xyz"));
        assert_eq!(previous_text(data, "n").as_deref(), Some("3"));
        assert_eq!(previous_text(data, "missing"), None);
    }
}
