//! Op checksums the way the PowerSync service computes them (its `service-core/src/util/utils.ts`:
//! `hashData`, `hashDelete`, `addChecksums`).

use sha2::{Digest, Sha256};

/// First 4 bytes of `sha256(input)` read as a little-endian u32.
fn sha256_le_u32(input: &[&str]) -> u32 {
    let mut hasher = Sha256::new();
    for part in input {
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Checksum of a PUT: `sha256("put." + object_type + "." + object_id + "." + data)`.
pub fn put_checksum(object_type: &str, object_id: &str, data: &str) -> u32 {
    sha256_le_u32(&["put.", object_type, ".", object_id, ".", data])
}

/// Checksum of a REMOVE: `sha256("delete." + subkey)`.
pub fn remove_checksum(subkey: &str) -> u32 {
    sha256_le_u32(&["delete.", subkey])
}

/// The subkey the stand-in uses for a row: always `"<object_type>/<object_id>"`, so a REMOVE
/// always supersedes the row's PUT on the client.
pub fn subkey(object_type: &str, object_id: &str) -> String {
    format!("{object_type}/{object_id}")
}

/// The bucket checksum as the service prints it: the wrapping u32 sum as a signed i32.
pub fn as_signed(sum: u32) -> i32 {
    sum as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test vectors: the first from the service's storage snapshot tests (`put.test.a...`), the
    // others computed with the same formula.
    #[test]
    fn matches_the_service_vectors() {
        assert_eq!(
            put_checksum("test", "a", r#"{"id":"a","description":"Test 1"}"#),
            2582164875
        );
        assert_eq!(as_signed(2582164875), -1712802421);
        let a = put_checksum("lww", "a", r#"{"id":"a","k":1,"v":2}"#);
        let b = put_checksum("lww", "a", r#"{"id":"a","k":1,"v":10}"#);
        let c = remove_checksum(&subkey("lww", "a"));
        assert_eq!(a, 213352229);
        assert_eq!(b, 658235363);
        assert_eq!(c, 726350553);
        assert_eq!(a.wrapping_add(b).wrapping_add(c), 1597938145);
    }
}
