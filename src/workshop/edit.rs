//! The `edit` check's pure parts: the text an attendee edits in a source file, and the
//! verdict on whether the running service answers it, so a save is seen served end to
//! end rather than taken on trust.

use super::Outcome;

/// The first double-quoted text on the first line of `source` that contains `marker`
/// (`const GREETING: &str = "hello";` → `hello`), with `\"` and `\\` unescaped.
pub fn quoted_after(source: &str, marker: &str) -> Option<String> {
    let line = source.lines().find(|l| l.contains(marker))?;
    let after = &line[line.find(marker)? + marker.len()..];
    let mut chars = after[after.find('"')? + 1..].chars();
    let mut value = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => value.push(chars.next()?),
            c => value.push(c),
        }
    }
    None
}

/// The verdict: the text in `file` must differ from the `shipped` one, and `served` (the
/// body at `url`, or why there is none) must contain it.
pub fn judge(
    file: &str,
    marker: &str,
    value: Option<&str>,
    shipped: &str,
    url: &str,
    served: Result<String, String>,
) -> Outcome {
    let Some(value) = value else {
        return Outcome::fail(format!(
            "{file} has no line with `{marker}` and a quoted text"
        ));
    };
    if value == shipped {
        return Outcome::fail(format!(
            "`{marker}` in {file} is still \"{shipped}\": change the text and save"
        ));
    }
    match served {
        Ok(body) if body.contains(value) => Outcome::Pass,
        Ok(body) => Outcome::fail(format!(
            "{url} answers \"{}\", not the edited \"{value}\" yet: a running `tether up` \
             builds and serves each save",
            body.trim()
        )),
        Err(why) => Outcome::fail(format!("{url}: {why}")),
    }
}
