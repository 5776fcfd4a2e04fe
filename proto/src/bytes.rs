//! Byte sizes as configs write them: `"64MiB"`, `"1GB"`, `"4096"` (bytes).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A number of bytes, written with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// A byte size that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid size {0:?} (expected a whole number with an optional unit, like \"512MiB\" or \"2GB\")")]
pub struct ByteSizeError(String);

const UNITS: &[(&str, u64)] = &[
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
];

impl FromStr for ByteSize {
    type Err = ByteSizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let (number, factor) = UNITS
            .iter()
            .find_map(|(u, f)| t.strip_suffix(u).map(|n| (n.trim(), *f)))
            .unwrap_or((t, 1));
        number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(factor))
            .map(ByteSize)
            .ok_or_else(|| ByteSizeError(s.to_string()))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, factor) in &UNITS[..4] {
            if self.0 >= *factor && self.0.is_multiple_of(*factor) {
                return write!(f, "{}{unit}", self.0 / factor);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A visitor rather than an untagged enum: untagged enums buffer the value, and the
        // error then loses its position in the file.
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl serde::de::Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of bytes, or a size with a unit like \"512MiB\"")
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(n))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<ByteSize, E> {
        u64::try_from(n).map(ByteSize).map_err(|_| {
            E::invalid_value(
                serde::de::Unexpected::Signed(n),
                &"a size of 0 bytes or more",
            )
        })
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ByteSize, E> {
        s.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!("64MiB".parse::<ByteSize>().unwrap(), ByteSize(64 << 20));
        assert_eq!("2GB".parse::<ByteSize>().unwrap(), ByteSize(2_000_000_000));
        assert_eq!("4096".parse::<ByteSize>().unwrap(), ByteSize(4096));
        assert_eq!("10 KiB".parse::<ByteSize>().unwrap(), ByteSize(10240));
        assert!("lots".parse::<ByteSize>().is_err());
        assert!("1.5GB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn deserializes_numbers_and_text() {
        #[derive(Deserialize)]
        struct Fill {
            size: ByteSize,
        }
        let read = |t: &str| toml::from_str::<Fill>(t).map(|f| f.size);
        assert_eq!(read("size = 4096").unwrap(), ByteSize(4096));
        assert_eq!(read("size = \"1KiB\"").unwrap(), ByteSize(1024));
        let error = read("size = -1").unwrap_err();
        assert!(
            error.message().contains("a size of 0 bytes or more"),
            "{error}"
        );
        assert_eq!(error.span(), Some(7..9));
        let error = read("size = \"lots\"").unwrap_err();
        assert!(error.message().contains("invalid size \"lots\""), "{error}");
        assert_eq!(error.span(), Some(7..13));
    }

    #[test]
    fn displays_round_trip() {
        for s in ["64MiB", "3GiB", "1000B", "7B"] {
            assert_eq!(s.parse::<ByteSize>().unwrap().to_string(), s);
        }
    }
}
