//! The JSON Schema of `tether.toml`, derived from the serde types that read it, so the
//! schema editors check against is the parser's own shape. Committed as
//! `schema/tether.schema.json`; a test keeps that file equal to this.

use super::schema::File;

/// The schema as pretty JSON, ending in a newline (the committed file's exact text).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(File);
    let mut text = serde_json::to_string_pretty(&schema)
        .expect("a schema is a JSON value: maps with string keys, no floats that are NaN");
    text.push('\n');
    text
}
