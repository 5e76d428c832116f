use std::collections::BTreeMap;

use kube::api::DynamicObject;
use serde_json::{Value, json};

use super::*;
use crate::build::registry::ImageEntry;
use crate::deploy::manifest;

const USERS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: { name: users, namespace: api }
spec:
  selector: { matchLabels: { app: users } }
  template:
    metadata: { labels: { app: users } }
    spec:
      containers:
        - name: users
          image: users
          ports: [{ name: http, containerPort: 8080 }]
          env: [{ name: PORT, value: "8080" }]
        - name: sidecar
          image: busybox
          command: ["/bin/busybox", "sleep", "1d"]
"#;

fn users() -> DynamicObject {
    manifest::parse("users.yaml", USERS).unwrap().remove(0)
}

fn entry(entrypoint: &[&str], cmd: &[&str]) -> ImageEntry {
    ImageEntry {
        entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
    }
}

fn injected(obj: &mut DynamicObject, images: &BTreeMap<String, ImageEntry>) -> Vec<Supervised> {
    inject(
        obj,
        &Injection {
            agent_image: "reg/tether-agent:t1",
            secret: "tether-live-users",
            token: "t",
            images,
        },
    )
    .unwrap()
}

fn spec(obj: &DynamicObject) -> &Value {
    &obj.data["spec"]["template"]["spec"]
}

#[test]
fn a_live_image_runs_under_the_supervisor_with_its_image_entrypoint() {
    let mut obj = users();
    let images = BTreeMap::from([("users".to_owned(), entry(&["/users"], &["--quiet"]))]);
    let supervised = injected(&mut obj, &images);
    assert_eq!(
        supervised,
        vec![Supervised {
            container: "users".into(),
            image: "users".into(),
            ports: vec![8080],
        }]
    );
    let s = spec(&obj);
    let c = &s["containers"][0];
    assert_eq!(
        c["command"],
        json!([
            BINARY,
            "supervise",
            "--control",
            "9902",
            "--state",
            STATE_DIR,
            "--"
        ])
    );
    assert_eq!(c["args"], json!(["/users", "--quiet"]));
    assert_eq!(
        c["volumeMounts"],
        json!([{ "name": VOLUME, "mountPath": MOUNT }])
    );
    assert_eq!(c["env"][0]["name"], "PORT", "the app's own env stays first");
    assert_eq!(
        c["env"][1]["valueFrom"]["secretKeyRef"],
        json!({ "name": "tether-live-users", "key": TOKEN_KEY })
    );
    assert!(
        c["env"][1].get("value").is_none(),
        "the token is never a value in the spec"
    );
    assert_eq!(
        s["containers"][1]["command"][0], "/bin/busybox",
        "others untouched"
    );
    assert_eq!(s["volumes"], json!([{ "name": VOLUME, "emptyDir": {} }]));
    let init = &s["initContainers"][0];
    assert_eq!(init["image"], "reg/tether-agent:t1");
    assert_eq!(
        init["command"],
        json!(["/tether-agent", "copy-self", BINARY])
    );
}

#[test]
fn command_and_args_follow_the_kubernetes_rules() {
    let e = entry(&["/ep"], &["cmd-arg"]);
    let v = |s: &[&str]| Some(s.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(original_argv(None, None, &e), ["/ep", "cmd-arg"]);
    assert_eq!(original_argv(None, v(&["a"]), &e), ["/ep", "a"]);
    assert_eq!(
        original_argv(v(&["/c"]), None, &e),
        ["/c"],
        "command drops the cmd"
    );
    assert_eq!(original_argv(v(&["/c"]), v(&["a"]), &e), ["/c", "a"]);
}

#[test]
fn a_workload_without_live_images_is_left_exactly_as_it_was() {
    let mut obj = users();
    let before = obj.data.clone();
    let images = BTreeMap::from([("orders".to_owned(), entry(&["/orders"], &[]))]);
    assert!(injected(&mut obj, &images).is_empty());
    assert_eq!(obj.data, before);
}

#[test]
fn an_image_with_nothing_to_run_is_refused_in_words() {
    let mut obj = users();
    let images = BTreeMap::from([("users".to_owned(), ImageEntry::default())]);
    let e = inject(
        &mut obj,
        &Injection {
            agent_image: "a",
            secret: "s",
            token: "t",
            images: &images,
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("names no command"), "{e}");
}

#[test]
fn the_secret_holds_the_token_as_data() {
    let s = secret("tether-live-users", "api", "t0k3n");
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["kind"], "Secret");
    assert_eq!(v["metadata"]["namespace"], "api");
    assert_eq!(v["data"][TOKEN_KEY], "dDBrM24=");
}
