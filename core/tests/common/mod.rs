//! What the job and download vector runners share: subset matching and request shapes.
#![allow(dead_code)] // each runner uses a part

use serde_json::Value;

/// `expected` is a subset of `actual`: objects match key by key (extra keys in
/// `actual` are fine), arrays element by element with equal length, scalars
/// exactly. `null` in `expected` means "absent or null".
pub fn subset(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Null, Value::Null) => Ok(()),
        (Value::Null, _) => Err(format!("{path}: expected null/absent, got {actual}")),
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let av = a.get(k).unwrap_or(&Value::Null);
                subset(ev, av, &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!("{path}: expected {} items, got {}: {actual}", e.len(), a.len()));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                subset(ev, av, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() => Ok(()),
        _ if expected == actual => Ok(()),
        _ => Err(format!("{path}: expected {expected}, got {actual}")),
    }
}

/// Request headers as an object for matching. A bearer token never appears (the binding adds
/// it); a `client_secret_basic` token request carries its own `Authorization: Basic`.
pub fn request_json(action: &Value) -> Value {
    let mut a = action.clone();
    if let Some(req) = a.get_mut("request") {
        let headers: serde_json::Map<String, Value> = req["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| Some((h[0].as_str()?.to_owned(), h[1].clone())))
            .collect();
        req["headers"] = Value::Object(headers);
    }
    a
}
