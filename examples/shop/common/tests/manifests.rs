//! The shop's manifests give the users service and the gateway the same
//! `JWT_SECRET`, which both require to start: each reads it from a key of
//! a Secret that `base` deploys and every service's `tether.toml` brings.

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

fn shop() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(shop().join(path)).expect("a manifest");
    serde_yaml_ng::from_str(&text).expect("valid YAML")
}

#[test]
fn users_and_gateway_read_jwt_secret_from_a_secret_base_deploys() {
    let secret = yaml("k8s/jwt-secret.yaml");
    assert_eq!(secret["kind"], "Secret");
    let base = std::fs::read_to_string(shop().join("base/tether.toml")).expect("base");
    assert!(base.contains("\"../k8s/jwt-secret.yaml\""), "{base}");

    for service in ["users", "gateway"] {
        let tether = std::fs::read_to_string(shop().join(service).join("tether.toml"))
            .expect("the service's tether.toml");
        assert!(
            tether.contains("\"../base\""),
            "{service} does not include base: {tether}"
        );

        let deployment = yaml(&format!("{service}/k8s/deployment.yaml"));
        let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
        let jwt = env
            .as_sequence()
            .and_then(|vars| vars.iter().find(|var| var["name"] == "JWT_SECRET"))
            .unwrap_or_else(|| panic!("{service} sets no JWT_SECRET"));
        let reference = &jwt["valueFrom"]["secretKeyRef"];
        assert_eq!(reference["name"], secret["metadata"]["name"], "{service}");
        let key = reference["key"].as_str().expect("a key");
        let value = secret["stringData"][key].as_str().unwrap_or_default();
        assert!(!value.is_empty(), "{service}: the Secret's {key} is empty");
        assert_ne!(
            reference["optional"], true,
            "{service}: must not start without it"
        );
    }
}
