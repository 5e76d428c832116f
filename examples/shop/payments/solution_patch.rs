//! Applies the workshop's solution patch to the payments handler.
//!
//! Shared by `build.rs`, which compiles the result under the `solution`
//! feature, and `tests/solution_patch.rs`, which checks on every plain
//! `cargo test` that the patch still applies: the patch file that attendees
//! read and the fixed service they run cannot drift apart.

use diffy::patch_set::{FileOperation, ParseOptions, PatchSet};

/// The patch, relative to the payments crate's directory.
pub const PATCH: &str = "../../../workspace-demo/solutions/payments-already-paid.patch";
/// The one file the patch changes, as the patch names it (from the
/// repository root, so that `git apply` and `patch -p1` work there).
pub const TARGET_IN_REPO: &str = "examples/shop/payments/src/pay.rs";
/// The same file, relative to the payments crate's directory.
pub const TARGET: &str = "src/pay.rs";

/// What applying the patch to the handler's source gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The handler with the fix.
    Patched(String),
    /// The source already has the fix (someone ran `git apply`): use it as
    /// it is.
    AlreadyApplied,
}

/// Applies `patch` (the text of [`PATCH`]) to `source` (the text of
/// [`TARGET`]). Fails, saying why, if the patch is not a change of
/// [`TARGET_IN_REPO`] alone or does not apply.
pub fn apply(patch: &str, source: &str) -> Result<Outcome, String> {
    let mut files = PatchSet::parse(patch, ParseOptions::gitdiff());
    let file = match files.next() {
        Some(Ok(file)) => file,
        Some(Err(e)) => return Err(format!("cannot parse the patch: {e}")),
        None => return Err("the patch changes no file".to_owned()),
    };
    if files.next().is_some() {
        return Err(format!("the patch must change {TARGET_IN_REPO} only"));
    }
    match file.operation().strip_prefix(1) {
        FileOperation::Modify { original, modified }
            if original == TARGET_IN_REPO && modified == TARGET_IN_REPO => {}
        other => {
            return Err(format!(
                "the patch must modify {TARGET_IN_REPO}, not {other:?}"
            ));
        }
    }
    let Some(patch) = file.patch().as_text() else {
        return Err("the patch is binary".to_owned());
    };

    match diffy::apply(source, patch) {
        Ok(patched) => Ok(Outcome::Patched(patched)),
        Err(_) if diffy::apply(source, &patch.reverse()).is_ok() => Ok(Outcome::AlreadyApplied),
        Err(e) => Err(format!(
            "the patch no longer applies to {TARGET_IN_REPO} ({e}): update it \
             to match the handler (edit a copy, then `diff -u`)"
        )),
    }
}

/// The handler's source ready for `include!`, which rejects inner doc
/// comments: `//!` lines become plain `//` comments.
pub fn includable(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.strip_prefix("//!") {
            Some(rest) => format!("//{rest}\n"),
            None => format!("{line}\n"),
        })
        .collect()
}
