//! The workshop's solution patch still applies to the handler, checked by
//! every plain `cargo test` (the `solution` feature's build would fail
//! otherwise, but only when someone builds it).

#[path = "../solution_patch.rs"]
mod solution_patch;

use solution_patch::{Outcome, apply, includable};

const PATCH: &str =
    include_str!("../../../../workspace-demo/solutions/payments-already-paid.patch");
const HANDLER: &str = include_str!("../src/pay.rs");

fn patched() -> String {
    match apply(PATCH, HANDLER) {
        Ok(Outcome::Patched(patched)) => patched,
        other => panic!("the solution patch does not apply to src/pay.rs: {other:?}"),
    }
}

#[test]
fn the_patch_applies_to_the_pristine_handler() {
    let patched = patched();
    assert!(
        !HANDLER.contains("Already Paid"),
        "src/pay.rs already has the fix"
    );
    assert!(patched.contains(r#"return Err(ApiError::forbidden("Already Paid"));"#));
}

#[test]
fn the_patched_handler_is_recognised_as_already_applied() {
    assert_eq!(apply(PATCH, &patched()), Ok(Outcome::AlreadyApplied));
}

#[test]
fn the_paths_in_this_test_match_the_shared_constants() {
    assert!(solution_patch::PATCH.ends_with("payments-already-paid.patch"));
    assert_eq!(solution_patch::TARGET, "src/pay.rs");
    assert!(solution_patch::TARGET_IN_REPO.ends_with(solution_patch::TARGET));
}

#[test]
fn a_patch_that_no_longer_applies_is_an_error() {
    let drifted = HANDLER.replace(
        "let order = state.orders.get",
        "let order = state.orders.fetch",
    );
    let err = apply(PATCH, &drifted).expect_err("must not apply");
    assert!(err.contains("no longer applies"), "{err}");
}

#[test]
fn a_patch_of_another_file_is_an_error() {
    let other = PATCH.replace("payments/src/pay.rs", "payments/src/lib.rs");
    let err = apply(&other, HANDLER).expect_err("must be refused");
    assert!(err.contains("must modify"), "{err}");
}

#[test]
fn includable_source_has_no_inner_doc_comments() {
    let source = includable(&patched());
    assert!(!source.lines().any(|line| line.starts_with("//!")));
    assert_eq!(source.lines().count(), patched().lines().count());
}
