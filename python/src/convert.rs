//! JSON ↔ Python without a detour through text: engine values (serde) become
//! dicts, and NDJSON lines are parsed straight into Python objects.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyList, PyString};
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;

/// A serde value as a Python object (dict, list, str, int, float, bool, None).
pub fn value_to_py(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    Ok(match v {
        Value::Null => py.None(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any().unbind()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any().unbind()
            } else {
                PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any().unbind()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any().unbind(),
        Value::Array(a) => {
            let list = PyList::empty(py);
            for x in a {
                list.append(value_to_py(py, x)?)?;
            }
            list.into_any().unbind()
        }
        Value::Object(o) => {
            let d = PyDict::new(py);
            for (k, x) in o {
                d.set_item(k, value_to_py(py, x)?)?;
            }
            d.into_any().unbind()
        }
    })
}

/// Any engine type as a Python object, through its camelCase serde form.
pub fn to_py<T: Serialize>(py: Python<'_>, v: &T) -> PyResult<Py<PyAny>> {
    let value = serde_json::to_value(v).map_err(|e| PyValueError::new_err(e.to_string()))?;
    value_to_py(py, &value)
}

/// Parses NDJSON lines into Python objects directly (no intermediate
/// `serde_json::Value`), reusing the `str` objects of repeated keys.
pub struct LineParser {
    keys: HashMap<Box<str>, Py<PyString>>,
}

const MAX_CACHED_KEY: usize = 64;
const MAX_CACHED_KEYS: usize = 4096;

impl LineParser {
    pub fn new() -> Self {
        LineParser { keys: HashMap::new() }
    }

    /// One JSON document as a Python object.
    pub fn parse(&mut self, py: Python<'_>, line: &[u8]) -> PyResult<Py<PyAny>> {
        let mut de = serde_json::Deserializer::from_slice(line);
        let seed = PySeed { py, keys: self };
        let v = seed
            .deserialize(&mut de)
            .and_then(|v| de.end().map(|()| v))
            .map_err(|e| PyValueError::new_err(format!("invalid JSON line: {e}")))?;
        Ok(v)
    }

    fn key<'py>(&mut self, py: Python<'py>, k: &str) -> Py<PyString> {
        if k.len() > MAX_CACHED_KEY {
            return PyString::new(py, k).unbind();
        }
        if let Some(s) = self.keys.get(k) {
            return s.clone_ref(py);
        }
        let s = PyString::new(py, k).unbind();
        if self.keys.len() < MAX_CACHED_KEYS {
            self.keys.insert(k.into(), s.clone_ref(py));
        }
        s
    }
}

struct PySeed<'a, 'py> {
    py: Python<'py>,
    keys: &'a mut LineParser,
}

impl<'de> DeserializeSeed<'de> for PySeed<'_, '_> {
    type Value = Py<PyAny>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

fn py_err<E: serde::de::Error>(e: PyErr) -> E {
    E::custom(e.to_string())
}

impl<'de> Visitor<'de> for PySeed<'_, '_> {
    type Value = Py<PyAny>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(self.py.None())
    }
    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(PyBool::new(self.py, b).to_owned().into_any().unbind())
    }
    fn visit_i64<E>(self, i: i64) -> Result<Self::Value, E> {
        let Ok(v) = i.into_pyobject(self.py);
        Ok(v.into_any().unbind())
    }
    fn visit_u64<E>(self, u: u64) -> Result<Self::Value, E> {
        let Ok(v) = u.into_pyobject(self.py);
        Ok(v.into_any().unbind())
    }
    fn visit_f64<E>(self, f: f64) -> Result<Self::Value, E> {
        Ok(PyFloat::new(self.py, f).into_any().unbind())
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(PyString::new(self.py, s).into_any().unbind())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let py = self.py;
        let list = PyList::empty(py);
        while let Some(x) = seq.next_element_seed(PySeed { py, keys: &mut *self.keys })? {
            list.append(x).map_err(py_err)?;
        }
        Ok(list.into_any().unbind())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let py = self.py;
        let dict = PyDict::new(py);
        while let Some(k) = map.next_key_seed(KeySeed { py, keys: &mut *self.keys })? {
            let v = map.next_value_seed(PySeed { py, keys: &mut *self.keys })?;
            dict.set_item(k, v).map_err(py_err)?;
        }
        Ok(dict.into_any().unbind())
    }
}

struct KeySeed<'a, 'py> {
    py: Python<'py>,
    keys: &'a mut LineParser,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_, '_> {
    type Value = Py<PyString>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_, '_> {
    type Value = Py<PyString>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(self.keys.key(self.py, s))
    }
}
