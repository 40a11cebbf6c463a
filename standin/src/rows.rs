//! Row → op data: the service's mapping of PostgreSQL values to the JSON `data` string
//! (the service's `jpgwire` decoders and `sync-rules` value conversion).
//!
//! Values arrive in their PostgreSQL text output format (pgoutput text tuples, or the text
//! result format of the snapshot query), with the session settings `TimeZone=UTC`,
//! `DateStyle=ISO`, `extra_float_digits=1`. The mapping follows the service's `jpgwire`
//! decoders and sync-rules value conversion:
//!
//! - arrays (of the built-in element types) become JSON text: integers as numbers, floats as
//!   numbers (non-finite ones `null`), `bool` as 1/0, json/jsonb embedded as JSON, bytea as
//!   `null`, everything else as strings mapped like a column of that type;
//! - `date` ±infinity becomes `9999-12-31` / `0000-01-01`; `timestamp`/`timestamptz`
//!   ±infinity `9999-12-31 23:59:59` / `0000-01-01 00:00:00` (with `Z` for timestamptz),
//!   and values the service cannot parse (BC, years past 9999) `null`;
//! - with `timestamps_iso8601` (edition 2), timestamps use `T` and six fraction digits;
//! - floats print as JavaScript's `Number#toString` does, exponent form included.

use serde_json::Value as Json;

use crate::rules::Compatibility;

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
    pub const JSON: u32 = 114;
    pub const JSONB: u32 = 3802;
    pub const DATE: u32 = 1082;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;

    /// The element type of a built-in array type (the service's `ARRAY_TO_ELEM_OID`).
    pub fn element_of(array: u32) -> Option<u32> {
        Some(match array {
            1000 => 16,
            1001 => 17,
            1002 => 18,
            1003 => 19,
            1016 => 20,
            1005 => 21,
            1006 => 22,
            1007 => 23,
            1008 => 24,
            1009 => 25,
            1028 => 26,
            1010 => 27,
            1011 => 28,
            1012 => 29,
            1013 => 30,
            199 => 114,
            143 => 142,
            271 => 5069,
            1017 => 600,
            1018 => 601,
            1019 => 602,
            1020 => 603,
            1027 => 604,
            629 => 628,
            1021 => 700,
            1022 => 701,
            719 => 718,
            791 => 790,
            1040 => 829,
            1041 => 869,
            651 => 650,
            775 => 774,
            1034 => 1033,
            1014 => 1042,
            1015 => 1043,
            1182 => 1082,
            1183 => 1083,
            1115 => 1114,
            1185 => 1184,
            1187 => 1186,
            1270 => 1266,
            1561 => 1560,
            1563 => 1562,
            1231 => 1700,
            2201 => 1790,
            2951 => 2950,
            3221 => 3220,
            3643 => 3614,
            3645 => 3615,
            3807 => 3802,
            4073 => 4072,
            _ => return None,
        })
    }
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
/// - float4/float8: JSON number formatted like JavaScript, an integral value with `.0`
///   (`jsonbig_number`); NaN/±Infinity: `null`;
/// - bool: `1`/`0`;
/// - date/timestamp/timestamptz: see the module docs;
/// - arrays: a JSON string holding the array as JSON (module docs);
/// - everything else (text, varchar, uuid, numeric, json/jsonb, ...): a JSON string of the
///   text form.
pub fn json_value(type_oid: u32, text: &str, compat: Compatibility) -> Option<String> {
    if type_oid == oid::BYTEA {
        return None;
    }
    if let Some(element) = oid::element_of(type_oid) {
        return Some(json_string(&array_json(element, text, compat)));
    }
    Some(match scalar(type_oid, text, compat) {
        Scalar::Raw(json) => json,
        Scalar::Text(text) => json_string(&text),
        Scalar::Null => "null".to_owned(),
    })
}

/// One decoded scalar: JSON text to embed as is, text to quote, or null.
enum Scalar {
    Raw(String),
    Text(String),
    Null,
}

fn scalar(type_oid: u32, text: &str, compat: Compatibility) -> Scalar {
    match type_oid {
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID if is_integer(text) => {
            Scalar::Raw(text.to_owned())
        }
        oid::FLOAT4 | oid::FLOAT8 => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Scalar::Raw(jsonbig_number(f)),
            _ => Scalar::Null,
        },
        oid::BOOL => Scalar::Raw(if text == "t" { "1" } else { "0" }.to_owned()),
        oid::DATE => Scalar::Text(match text {
            "infinity" => "9999-12-31".to_owned(),
            "-infinity" => "0000-01-01".to_owned(),
            _ => text.to_owned(),
        }),
        oid::TIMESTAMP => timestamp(text, false, compat).map_or(Scalar::Null, Scalar::Text),
        oid::TIMESTAMPTZ => timestamp(text, true, compat).map_or(Scalar::Null, Scalar::Text),
        _ => Scalar::Text(text.to_owned()),
    }
}

/// A `timestamp` (`with_zone` false) or `timestamptz` (UTC session) in the service's form,
/// or `None` where the service has null.
fn timestamp(text: &str, with_zone: bool, compat: Compatibility) -> Option<String> {
    let (date, time, fraction) = match text {
        "infinity" => ("9999-12-31", "23:59:59", ""),
        "-infinity" => ("0000-01-01", "00:00:00", ""),
        _ => {
            // `YYYY-MM-DD HH:MM:SS[.ffffff][+zz]`, as the service's `timeRegex`.
            let (date, rest) = text.split_once(' ')?;
            let rest = if with_zone {
                rest.strip_suffix("+00")?
            } else {
                rest
            };
            let (time, fraction) = match rest.split_once('.') {
                Some((t, f)) => (t, f),
                None => (rest, ""),
            };
            let year_ok = date.len() == 10 && date.as_bytes()[4] == b'-';
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if !year_ok
                || !date.split('-').all(digits)
                || !time.split(':').all(digits)
                || !(fraction.is_empty() || digits(fraction))
            {
                return None; // BC, years past 9999, anything else the service cannot parse
            }
            (date, time, fraction)
        }
    };
    let zone = if with_zone { "Z" } else { "" };
    if compat.timestamps_iso8601 {
        let mut digits = fraction.to_owned();
        digits.truncate(6);
        Some(format!("{date}T{time}.{digits:0<6}{zone}"))
    } else if with_zone || matches!(text, "infinity" | "-infinity") {
        let dot = if fraction.is_empty() { "" } else { "." };
        Some(format!("{date} {time}{dot}{fraction}{zone}"))
    } else {
        // The service keeps a legacy timestamp's source text.
        Some(text.to_owned())
    }
}

/// A PostgreSQL array literal (`{a,"b c",NULL,{1,2}}`, optionally with a `[l:u]=` dimension
/// prefix) as JSON text, its elements mapped by `element` type.
fn array_json(element: u32, text: &str, compat: Compatibility) -> String {
    let body = match text.strip_prefix('[') {
        Some(_) => text.split_once('=').map_or(text, |(_, b)| b),
        None => text,
    };
    let mut out = String::with_capacity(body.len() + 8);
    let mut chars = body.chars().peekable();
    parse_array(&mut chars, element, compat, &mut out);
    out
}

fn parse_array(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    element: u32,
    compat: Compatibility,
    out: &mut String,
) {
    if chars.next() != Some('{') {
        out.push_str("null");
        return;
    }
    out.push('[');
    let mut first = true;
    loop {
        match chars.peek() {
            None => break,
            Some('}') => {
                chars.next();
                break;
            }
            Some(',') => {
                chars.next();
                continue;
            }
            _ => {}
        }
        if !first {
            out.push(',');
        }
        first = false;
        if chars.peek() == Some(&'{') {
            parse_array(chars, element, compat, out);
            continue;
        }
        let (raw, quoted) = if chars.peek() == Some(&'"') {
            chars.next();
            let mut value = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(escaped) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
            (value, true)
        } else {
            let mut value = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' || c == '}' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            (value, false)
        };
        if !quoted && raw.eq_ignore_ascii_case("NULL") {
            out.push_str("null");
            continue;
        }
        match element {
            oid::BYTEA => out.push_str("null"),
            oid::JSON | oid::JSONB => match serde_json::from_str::<Json>(&raw) {
                Ok(v) => out.push_str(&v.to_string()),
                Err(_) => push_json_string(out, &raw),
            },
            _ => match scalar(element, &raw, compat) {
                Scalar::Raw(json) => out.push_str(&json),
                Scalar::Text(text) => push_json_string(out, &text),
                Scalar::Null => out.push_str("null"),
            },
        }
    }
    out.push(']');
}

fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `f64` as JavaScript's `Number#toString` prints it: the shortest round-trip digits, plain
/// for `1e-7 < |f| < 1e21`, otherwise in exponent form with a signed exponent (`1e+21`,
/// `1.5e-7`).
pub(crate) fn format_js_number(f: f64) -> String {
    if f == 0.0 {
        return "0".to_owned();
    }
    let magnitude = f.abs();
    if (1e-6..1e21).contains(&magnitude) {
        return format!("{f}");
    }
    let exponent_form = format!("{f:e}");
    match exponent_form.split_once('e') {
        Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
        _ => exponent_form,
    }
}

/// A finite REAL as the service's storage writes it (`JSONBig.stringify`): JavaScript's digits,
/// and an integral value keeps a `.0` (`2.0`, not `2`) so that it parses back as REAL, in the
/// client's SQLite too.
pub(crate) fn jsonbig_number(f: f64) -> String {
    let mut text = format_js_number(f);
    let digits = text.strip_prefix('-').unwrap_or(&text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        text.push_str(".0");
    }
    text
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

/// A row's values, in column order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell<'a> {
    /// SQL NULL.
    Null,
    /// PostgreSQL's text form, mapped by the column's type.
    Text(&'a str),
    /// A value already mapped to JSON (an unchanged TOASTed value taken from the row's
    /// previous `data`).
    Json(String),
}

/// Builds `(object_id, data)` for a row: `data` is the JSON object of all columns in table
/// order (`id` included, bytea left out, and columns whose name starts with `_` left out, as
/// the service's `SELECT *` skips them), and `object_id` is the `id` column as text (`""`
/// without one).
pub fn row_data(
    columns: &[ColumnType],
    values: &[Cell<'_>],
    compat: Compatibility,
) -> (String, String) {
    row_json(columns, values, compat, false)
}

/// [`row_data`] with the columns whose name starts with `_` kept: the whole source row, as
/// the sync rules' queries see it (`SELECT _secret AS s`, `WHERE _owner = ...`).
pub fn source_row_data(
    columns: &[ColumnType],
    values: &[Cell<'_>],
    compat: Compatibility,
) -> (String, String) {
    row_json(columns, values, compat, true)
}

fn row_json(
    columns: &[ColumnType],
    values: &[Cell<'_>],
    compat: Compatibility,
    private_columns: bool,
) -> (String, String) {
    let mut data = String::with_capacity(16 * columns.len() + 16);
    let mut id = String::new();
    data.push('{');
    let mut first = true;
    for (column, value) in columns.iter().zip(values) {
        if column.name.starts_with('_') && !private_columns {
            continue;
        }
        let json = match value {
            Cell::Null => Some("null".to_owned()),
            Cell::Text(text) => json_value(column.type_oid, text, compat),
            Cell::Json(json) => Some(json.clone()),
        };
        let Some(json) = json else { continue };
        if column.name == "id" {
            match value {
                Cell::Text(text) => id = (*text).to_owned(),
                Cell::Json(json) => {
                    id = match serde_json::from_str::<Json>(json) {
                        Ok(Json::String(s)) => s,
                        _ => json.clone(),
                    }
                }
                Cell::Null => {}
            }
        }
        if !first {
            data.push(',');
        }
        first = false;
        push_json_string(&mut data, &column.name);
        data.push(':');
        data.push_str(&json);
    }
    data.push('}');
    (id, data)
}

/// Looks up one column of a previously sent `data` string and returns its JSON, as needed
/// to fill in an unchanged TOASTed value. Returns `None` if unavailable.
pub fn previous_json(previous_data: &str, column: &str) -> Option<String> {
    let object: serde_json::Map<String, Json> = serde_json::from_str(previous_data).ok()?;
    object.get(column).map(Json::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY: Compatibility = Compatibility {
        edition: 1,
        timestamps_iso8601: false,
    };
    const ISO: Compatibility = Compatibility {
        edition: 2,
        timestamps_iso8601: true,
    };

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
            col("g", 701),
            col("b", 16),
            col("j", 3802),
            col("raw", 17),
            col("n", 1700),
            col("t", 1184),
            col("nothing", 25),
        ];
        let values = [
            Cell::Text("a"),
            Cell::Text("1"),
            Cell::Text("9007199254740993"),
            Cell::Text("1.5"),
            Cell::Text("-2"),
            Cell::Text("t"),
            Cell::Text(r#"{"x": 1}"#),
            Cell::Text("\\x00"),
            Cell::Text("1.10"),
            Cell::Text("2024-01-02 03:04:05.123456+00"),
            Cell::Null,
        ];
        let (id, data) = row_data(&columns, &values, LEGACY);
        assert_eq!(id, "a");
        assert_eq!(
            data,
            r#"{"id":"a","k":1,"big":9007199254740993,"f":1.5,"g":-2.0,"b":1,"j":"{\"x\": 1}","n":"1.10","t":"2024-01-02 03:04:05.123456Z","nothing":null}"#
        );
    }

    /// `SELECT *` in the service's sync rules skips columns whose name starts with `_`
    /// (`SqlDataQuery`: `if (key.startsWith('_')) continue`); the rules-engine oracle test
    /// (`tests/sync_rules_oracle.rs`) showed the stand-in's stream sending them.
    #[test]
    fn select_star_leaves_out_underscore_columns() {
        let columns = [
            col("id", 25),
            col("_version", 23),
            col("v", 23),
            col("_", 25),
        ];
        let values = [
            Cell::Text("a"),
            Cell::Text("3"),
            Cell::Text("7"),
            Cell::Text("x"),
        ];
        assert_eq!(
            row_data(&columns, &values, LEGACY),
            ("a".to_owned(), r#"{"id":"a","v":7}"#.to_owned())
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

    /// The service decodes float4/float8 into JavaScript numbers and stores rows with
    /// `JSONBig.stringify` (`@powersync/service-jsonbig`), whose number stringifier appends
    /// `.0` when `toString()` is all digits, "to preserve the type".
    #[test]
    fn floats_print_like_javascript() {
        assert_eq!(json_value(701, "1", LEGACY).unwrap(), "1.0");
        assert_eq!(json_value(701, "-0", LEGACY).unwrap(), "0.0");
        assert_eq!(json_value(701, "0.1", LEGACY).unwrap(), "0.1");
        assert_eq!(json_value(701, "NaN", LEGACY).unwrap(), "null");
        assert_eq!(json_value(700, "Infinity", LEGACY).unwrap(), "null");
    }

    #[test]
    fn integer_id_and_missing_id() {
        let (id, data) = row_data(
            &[col("id", 23), col("v", 25)],
            &[Cell::Text("7"), Cell::Text("x")],
            LEGACY,
        );
        assert_eq!((id.as_str(), data.as_str()), ("7", r#"{"id":7,"v":"x"}"#));
        let (id, _) = row_data(&[col("v", 25)], &[Cell::Text("x")], LEGACY);
        assert_eq!(id, "");
    }

    #[test]
    fn previous_values_for_toast() {
        let data = r#"{"id":"a","big":"xyz","n":3}"#;
        assert_eq!(previous_json(data, "big").as_deref(), Some("\"xyz\""));
        assert_eq!(previous_json(data, "n").as_deref(), Some("3"));
        assert_eq!(previous_json(data, "missing"), None);
    }

    #[test]
    fn floats_outside_the_plain_range_use_exponents() {
        for (text, js) in [
            ("1e21", "1e+21"),
            ("1.5e300", "1.5e+300"),
            ("1e-7", "1e-7"),
            ("-2.5e-9", "-2.5e-9"),
            ("0.000001", "0.000001"),
            ("123456789012345680000", "123456789012345680000.0"),
        ] {
            assert_eq!(json_value(701, text, LEGACY).unwrap(), js, "{text}");
        }
    }

    #[test]
    fn dates_and_timestamps_like_the_service() {
        let cases = [
            (1082, "infinity", "\"9999-12-31\"", "\"9999-12-31\""),
            (1082, "-infinity", "\"0000-01-01\"", "\"0000-01-01\""),
            (1082, "2024-01-02", "\"2024-01-02\"", "\"2024-01-02\""),
            (
                1184,
                "2024-01-02 03:04:05.12+00",
                "\"2024-01-02 03:04:05.12Z\"",
                "\"2024-01-02T03:04:05.120000Z\"",
            ),
            (
                1184,
                "2024-01-02 03:04:05+00",
                "\"2024-01-02 03:04:05Z\"",
                "\"2024-01-02T03:04:05.000000Z\"",
            ),
            (
                1184,
                "infinity",
                "\"9999-12-31 23:59:59Z\"",
                "\"9999-12-31T23:59:59.000000Z\"",
            ),
            (
                1184,
                "-infinity",
                "\"0000-01-01 00:00:00Z\"",
                "\"0000-01-01T00:00:00.000000Z\"",
            ),
            (1184, "0044-03-15 12:00:00+00 BC", "null", "null"),
            (1184, "10022-09-08 21:19:28+00", "null", "null"),
            (
                1114,
                "2024-01-02 03:04:05.5",
                "\"2024-01-02 03:04:05.5\"",
                "\"2024-01-02T03:04:05.500000\"",
            ),
            (
                1114,
                "infinity",
                "\"9999-12-31 23:59:59\"",
                "\"9999-12-31T23:59:59.000000\"",
            ),
            (1114, "2024-01-02 03:04:05 BC", "null", "null"),
        ];
        for (oid, text, legacy, iso) in cases {
            assert_eq!(json_value(oid, text, LEGACY).unwrap(), legacy, "{text}");
            assert_eq!(json_value(oid, text, ISO).unwrap(), iso, "{text}");
        }
    }

    #[test]
    fn arrays_become_json() {
        let json = |oid: u32, text: &str| {
            let quoted = json_value(oid, text, LEGACY).unwrap();
            serde_json::from_str::<String>(&quoted).unwrap()
        };
        assert_eq!(json(1009, "{a,b}"), r#"["a","b"]"#);
        assert_eq!(
            json(1009, r#"{"x y","q\"uote",NULL,"NULL",""}"#),
            r#"["x y","q\"uote",null,"NULL",""]"#
        );
        assert_eq!(json(1007, "{{1,2},{3,-4}}"), "[[1,2],[3,-4]]");
        assert_eq!(json(1007, "[0:1]={5,6}"), "[5,6]");
        assert_eq!(json(1000, "{t,f}"), "[1,0]");
        assert_eq!(json(1022, "{1.5,NaN,1e21}"), "[1.5,null,1e+21]");
        assert_eq!(json(3807, r#"{"{\"a\": 1}",null}"#), r#"[{"a":1},null]"#);
        assert_eq!(
            json(1182, "{infinity,2024-01-02}"),
            r#"["9999-12-31","2024-01-02"]"#
        );
        assert_eq!(json(1009, "{}"), "[]");
    }
}
