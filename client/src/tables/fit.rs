//! Does a JSON value fit a column's type, exactly (nothing dropped, nothing
//! rounded, nothing truncated)? Checked while parsing, without building the value.
//!
//! The rule: a string fits Utf8, a boolean Boolean, an integer Int64 (when in
//! range) or Float64 (when exact in a double, |n| <= 2^53), any other number
//! Float64; an array fits a List when every item fits; an object fits a
//! Struct when every member is a field and fits it. `null` fits only as an
//! array item: a member whose value is null is kept as is, in `_extra`.

use arrow_schema::{DataType, Fields};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

const EXACT_IN_F64: u64 = 1 << 53;

/// The seed: deserializes to whether the value fits `dt`.
#[derive(Clone, Copy)]
pub(crate) struct Fits<'a> {
    pub dt: &'a DataType,
    /// An array item: null fits (it stays a null item).
    pub item: bool,
}

impl<'de> DeserializeSeed<'de> for Fits<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Fits<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(matches!(self.dt, DataType::Boolean))
    }
    fn visit_i64<E>(self, v: i64) -> Result<bool, E> {
        Ok(match self.dt {
            DataType::Int64 => true,
            DataType::Float64 => v.unsigned_abs() <= EXACT_IN_F64,
            _ => false,
        })
    }
    fn visit_u64<E>(self, v: u64) -> Result<bool, E> {
        Ok(match self.dt {
            DataType::Int64 => v <= i64::MAX as u64,
            DataType::Float64 => v <= EXACT_IN_F64,
            _ => false,
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<bool, E> {
        Ok(matches!(self.dt, DataType::Float64) && v.is_finite())
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(matches!(self.dt, DataType::Utf8))
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(self.item)
    }
    fn visit_none<E>(self) -> Result<bool, E> {
        Ok(self.item)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut fits = true;
        match self.dt {
            DataType::List(item) => {
                let seed = Fits { dt: item.data_type(), item: true };
                while fits {
                    match seq.next_element_seed(seed)? {
                        Some(f) => fits = f,
                        None => return Ok(true),
                    }
                }
            }
            _ => fits = false,
        }
        // The rest of the array must still be read.
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(fits)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let DataType::Struct(fields) = self.dt else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(false);
        };
        let mut fits = true;
        while let Some(found) = map.next_key_seed(Key(fields))? {
            match found {
                Some(i) if fits => fits = map.next_value_seed(Fits { dt: fields[i].data_type(), item: false })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    fits = false;
                }
            }
        }
        Ok(fits)
    }
}

/// A member name, looked up among the fields (its index), without allocating.
struct Key<'a>(&'a Fields);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|f| f.name() == v))
    }
}
