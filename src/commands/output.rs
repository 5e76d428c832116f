//! `-o json|yaml`: the one place a command's value becomes a document for scripts.
//!
//! Commands build one `serde` value and hand it here; JSON and YAML are serialized from
//! that same value, so the two formats never disagree. Text output stays with each
//! command, which knows its lines.

use std::io::{self, Write as _};

use serde::Serialize;

use crate::cli::Output;

/// A format for scripts: what `-o` asks for, when it is not text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    Json,
    Yaml,
}

/// How a value is laid out: a whole result, or one event of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Pretty JSON; a YAML document.
    Document,
    /// One line of JSON, so a script can read events line by line; a YAML document
    /// opened by `---`, so successive events form one YAML stream.
    Event,
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write JSON")]
    Json(#[source] serde_json::Error),
    #[error("cannot write YAML")]
    Yaml(#[source] serde_yaml_ng::Error),
    #[error("cannot write to stdout")]
    Stdout(#[source] io::Error),
}

/// The machine format `-o` asks for; `None` for text.
pub fn machine(output: Output) -> Option<Machine> {
    match output {
        Output::Text => None,
        Output::Json => Some(Machine::Json),
        Output::Yaml => Some(Machine::Yaml),
    }
}

/// `value` as a document in `format`, ending in a newline.
pub fn render<T: Serialize + ?Sized>(
    format: Machine,
    shape: Shape,
    value: &T,
) -> Result<String, OutputError> {
    let mut text = match (format, shape) {
        (Machine::Json, Shape::Document) => {
            serde_json::to_string_pretty(value).map_err(OutputError::Json)?
        }
        (Machine::Json, Shape::Event) => serde_json::to_string(value).map_err(OutputError::Json)?,
        (Machine::Yaml, shape) => {
            let doc = serde_yaml_ng::to_string(value).map_err(OutputError::Yaml)?;
            match shape {
                Shape::Document => doc,
                Shape::Event => format!("---\n{doc}"),
            }
        }
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Renders `value` and writes it to stdout.
pub fn print<T: Serialize + ?Sized>(
    format: Machine,
    shape: Shape,
    value: &T,
) -> Result<(), OutputError> {
    write_stdout(render(format, shape, value)?.as_bytes())
}

/// Writes to stdout at once; a closed pipe (`| head`) is success, as in ripgrep.
pub fn write_stdout(bytes: &[u8]) -> Result<(), OutputError> {
    let mut out = io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(OutputError::Stdout(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn value() -> serde_json::Value {
        json!({ "name": "orders", "ready": true, "ports": [8080, 9090], "note": null })
    }

    #[test]
    fn json_and_yaml_are_the_same_document() {
        let v = value();
        let json = render(Machine::Json, Shape::Document, &v).unwrap();
        let yaml = render(Machine::Yaml, Shape::Document, &v).unwrap();
        let from_json: serde_json::Value = serde_json::from_str(&json).unwrap();
        let from_yaml: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(from_json, v);
        assert_eq!(from_yaml, v);
        assert!(yaml.contains("name: orders\n"), "{yaml}");
    }

    #[test]
    fn an_event_is_one_json_line_or_one_yaml_document() {
        let v = value();
        let line = render(Machine::Json, Shape::Event, &v).unwrap();
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(line.ends_with("}\n"), "{line}");
        let doc = render(Machine::Yaml, Shape::Event, &v).unwrap();
        assert!(doc.starts_with("---\n"), "{doc}");
        let two = format!("{doc}{doc}");
        let docs: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&two)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        assert_eq!(docs, [v.clone(), v]);
    }

    #[test]
    fn every_document_ends_in_a_newline() {
        for format in [Machine::Json, Machine::Yaml] {
            for shape in [Shape::Document, Shape::Event] {
                let text = render(format, shape, &json!([])).unwrap();
                assert!(text.ends_with('\n'), "{format:?} {shape:?}: {text:?}");
            }
        }
    }

    #[test]
    fn text_asks_for_no_machine_format() {
        assert_eq!(machine(Output::Text), None);
        assert_eq!(machine(Output::Json), Some(Machine::Json));
        assert_eq!(machine(Output::Yaml), Some(Machine::Yaml));
    }
}
