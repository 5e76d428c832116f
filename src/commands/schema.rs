//! `tether schema` (hidden): the JSON Schema of `tether.toml` on stdout, as committed in
//! `schema/tether.schema.json` for editors.

use super::{Failure, output};

pub fn run() -> Result<(), Failure> {
    output::write_stdout(crate::config::json_schema().as_bytes())?;
    Ok(())
}
