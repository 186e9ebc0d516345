//! Ray ids as fixed-size byte arrays: parsed once from the base64 (events) or hex (URLs)
//! forms, printed as lowercase hex like Ray's dashboard does.

use std::fmt;

/// A Ray id of `N` bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id<const N: usize>(pub [u8; N]);

/// `TaskID`: 24 bytes.
pub type TaskId = Id<24>;
/// `JobID`: 4 bytes.
pub type JobId = Id<4>;
/// `ActorID`: 16 bytes.
pub type ActorId = Id<16>;
/// `NodeID`: 28 bytes.
pub type NodeId = Id<28>;
/// `WorkerID`: 28 bytes.
pub type WorkerId = Id<28>;
/// `PlacementGroupID`: 18 bytes.
pub type PlacementGroupId = Id<18>;

impl<const N: usize> Id<N> {
    /// Decodes Ray's base64 form (as in events). Empty or wrong-sized input gives `None`.
    pub fn from_base64(text: &str) -> Option<Self> {
        if text.is_empty() || text.len() > 4 * N.div_ceil(3) + 4 {
            return None;
        }
        // base64-simd: a third faster than the base64 crate on ids this short, and every
        // task event line carries a few. It panics on an output too short: with the length
        // checked above, 64 bytes hold any input.
        let mut buf = [0u8; 64];
        let decoded = base64_simd::STANDARD
            .decode(text.as_bytes(), base64_simd::Out::from_slice(&mut buf))
            .ok()?;
        (decoded.len() == N).then(|| {
            let mut out = [0u8; N];
            out.copy_from_slice(decoded);
            Id(out)
        })
    }

    /// Decodes the lowercase or uppercase hex form (as in URLs and dashboard JSON).
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; N];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Id(out))
    }

    /// Either encoding: hex when it has the hex length, base64 otherwise.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() == 2 * N {
            Self::from_hex(text)
        } else {
            Self::from_base64(text)
        }
    }

    /// Ray's "nil" ids are all `0xff`.
    pub fn is_nil(&self) -> bool {
        self.0.iter().all(|b| *b == 0xff)
    }

    /// Lowercase hex.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl TaskId {
    /// The job id is the last 4 bytes of a task id.
    pub fn job_id(&self) -> JobId {
        let mut out = [0u8; 4];
        out.copy_from_slice(&self.0[20..]);
        Id(out)
    }
}

impl ActorId {
    /// The job id is the last 4 bytes of an actor id.
    pub fn job_id(&self) -> JobId {
        let mut out = [0u8; 4];
        out.copy_from_slice(&self.0[12..]);
        Id(out)
    }
}

impl<const N: usize> fmt::Display for Id<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl<const N: usize> fmt::Debug for Id<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Hex in JSON (as Ray prints ids), raw bytes in binary formats (the session index).
impl<const N: usize> serde::Serialize for Id<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.hex())
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de, const N: usize> serde::Deserialize<'de> for Id<N> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<const N: usize>;
        impl<const N: usize> serde::de::Visitor<'_> for Visitor<N> {
            type Value = Id<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a Ray id of {N} bytes")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Id::from_hex(v)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                <[u8; N]>::try_from(v)
                    .map(Id)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(Visitor::<N>)
        } else {
            // Not `deserialize_bytes`: that asks for borrowed bytes, which a reader-based
            // decoder (the session index's columns) must keep for the whole decode.
            d.deserialize_byte_buf(Visitor::<N>)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_hex_agree() {
        let task = TaskId::from_base64("4NwXTINZkDT///////////////8BAAAA").unwrap();
        assert_eq!(
            task.hex(),
            "e0dc174c83599034ffffffffffffffffffffffff01000000"
        );
        assert_eq!(TaskId::parse(&task.hex()), Some(task));
        assert_eq!(task.job_id().hex(), "01000000");
        let node = NodeId::from_base64("seQ/dkvK4DMXQ0FWVFr2pjbviiBKTnmbPKlTog==").unwrap();
        assert_eq!(
            node.hex(),
            "b1e43f764bcae03317434156545af6a636ef8a204a4e799b3ca953a2"
        );
        assert!(JobId::from_base64("").is_none());
        // Not base64, or without its padding.
        assert!(JobId::from_base64("BA*AAA==").is_none());
        assert!(JobId::from_base64("BAAAAA").is_none());
        assert_eq!(
            JobId::from_base64("BAAAAA==").map(|j| j.hex()).as_deref(),
            Some("04000000")
        );
        assert!(JobId::from_base64("seQ/dkvK4DMXQ0FWVFr2pjbviiBKTnmbPKlTog==").is_none());
        assert!(
            TaskId::from_base64("////////////////////////////////")
                .unwrap()
                .is_nil()
        );
    }
}
