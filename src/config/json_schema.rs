//! The JSON Schema of `tether.toml`, derived from the serde types that read it, so the
//! schema editors check against is the parser's own shape. Committed as
//! `schema/tether.schema.json`; a test keeps that file equal to this.

use serde_json::Value;

use super::schema::File;

/// The schema as pretty JSON, ending in a newline (the committed file's exact text).
pub fn json_schema() -> String {
    let mut value = schemars::schema_for!(File).to_value();
    drop_null(&mut value);
    // Back into a Schema, whose serializer puts `$schema` and `title` first, `$defs` last.
    let schema = schemars::Schema::try_from(value).expect("an edited schema is still an object");
    let mut text = serde_json::to_string_pretty(&schema)
        .expect("a schema is a JSON value: maps with string keys, no floats that are NaN");
    text.push('\n');
    text
}

/// TOML has no null: an optional key is one left out, so the `null` that schemars allows
/// for every `Option` is taken out (`"type": ["string", "null"]` becomes `"string"`,
/// `anyOf: [X, {"type": "null"}]` becomes `X`).
fn drop_null(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if let [one] = types.as_slice() {
                    let one = one.clone();
                    map.insert("type".into(), one);
                }
            }
            if let Some(Value::Array(any)) = map.get_mut("anyOf") {
                any.retain(|s| s.get("type").is_none_or(|t| t != "null"));
                if let [one] = any.as_slice() {
                    let one = one.clone();
                    map.remove("anyOf");
                    if let Value::Object(inner) = one {
                        map.extend(inner);
                    }
                }
            }
            map.values_mut().for_each(drop_null);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn optional_keys_are_absent_never_null() {
        let mut v = json!({
            "properties": {
                "a": { "type": ["string", "null"] },
                "b": { "anyOf": [{ "$ref": "#/$defs/B" }, { "type": "null" }], "description": "b" },
                "c": { "anyOf": [{ "type": "string" }, { "type": "array" }] }
            }
        });
        drop_null(&mut v);
        assert_eq!(
            v,
            json!({
                "properties": {
                    "a": { "type": "string" },
                    "b": { "$ref": "#/$defs/B", "description": "b" },
                    "c": { "anyOf": [{ "type": "string" }, { "type": "array" }] }
                }
            })
        );
        assert!(!json_schema().contains("null"));
    }
}
