//! BSON framing of sync lines, typed the way the service's encoder (js-bson's `serialize`)
//! types JavaScript values: a number that is a safe integer within the int32 range (and not
//! `-0`) becomes an int32, every other number a double (so a u32 checksum of 2^31 or more, or
//! a count beyond i32, is a double); `null` (and `undefined`, which the service has where a
//! field is absent, e.g. `write_checkpoint`) becomes BSON null; strings, booleans, objects and
//! arrays map directly. Each line is one document with its own little-endian length prefix
//! (`application/vnd.powersync.bson-stream`).

use serde_json::{Map, Value};

const DOUBLE: u8 = 0x01;
const STRING: u8 = 0x02;
const DOCUMENT: u8 = 0x03;
const ARRAY: u8 = 0x04;
const BOOLEAN: u8 = 0x08;
const NULL: u8 = 0x0a;
const INT32: u8 = 0x10;

/// Encodes a JSON object as one BSON document. Keys must not contain NUL (none of the sync
/// lines' keys do; a key with NUL is cut at the NUL, as a C string would be).
pub fn document(object: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_document(&mut out, object.iter().map(|(k, v)| (k.as_str(), v)));
    out
}

fn write_document<'a>(out: &mut Vec<u8>, fields: impl Iterator<Item = (&'a str, &'a Value)>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    for (key, value) in fields {
        write_element(out, key, value);
    }
    out.push(0);
    let len = (out.len() - start) as i32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

fn write_key(out: &mut Vec<u8>, key: &str) {
    let bytes = key.as_bytes();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    out.extend_from_slice(&bytes[..end]);
    out.push(0);
}

fn write_element(out: &mut Vec<u8>, key: &str, value: &Value) {
    match value {
        Value::Null => {
            out.push(NULL);
            write_key(out, key);
        }
        Value::Bool(b) => {
            out.push(BOOLEAN);
            write_key(out, key);
            out.push(u8::from(*b));
        }
        Value::Number(n) => match int32(n) {
            Some(i) => {
                out.push(INT32);
                write_key(out, key);
                out.extend_from_slice(&i.to_le_bytes());
            }
            None => {
                out.push(DOUBLE);
                write_key(out, key);
                let f = n.as_f64().unwrap_or(f64::NAN);
                out.extend_from_slice(&f.to_le_bytes());
            }
        },
        Value::String(s) => {
            out.push(STRING);
            write_key(out, key);
            out.extend_from_slice(&((s.len() + 1) as i32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        Value::Array(items) => {
            out.push(ARRAY);
            write_key(out, key);
            let keys: Vec<String> = (0..items.len()).map(|i| i.to_string()).collect();
            write_document(out, keys.iter().map(String::as_str).zip(items));
        }
        Value::Object(map) => {
            out.push(DOCUMENT);
            write_key(out, key);
            write_document(out, map.iter().map(|(k, v)| (k.as_str(), v)));
        }
    }
}

/// js-bson's rule: int32 when the value is an integer in `[-2^31, 2^31)` and not `-0`.
fn int32(n: &serde_json::Number) -> Option<i32> {
    if let Some(i) = n.as_i64() {
        return i32::try_from(i).ok();
    }
    if n.is_u64() {
        return None;
    }
    let f = n.as_f64()?;
    let is_negative_zero = f == 0.0 && f.is_sign_negative();
    if f.fract() == 0.0 && !is_negative_zero && f >= f64::from(i32::MIN) && f <= f64::from(i32::MAX)
    {
        Some(f as i32)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Vec<u8> {
        document(v.as_object().unwrap())
    }

    #[test]
    fn numbers_are_typed_like_js_bson() {
        // {"a": 1} with int32.
        assert_eq!(
            doc(json!({"a": 1})),
            [12, 0, 0, 0, INT32, b'a', 0, 1, 0, 0, 0, 0]
        );
        // 2^31 does not fit: double.
        let d = doc(json!({"c": 2147483648u64}));
        assert_eq!(d[4], DOUBLE);
        assert_eq!(&d[7..15], &2147483648f64.to_le_bytes());
        // A u32 checksum and a negative i32 bucket checksum.
        assert_eq!(doc(json!({"c": 4294967295u64}))[4], DOUBLE);
        assert_eq!(doc(json!({"c": -1712802421}))[4], INT32);
        assert_eq!(doc(json!({"c": i32::MIN}))[4], INT32);
        assert_eq!(doc(json!({"c": -2147483649i64}))[4], DOUBLE);
        assert_eq!(doc(json!({"c": 1.5}))[4], DOUBLE);
        assert_eq!(doc(json!({"c": 3.0}))[4], INT32);
        assert_eq!(doc(json!({"c": -0.0}))[4], DOUBLE);
    }

    #[test]
    fn nested_documents_arrays_strings_and_null() {
        let d = doc(json!({"x": {"s": "hé", "n": null, "b": true, "l": ["a"]}}));
        assert_eq!(
            i32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize,
            d.len()
        );
        assert_eq!(*d.last().unwrap(), 0);
        // The string is length-prefixed (bytes + NUL) and NUL-terminated.
        let s_at = d.windows(2).position(|w| w == [b's', 0]).unwrap();
        assert_eq!(d[s_at - 1], STRING);
        assert_eq!(&d[s_at + 2..s_at + 6], &4i32.to_le_bytes());
        assert_eq!(&d[s_at + 6..s_at + 10], "hé\0".as_bytes());
        let n_at = d.windows(2).position(|w| w == [b'n', 0]).unwrap();
        assert_eq!(d[n_at - 1], NULL);
        let l_at = d.windows(2).position(|w| w == [b'l', 0]).unwrap();
        assert_eq!(d[l_at - 1], ARRAY);
        // The array is a document with key "0".
        assert_eq!(&d[l_at + 6..l_at + 8], &[STRING, b'0']);
    }
}
