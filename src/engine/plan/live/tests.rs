//! Sync or rebuild, decided from a real `tether.toml` and hand-made facts.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::PathBuf,
    time::Instant,
};

use super::{Running, decide};
use crate::{
    config::Project,
    engine::plan::{Facts, Plan, plan},
    watch::ChangeSet,
};

/// users: a host build whose binary syncs, Cargo.toml falls back. web: files sync, a
/// stylesheet runs a step, other inputs are covered by nothing.
const CONFIG: &str = r#"
[images.users]
host_build = ["true"]
inputs = ["src", "Cargo.toml"]
[images.users.live_update]
sync = [{ from = ".build/users", to = "/users" }]
restart = true
fall_back_on = ["Cargo.toml"]

[images.web]
context = "web"
inputs = ["web"]
[images.web.live_update]
sync = [{ from = "web/static", to = "/www" }]
run = [{ cmd = ["/bin/touch", "/tmp/css"], trigger = ["web/static/*.css"] }]

[resources.users]
manifests = ["k8s/users.yaml"]
[resources.web]
manifests = ["k8s/web.yaml"]
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    project: Project,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    for f in [
        "Dockerfile",
        "web/Dockerfile",
        "k8s/users.yaml",
        "k8s/web.yaml",
        "src/main.rs",
        "Cargo.toml",
    ] {
        fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
        fs::write(root.join(f), "").unwrap();
    }
    fs::write(root.join("tether.toml"), CONFIG).unwrap();
    let project = Project::load(&root).unwrap();
    Fixture {
        _dir: dir,
        root,
        project,
    }
}

impl Fixture {
    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Every image's digest moved from the last build.
    fn facts(&self) -> Facts {
        let files = |of: &[&str]| of.iter().map(|f| self.p(f)).collect::<BTreeSet<_>>();
        Facts {
            inputs: BTreeMap::from([
                ("users".into(), files(&["src/main.rs", "Cargo.toml"])),
                (
                    "web".into(),
                    files(&["web/static/a.css", "web/static/b.js", "web/app.py"]),
                ),
            ]),
            digests: BTreeMap::from([
                ("users".into(), Ok("u2".into())),
                ("web".into(), Ok("w2".into())),
            ]),
            uses: BTreeMap::from([
                ("users".into(), set(&["users"])),
                ("web".into(), set(&["web"])),
            ]),
            gone: BTreeSet::new(),
            // The planner does not read objects; the round applies them.
            objects: BTreeMap::new(),
        }
    }

    fn change(&self, paths: &[&str]) -> ChangeSet {
        let now = Instant::now();
        ChangeSet {
            paths: paths.iter().map(|f| self.p(f)).collect(),
            rescan: None,
            unwatched: vec![],
            first_event: now,
            settled: now,
        }
    }

    /// The plan for `change` with both images supervised and last built at u1/w1.
    fn decide(&self, change: &ChangeSet, running: &Running) -> Plan {
        let facts = self.facts();
        let last = BTreeMap::from([("users".into(), "u1".into()), ("web".into(), "w1".into())]);
        decide(
            plan(change, &self.project, &facts, &last),
            change,
            &self.project,
            &facts,
            running,
        )
    }
}

fn set(of: &[&str]) -> BTreeSet<String> {
    of.iter().map(|s| s.to_string()).collect()
}

fn supervised() -> Running {
    Running {
        supervised: set(&["users", "web"]),
        synced: BTreeSet::new(),
    }
}

fn keys<V>(m: &BTreeMap<String, V>) -> BTreeSet<String> {
    m.keys().cloned().collect()
}

#[test]
fn a_source_edit_under_a_host_build_syncs_instead_of_building() {
    let f = fixture();
    let plan = f.decide(&f.change(&["src/main.rs"]), &supervised());
    assert!(plan.builds.is_empty(), "{plan:?}");
    assert!(plan.applies.is_empty(), "no rollout: {plan:?}");
    let sync = &plan.syncs["users"];
    assert_eq!(sync.changed, vec![f.p("src/main.rs")]);
    assert_eq!(sync.resources, set(&["users"]));
    assert!(plan.rebuilds.is_empty());
}

#[test]
fn the_host_builds_own_output_is_not_reported_as_an_unrelated_change() {
    let f = fixture();
    let plan = f.decide(&f.change(&[".build/users"]), &supervised());
    assert!(plan.unrelated.is_empty(), "{plan:?}");
    assert!(plan.builds.is_empty() && plan.syncs.is_empty(), "{plan:?}");
}

#[test]
fn a_fall_back_on_file_builds_and_says_which_rule() {
    let f = fixture();
    let plan = f.decide(&f.change(&["src/main.rs", "Cargo.toml"]), &supervised());
    assert_eq!(keys(&plan.builds), set(&["users"]));
    assert!(plan.syncs.is_empty());
    assert_eq!(
        plan.rebuilds["users"],
        "Cargo.toml matches fall_back_on `Cargo.toml`"
    );
}

#[test]
fn an_image_not_yet_supervised_builds_without_a_reason() {
    let f = fixture();
    let plan = f.decide(&f.change(&["src/main.rs"]), &Running::default());
    assert_eq!(keys(&plan.builds), set(&["users"]));
    assert_eq!(keys(&plan.applies), set(&["users"]));
    assert!(
        plan.syncs.is_empty() && plan.rebuilds.is_empty(),
        "{plan:?}"
    );
}

#[test]
fn without_a_host_build_every_changed_input_needs_a_sync_rule() {
    let f = fixture();
    let covered = f.decide(&f.change(&["web/static/b.js"]), &supervised());
    assert_eq!(keys(&covered.syncs), set(&["web"]));
    assert!(
        covered.syncs["web"].runs.is_empty(),
        "b.js triggers no step"
    );

    let css = f.decide(&f.change(&["web/static/a.css"]), &supervised());
    assert_eq!(css.syncs["web"].runs, vec![0]);

    let uncovered = f.decide(
        &f.change(&["web/static/a.css", "web/app.py"]),
        &supervised(),
    );
    assert!(uncovered.syncs.is_empty());
    assert_eq!(
        uncovered.rebuilds["web"],
        "web/app.py is an input no sync rule covers"
    );
}

#[test]
fn a_resource_redeployed_anyway_has_its_image_built() {
    let f = fixture();
    let plan = f.decide(&f.change(&["src/main.rs", "k8s/users.yaml"]), &supervised());
    assert_eq!(keys(&plan.builds), set(&["users"]));
    assert_eq!(plan.rebuilds["users"], "`users`'s manifests changed too");
}

#[test]
fn a_redeploy_of_synced_containers_builds_their_changes_into_an_image() {
    let f = fixture();
    let change = f.change(&["k8s/users.yaml"]);
    let facts = f.facts();
    // The containers run u2 by sync: the image is still u1.
    let last = BTreeMap::from([("users".into(), "u2".into()), ("web".into(), "w2".into())]);
    let running = Running {
        supervised: set(&["users", "web"]),
        synced: set(&["users"]),
    };
    let plan = decide(
        plan(&change, &f.project, &facts, &last),
        &change,
        &f.project,
        &facts,
        &running,
    );
    assert_eq!(keys(&plan.builds), set(&["users"]));
    assert_eq!(keys(&plan.applies), set(&["users"]));
    assert!(plan.rebuilds["users"].contains("synced changes go into an image"));
}

#[test]
fn a_rescan_builds_because_the_changed_files_are_not_known() {
    let f = fixture();
    let mut change = f.change(&["src/main.rs", "Cargo.toml"]);
    change.rescan = Some(crate::watch::Rescan::Overflow);
    let plan = f.decide(&change, &supervised());
    assert_eq!(keys(&plan.builds), set(&["users"]));
    assert!(plan.rebuilds["users"].contains("rescanned"));
}
