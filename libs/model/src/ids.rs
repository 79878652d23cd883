//! Newtypes for the names that cross process boundaries. Each is validated once, where it
//! enters (config, gRPC, HTTP), so that everything downstream, Redis key names included, can
//! rely on a small, safe alphabet.

use std::fmt;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} {value:?} is longer than {max} characters")]
    TooLong { kind: &'static str, value: String, max: usize },
    #[error("{kind} {value:?} may only contain ASCII letters, digits, '.', '_' and '-'")]
    BadCharacter { kind: &'static str, value: String },
}

const MAX_ID_LEN: usize = 128;

fn validate(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { kind, value: value.chars().take(40).collect(), max: MAX_ID_LEN });
    }
    let ok = value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(IdError::BadCharacter { kind, value: value.chars().take(40).collect() });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate($kind, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A check, named after the endpoint it probes (`us-west`, `api`, ...).
    CheckId,
    "check id"
);
id_type!(
    /// A prober: stable per node.
    ProberId,
    "prober id"
);
id_type!(
    /// A region (`us-west`, `eu-west`, ...).
    Region,
    "region"
);
id_type!(
    /// A name from the platform: a pod, a node, a namespace, a genre label value. Kubernetes
    /// names (RFC 1123) fit the alphabet; anything else is refused where it enters.
    EntityName,
    "name"
);

impl Region {
    /// The reserved name of the all-regions series: what every region of a check added up to,
    /// stored at ingest next to the per-region series. Real regions never start with `_`.
    pub const ALL_NAME: &'static str = "_all";

    /// The all-regions pseudo-region (see [`Region::ALL_NAME`]).
    pub fn all() -> Region {
        Region(Self::ALL_NAME.to_string())
    }

    /// The all-regions pseudo-region.
    pub fn is_all(&self) -> bool {
        self.0 == Self::ALL_NAME
    }

    /// Names starting with `_` are reserved for pseudo-regions: a prober may not claim one.
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with('_')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_safe_names_and_refuses_the_rest() {
        let cases: &[(&str, bool)] = &[
            ("us-west", true),
            ("api.v2_x", true),
            ("", false),
            ("a b", false),
            ("a:b", false),
            ("{tag}", false),
            ("a|b", false),
            ("ünïcode", false),
        ];
        for (input, ok) in cases {
            assert_eq!(CheckId::new(*input).is_ok(), *ok, "{input:?}");
        }
        assert!(matches!(Region::new("x".repeat(129)), Err(IdError::TooLong { .. })));
    }
}
