//! Reading the engine's internally tagged enums (`{"code": "usage", ...}`,
//! `{"kind": "manifest", ...}`, `{"state": "polling", ...}`) back from JSON.
//!
//! `#[derive(Deserialize)]` on an internally tagged enum buffers the whole
//! object in serde's private `Content` tree (the tag may come anywhere) and
//! then instantiates every variant's visitor for that tree. For the saved
//! state (`Job::from_json`) that machinery was 22.7 KB of the gzipped `.wasm`.
//! These impls read the object once into a `serde_json::Map` (which the engine
//! already links for FHIR resources), take the tag out, and build the variant
//! from the remaining fields: the same JSON shapes, with one small
//! non-generic function per enum. Serialization stays derived.
//!
//! Behaviour matches the derive: unknown fields are ignored, a missing
//! `Option` field is `None`, a missing required field or an unknown tag is an
//! error naming it. Every enum has a round-trip test over all its variants.

use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The fields of one tagged object, with the tag taken out.
pub(crate) struct Fields(Map<String, Value>);

/// Reads a JSON object and splits off its tag. `build` turns (tag, fields)
/// into the value; it is a plain function so each enum's variant table is
/// compiled once, whatever deserializer drives it.
pub(crate) fn deserialize<'de, D, T>(
    d: D,
    tag: &'static str,
    build: fn(&str, &mut Fields) -> Result<T, serde_json::Error>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let map = Map::<String, Value>::deserialize(d)?;
    split(map, tag, build).map_err(D::Error::custom)
}

fn split<T>(
    mut map: Map<String, Value>,
    tag: &'static str,
    build: fn(&str, &mut Fields) -> Result<T, serde_json::Error>,
) -> Result<T, serde_json::Error> {
    let name = match map.remove(tag) {
        Some(Value::String(s)) => s,
        Some(_) => return Err(serde_json::Error::custom(format_args!("`{tag}` must be a string"))),
        None => return Err(serde_json::Error::missing_field(tag)),
    };
    build(&name, &mut Fields(map))
}

impl Fields {
    /// A required field.
    pub(crate) fn req<T: DeserializeOwned>(&mut self, key: &'static str) -> Result<T, serde_json::Error> {
        match self.0.remove(key) {
            Some(v) => T::deserialize(v).map_err(|e| in_field(key, e)),
            None => Err(serde_json::Error::missing_field(key)),
        }
    }

    /// All the remaining fields as one struct (a newtype variant's payload).
    pub(crate) fn rest<T: DeserializeOwned>(&mut self) -> Result<T, serde_json::Error> {
        T::deserialize(Value::Object(std::mem::take(&mut self.0)))
    }

    /// An optional field: absent or `null` is `None`.
    pub(crate) fn opt<T: DeserializeOwned>(&mut self, key: &'static str) -> Result<Option<T>, serde_json::Error> {
        match self.0.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => T::deserialize(v).map(Some).map_err(|e| in_field(key, e)),
        }
    }
}

fn in_field(key: &str, e: serde_json::Error) -> serde_json::Error {
    serde_json::Error::custom(format_args!("{key}: {e}"))
}

/// The error for a tag that names no variant.
pub(crate) fn unknown(name: &str, expected: &'static [&'static str]) -> serde_json::Error {
    serde_json::Error::unknown_variant(name, expected)
}

#[cfg(test)]
pub(crate) fn round_trip<T>(values: &[T])
where
    T: serde::Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    for v in values {
        let text = serde_json::to_string(v).unwrap();
        let back: T = serde_json::from_slice(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(&back, v, "{text}");
        // and through a Value (the other deserializer that reaches these impls)
        let back: T = serde_json::from_value(serde_json::to_value(v).unwrap()).unwrap();
        assert_eq!(&back, v, "{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Two {
        A { n: u32, s: Option<String> },
        B,
    }

    impl<'de> Deserialize<'de> for Two {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            deserialize(d, "t", |name, f| match name {
                "a" => Ok(Two::A { n: f.req("n")?, s: f.opt("s")? }),
                "b" => Ok(Two::B),
                other => Err(unknown(other, &["a", "b"])),
            })
        }
    }

    #[test]
    fn tag_anywhere_unknown_fields_ignored_options_default() {
        let v: Two = serde_json::from_str(r#"{"n": 3, "x": [1], "t": "a"}"#).unwrap();
        assert_eq!(v, Two::A { n: 3, s: None });
        let v: Two = serde_json::from_str(r#"{"t": "a", "n": 3, "s": "hi"}"#).unwrap();
        assert_eq!(v, Two::A { n: 3, s: Some("hi".into()) });
        assert_eq!(serde_json::from_str::<Two>(r#"{"t": "b"}"#).unwrap(), Two::B);
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let e = serde_json::from_str::<Two>(r#"{"t": "c"}"#).unwrap_err().to_string();
        assert!(e.contains("unknown variant `c`"), "{e}");
        let e = serde_json::from_str::<Two>(r#"{"t": "a"}"#).unwrap_err().to_string();
        assert!(e.contains("missing field `n`"), "{e}");
        let e = serde_json::from_str::<Two>(r#"{"n": 1}"#).unwrap_err().to_string();
        assert!(e.contains("missing field `t`"), "{e}");
        let e = serde_json::from_str::<Two>(r#"{"t": 1}"#).unwrap_err().to_string();
        assert!(e.contains("must be a string"), "{e}");
        let e = serde_json::from_str::<Two>(r#"{"t": "a", "n": "x"}"#).unwrap_err().to_string();
        assert!(e.starts_with("n: invalid type"), "{e}");
        assert!(serde_json::from_str::<Two>("[1]").is_err());
    }
}
