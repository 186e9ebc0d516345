//! Sizes as flags and settings spell them (`512MiB`, `1GiB`, `2GB`, `1.5GiB`, bytes), parsed
//! by `bytesize`: binary units carry an `i`, decimal ones do not, as in Kubernetes quantities.

/// Parses `123`, `64KiB`, `512MiB`, `1GiB`, `2GB`, `1.5GiB`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|e| format!("{text:?} is not a size such as 512MiB or 1GiB ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("100"), Ok(100));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("1XB").is_err());
    }
}
