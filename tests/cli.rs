//! The built `tether` binary as a shell and a script meet it: completion scripts, the
//! suggestion for a mistyped command, `-o yaml`, and the JSON Schema of tether.toml
//! (committed, current, and accepting every example config). Nothing here needs a cluster.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

fn tether(args: &[&str]) -> Output {
    let state = tempfile::Builder::new()
        .prefix("tether-cli-")
        .tempdir()
        .expect("a temp folder");
    Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(args)
        // No connect session of this machine's user leaks into `status`.
        .env("XDG_RUNTIME_DIR", state.path())
        .env("HOME", state.path())
        .stdin(Stdio::null())
        .output()
        .expect("the tether binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn bash_completions_parse_and_name_the_subcommands() {
    let out = tether(&["completions", "bash"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let script = text(&out.stdout);
    for command in [
        "up",
        "down",
        "status",
        "intercept",
        "leave",
        "list",
        "connect",
        "completions",
    ] {
        assert!(
            script.contains(&format!("tether,{command})")),
            "`{command}` is completed"
        );
    }
    let dir = tempfile::tempdir().expect("a temp folder");
    let file = dir.path().join("tether.bash");
    std::fs::write(&file, &out.stdout).expect("the script is written");
    let check = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .expect("bash runs");
    assert!(check.status.success(), "bash -n: {}", text(&check.stderr));
}

#[test]
fn zsh_and_fish_completions_are_printed() {
    for shell in ["zsh", "fish"] {
        let out = tether(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("intercept"), "{shell}");
    }
}

#[test]
fn an_unknown_shell_is_refused_with_the_accepted_ones() {
    let out = tether(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    for shell in ["bash", "zsh", "fish"] {
        assert!(err.contains(shell), "names {shell}: {err}");
    }
}

#[test]
fn a_mistyped_command_suggests_the_real_one() {
    let out = tether(&["stauts"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("'status'"), "{err}");
}

#[test]
fn status_as_yaml_without_an_up_still_says_so() {
    let dir = tempfile::tempdir().expect("a temp folder");
    let dir = dir.path().to_str().expect("a UTF-8 temp path");
    for format in ["yaml", "json", "table"] {
        let out = tether(&["status", "-C", dir, "-o", format]);
        assert_eq!(out.status.code(), Some(1), "-o {format}");
        assert!(out.stdout.is_empty(), "-o {format}: {}", text(&out.stdout));
        let err = text(&out.stderr);
        assert!(
            err.contains("no `tether up` is running"),
            "-o {format}: {err}"
        );
    }
    let out = tether(&["status", "-C", dir, "-o", "xml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("yaml"), "{}", text(&out.stderr));
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn committed_schema() -> String {
    std::fs::read_to_string(repo().join("schema/tether.schema.json"))
        .expect("schema/tether.schema.json is committed")
}

#[test]
fn the_committed_schema_is_what_the_code_generates() {
    let out = tether(&["schema"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout) == committed_schema(),
        "schema/tether.schema.json is stale; regenerate it with\n    \
         cargo run -- schema > schema/tether.schema.json"
    );
    assert_eq!(tether::config::json_schema(), committed_schema());
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value =
        serde_json::from_str(&committed_schema()).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
}

/// Every `tether.toml` below `dir`, found by walking (build output skipped).
fn configs(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && entry.file_name() != "target" && entry.file_name() != ".tether" {
            configs(&path, found);
        } else if entry.file_name() == "tether.toml" {
            found.push(path);
        }
    }
}

fn as_json(toml_text: &str) -> serde_json::Value {
    let value: toml::Value = toml::from_str(toml_text).expect("valid TOML");
    serde_json::to_value(value).expect("TOML is JSON")
}

#[test]
fn every_example_config_validates_against_the_schema() {
    let validator = validator();
    let mut found = Vec::new();
    for dir in ["examples", "workspace-demo"] {
        configs(&repo().join(dir), &mut found);
    }
    assert!(
        found.len() >= 5,
        "the examples' configs are found: {found:?}"
    );
    for path in &found {
        let text = std::fs::read_to_string(path).expect("the example is readable");
        let errors: Vec<String> = validator
            .iter_errors(&as_json(&text))
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    }
}

#[test]
fn a_misspelled_key_fails_validation() {
    let validator = validator();
    let good = as_json("namespace = \"api\"\n[resources.a]\nmanifests = [\"a.yaml\"]\n");
    assert!(validator.is_valid(&good));
    for bad in [
        "namespace = \"api\"\n[resources.a]\nmanifest = [\"a.yaml\"]\n",
        "namespcae = \"api\"\n",
        "[images.a]\ncontext = \".\"\n[images.a.live_update]\nsync = [{ from = \"a\", to = \"/a\", mode = 1 }]\n",
    ] {
        assert!(!validator.is_valid(&as_json(bad)), "refused: {bad}");
    }
}
