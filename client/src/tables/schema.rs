//! The schema of a resource type, inferred from a sample of its lines.
//!
//! Each sampled line is inferred alone by arrow-json and the results are
//! merged here, so that one conflict (a field that is an object in one line
//! and a string in another) keeps the first type seen instead of failing the
//! whole inference: the other line's value then lands in `_extra`.

use arrow_schema::{DataType, Field, Fields, Schema};
use serde_json::Value;
use std::sync::Arc;

/// The Utf8 column that holds, as a JSON object text, the top-level fields of
/// a row that did not fit the schema (null when everything fit).
pub const EXTRA_COLUMN: &str = "_extra";

/// The schema of `lines`: their merged inferred fields, then `_extra`.
pub(crate) fn infer(lines: &[&[u8]]) -> Schema {
    let mut fields: Vec<Field> = Vec::new();
    for line in lines {
        // Lines that are not objects are reported when they are converted.
        let Ok(mut value @ Value::Object(_)) = serde_json::from_slice::<Value>(line) else { continue };
        drop_null_items(&mut value);
        match arrow_json::reader::infer_json_schema_from_iterator(std::iter::once(Ok(&value))) {
            Ok(schema) => merge_fields(&mut fields, schema.fields()),
            // A conflict inside the line (e.g. an array of objects and strings):
            // each top-level field alone, skipping the ones that cannot be inferred.
            Err(_) => {
                for (k, v) in value.as_object().into_iter().flatten() {
                    let one = Value::Object([(k.clone(), v.clone())].into_iter().collect());
                    if let Ok(schema) = arrow_json::reader::infer_json_schema_from_iterator(std::iter::once(Ok(&one))) {
                        merge_fields(&mut fields, schema.fields());
                    }
                }
            }
        }
    }
    let mut out: Vec<Field> = fields
        .into_iter()
        .filter(|f| f.name() != EXTRA_COLUMN)
        .filter_map(|f| prune(f.data_type()).map(|dt| Field::new(f.name(), dt, true)))
        .collect();
    out.push(Field::new(EXTRA_COLUMN, DataType::Utf8, true));
    Schema::new(out)
}

/// arrow-json infers an array's kind from its first item, so FHIR's
/// `"_given": [null, {"extension": [...]}]` would fail as "a scalar array
/// with an object"; null items say nothing about the type: leave them out.
fn drop_null_items(v: &mut Value) {
    match v {
        Value::Array(items) => {
            items.retain(|i| !i.is_null());
            items.iter_mut().for_each(drop_null_items);
        }
        Value::Object(members) => members.values_mut().for_each(drop_null_items),
        _ => {}
    }
}

fn merge_fields(acc: &mut Vec<Field>, new: &Fields) {
    for f in new {
        match acc.iter_mut().find(|a| a.name() == f.name()) {
            Some(a) => *a = Field::new(a.name(), merge(a.data_type(), f.data_type()), true),
            None => acc.push(f.as_ref().clone()),
        }
    }
}

/// The type that holds both; on a conflict the first one seen wins.
fn merge(a: &DataType, b: &DataType) -> DataType {
    match (a, b) {
        (DataType::Null, x) | (x, DataType::Null) => x.clone(),
        (DataType::Int64, DataType::Float64) | (DataType::Float64, DataType::Int64) => DataType::Float64,
        (DataType::List(x), DataType::List(y)) => {
            DataType::List(Arc::new(Field::new_list_field(merge(x.data_type(), y.data_type()), true)))
        }
        (DataType::Struct(x), DataType::Struct(y)) => {
            let mut acc: Vec<Field> = x.iter().map(|f| f.as_ref().clone()).collect();
            merge_fields(&mut acc, y);
            DataType::Struct(acc.into())
        }
        (a, _) => a.clone(),
    }
}

/// Parquet cannot store a struct without fields: an object that was always
/// empty in the sample has no column (its values land in `_extra`).
fn prune(dt: &DataType) -> Option<DataType> {
    match dt {
        DataType::Struct(fields) => {
            let kept: Vec<Field> =
                fields.iter().filter_map(|f| prune(f.data_type()).map(|dt| Field::new(f.name(), dt, true))).collect();
            (!kept.is_empty()).then(|| DataType::Struct(kept.into()))
        }
        DataType::List(item) => {
            prune(item.data_type()).map(|dt| DataType::List(Arc::new(Field::new_list_field(dt, true))))
        }
        dt => Some(dt.clone()),
    }
}
