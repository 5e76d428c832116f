//! The planner's decisions, on a two-service project held in memory.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    time::Instant,
};

use super::*;
use crate::config::{Image, Location, Manifests, PortForward, Resource};

fn p(s: &str) -> PathBuf {
    PathBuf::from("/p").join(s)
}

fn at(file: &str) -> Location {
    Location {
        file: p(file),
        line: 1,
        col: 1,
    }
}

fn image(name: &str, inputs: &[&str]) -> Image {
    Image {
        name: name.into(),
        context: p(name),
        dockerfile: p(&format!("{name}/Dockerfile")),
        host_build: None,
        inputs: inputs.iter().map(|i| p(i)).collect(),
        live_update: None,
        declared_at: at(&format!("{name}/tether.toml")),
    }
}

fn resource(name: &str, manifests: &[&str]) -> Resource {
    Resource {
        name: name.into(),
        namespace: "api".into(),
        force_namespace: false,
        manifests: manifests.iter().map(|m| Manifests::File(p(m))).collect(),
        depends_on: vec![],
        port_forwards: vec![],
        ready_cmd: None,
        status_cmd: None,
        overrides: Default::default(),
        declared_at: at(&format!("{name}/tether.toml")),
    }
}

/// users and orders, each an image and a resource, both compiling `common/src`.
fn project() -> Project {
    Project {
        root: PathBuf::from("/p"),
        allow_contexts: vec![],
        registry: None,
        profiles: BTreeMap::new(),
        default_profile: None,
        images: BTreeMap::from([
            ("users".into(), image("users", &["users/src", "common/src"])),
            (
                "orders".into(),
                image("orders", &["orders/src", "common/src"]),
            ),
        ]),
        resources: BTreeMap::from([
            ("users".into(), resource("users", &["users/k8s.yaml"])),
            ("orders".into(), resource("orders", &["orders/k8s.yaml"])),
        ]),
    }
}

fn set(of: &[&str]) -> BTreeSet<String> {
    of.iter().map(|s| s.to_string()).collect()
}

/// The files as one walk finds them, with each image's digest now.
fn facts(digests: &[(&str, &str)]) -> Facts {
    let files = |of: &[&str]| of.iter().map(|f| p(f)).collect();
    Facts {
        inputs: BTreeMap::from([
            (
                "users".into(),
                files(&["users/src/main.rs", "common/src/lib.rs"]),
            ),
            (
                "orders".into(),
                files(&["orders/src/main.rs", "common/src/lib.rs"]),
            ),
        ]),
        digests: digests
            .iter()
            .map(|(i, d)| (i.to_string(), Ok(d.to_string())))
            .collect(),
        uses: BTreeMap::from([
            ("users".into(), set(&["users"])),
            ("orders".into(), set(&["orders"])),
        ]),
        gone: BTreeSet::new(),
        // The planner does not read objects; the round applies them.
        objects: BTreeMap::new(),
    }
}

/// Both images were last built at digests `u1` and `o1`.
fn last() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("users".into(), "u1".into()),
        ("orders".into(), "o1".into()),
    ])
}

fn change(paths: &[&str]) -> ChangeSet {
    let now = Instant::now();
    ChangeSet {
        paths: paths.iter().map(|f| p(f)).collect(),
        rescan: None,
        unwatched: vec![],
        first_event: now,
        settled: now,
    }
}

fn builds(plan: &Plan) -> BTreeSet<String> {
    plan.builds.keys().cloned().collect()
}

fn applies(plan: &Plan) -> BTreeSet<String> {
    plan.applies.keys().cloned().collect()
}

#[test]
fn a_file_that_is_an_input_of_nothing_builds_nothing_and_is_named() {
    let plan = plan(
        &change(&["users/NOTES.md"]),
        &project(),
        &facts(&[("users", "u1"), ("orders", "o1")]),
        &last(),
    );
    assert!(
        plan.builds.is_empty() && plan.applies.is_empty(),
        "{plan:?}"
    );
    assert_eq!(plan.unrelated, vec![PathBuf::from("users/NOTES.md")]);
    assert!(!plan.reload);
}

#[test]
fn a_dockerfile_change_rebuilds_its_image_even_outside_the_inputs() {
    let plan = plan(
        &change(&["users/Dockerfile"]),
        &project(),
        &facts(&[("users", "u2"), ("orders", "o1")]),
        &last(),
    );
    assert_eq!(builds(&plan), set(&["users"]));
    assert_eq!(
        plan.builds["users"].as_deref().ok(),
        Some("u2"),
        "built at the digest the plan saw"
    );
    assert_eq!(applies(&plan), set(&["users"]));
    assert!(plan.unrelated.is_empty(), "{plan:?}");
}

#[test]
fn a_manifest_only_change_applies_without_building() {
    let plan = plan(
        &change(&["orders/k8s.yaml"]),
        &project(),
        &facts(&[("users", "u1"), ("orders", "o1")]),
        &last(),
    );
    assert!(plan.builds.is_empty(), "{plan:?}");
    assert_eq!(applies(&plan), set(&["orders"]));
    assert_eq!(plan.applies["orders"], set(&["orders"]));
}

#[test]
fn a_shared_input_rebuilds_both_images_and_a_save_without_edits_nothing() {
    let shared = change(&["common/src/lib.rs"]);
    let plan_after_edit = plan(
        &shared,
        &project(),
        &facts(&[("users", "u2"), ("orders", "o2")]),
        &last(),
    );
    assert_eq!(builds(&plan_after_edit), set(&["users", "orders"]));
    assert_eq!(applies(&plan_after_edit), set(&["users", "orders"]));

    let plan_after_save = plan(
        &shared,
        &project(),
        &facts(&[("users", "u1"), ("orders", "o1")]),
        &last(),
    );
    assert!(
        plan_after_save.builds.is_empty() && plan_after_save.applies.is_empty(),
        "{plan_after_save:?}"
    );
    assert!(plan_after_save.unrelated.is_empty());
}

#[test]
fn a_deleted_input_counts_as_a_change() {
    let mut f = facts(&[("users", "u2"), ("orders", "o1")]);
    f.gone.insert(p("users/src/old.rs"));
    let plan = plan(&change(&["users/src/old.rs"]), &project(), &f, &last());
    assert_eq!(builds(&plan), set(&["users"]));
}

#[test]
fn a_tether_toml_change_reloads_and_the_new_file_plans_what_it_adds_or_changes() {
    let old = project();
    let plan = plan(
        &change(&["users/tether.toml"]),
        &old,
        &facts(&[("users", "u1"), ("orders", "o1")]),
        &last(),
    );
    assert!(plan.reload);
    assert!(
        plan.builds.is_empty() && plan.applies.is_empty(),
        "{plan:?}"
    );
    assert!(
        plan.unrelated.is_empty(),
        "tether.toml is not unrelated: {plan:?}"
    );

    // The new file: users gains a manifest, a new resource `extra` appears, orders goes.
    let mut new = project();
    new.resources
        .get_mut("users")
        .unwrap()
        .manifests
        .push(Manifests::File(p("users/cm.yaml")));
    let mut extra = resource("extra", &["extra.yaml"]);
    extra.port_forwards.push(PortForward {
        local: 9000,
        remote: 80,
    });
    new.resources.insert("extra".into(), extra);
    new.resources.remove("orders");
    let (plan, diff) = reloaded(
        &old,
        &new,
        &facts(&[("users", "u1"), ("orders", "o1")]),
        &last(),
    );
    assert_eq!(
        diff,
        ConfigChange {
            added: vec!["extra".into()],
            removed: vec!["orders".into()],
            changed: vec!["users".into()],
            unforwarded: vec!["extra".into()],
        }
    );
    assert_eq!(applies(&plan), set(&["extra", "users"]));
    assert!(plan.builds.is_empty(), "no digest moved: {plan:?}");
}

#[test]
fn a_resource_that_starts_using_an_image_never_built_builds_it() {
    let mut project = project();
    project
        .images
        .insert("worker".into(), image("worker", &["worker/src"]));
    let mut f = facts(&[("users", "u1"), ("orders", "o1"), ("worker", "w1")]);
    f.uses.insert("users".into(), set(&["users", "worker"]));
    let plan = plan(&change(&["users/k8s.yaml"]), &project, &f, &last());
    assert_eq!(builds(&plan), set(&["worker"]));
    assert_eq!(plan.applies["users"], set(&["users", "worker"]));
}

#[test]
fn a_rescan_names_no_unrelated_files() {
    let mut c = change(&["users/NOTES.md", "users/src/main.rs"]);
    c.rescan = Some(crate::watch::Rescan::Overflow);
    let plan = plan(
        &c,
        &project(),
        &facts(&[("users", "u2"), ("orders", "o1")]),
        &last(),
    );
    assert_eq!(builds(&plan), set(&["users"]));
    assert!(plan.unrelated.is_empty(), "{plan:?}");
}

#[test]
fn the_first_round_builds_every_image_its_resources_use() {
    let plan = resources(
        &project(),
        &facts(&[("users", "u1"), ("orders", "o1")]),
        &set(&["users", "orders"]),
    );
    assert_eq!(builds(&plan), set(&["users", "orders"]));
    assert_eq!(applies(&plan), set(&["users", "orders"]));
}
