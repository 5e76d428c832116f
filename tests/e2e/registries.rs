//! A registry that asks for credentials, as GHCR, ECR or Docker Hub do: the dev cluster's
//! second registry (TLS with a CA of its own, htpasswd). `tether up` runs on the laptop,
//! with the credentials where `docker login` or a credential helper puts them; the node
//! pulls what was pushed. Without credentials, or with wrong ones, `up` says so in words
//! and deploys nothing.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Output,
};

use base64::Engine as _;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

use crate::{
    process::output,
    support::{TestNamespace, cluster, free_port, hello_project, laptop::Laptop},
};

/// The registry with credentials, as `scripts/dev-cluster env` names it.
struct AuthRegistry {
    host: String,
    user: String,
    password: String,
}

impl AuthRegistry {
    /// `None` (with a message) when the environment names none and no cluster is required.
    fn from_env() -> Option<AuthRegistry> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (Some(host), Some(user), Some(password_file)) = (
            var("TETHER_AUTH_REGISTRY"),
            var("TETHER_AUTH_REGISTRY_USER"),
            var("TETHER_AUTH_REGISTRY_PASSWORD_FILE"),
        ) else {
            assert!(
                std::env::var_os("TETHER_REQUIRE_CLUSTER").is_none(),
                "TETHER_AUTH_REGISTRY* are not set: eval \"$(scripts/dev-cluster env)\""
            );
            eprintln!("SKIPPED: no registry with credentials (scripts/dev-cluster env names it)");
            return None;
        };
        let password = std::fs::read_to_string(&password_file)
            .unwrap_or_else(|e| panic!("cannot read {password_file}: {e}"))
            .trim()
            .to_owned();
        Some(AuthRegistry {
            host,
            user,
            password,
        })
    }

    /// A Docker config folder whose `config.json` is `json`.
    fn docker_config(&self, root: &Path, name: &str, json: serde_json::Value) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), json.to_string()).unwrap();
        dir
    }

    /// `auths` with `user:password` inline, as `docker login` writes it without a store.
    fn logged_in(&self, root: &Path, name: &str, password: &str) -> PathBuf {
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", self.user));
        self.docker_config(
            root,
            name,
            serde_json::json!({"auths": {&self.host: {"auth": auth}}}),
        )
    }

    /// A credential helper `docker-credential-tether-test` in `root/bin` that answers
    /// `get` for this registry and notes each call in `root/helper.log`; and a config
    /// naming it under `credHelpers`.
    fn with_helper(&self, root: &Path) -> (PathBuf, PathBuf) {
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let helper = bin.join("docker-credential-tether-test");
        let answer = serde_json::json!({
            "ServerURL": self.host, "Username": self.user, "Secret": self.password,
        });
        std::fs::write(
            &helper,
            format!(
                "#!/bin/sh\n\
                 read -r server\n\
                 echo \"$1 $server\" >>'{log}'\n\
                 [ \"$1\" = get ] && [ \"$server\" = '{host}' ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\n\
                 echo '{answer}'\n",
                log = root.join("helper.log").display(),
                host = self.host,
            ),
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = self.docker_config(
            root,
            "helper-config",
            serde_json::json!({"credHelpers": {&self.host: "tether-test"}}),
        );
        (config, bin)
    }
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn pushes_with_credentials_from_a_config_file_or_a_helper_and_refuses_without_them() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(cluster) = rt.block_on(cluster()) else {
        return;
    };
    let (Some(laptop), Some(registry)) = (Laptop::from_env(), AuthRegistry::from_env()) else {
        return;
    };
    let ns = rt.block_on(TestNamespace::create(&cluster.client, "tether-it-auth"));
    let project = tempfile::tempdir().unwrap();
    let dir = project.path();
    let home = tempfile::tempdir().unwrap();
    let head = format!("registry = \"{}\"\n", registry.host);
    hello_project(dir, &head, &ns.name, free_port());
    // A page of this run's own: an image the registry does not have yet, so it is pushed
    // (the registry keeps what earlier runs pushed).
    std::fs::write(dir.join("index.html"), format!("hello from {}\n", ns.name)).unwrap();
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &ns.name);
    let up = |docker_config: &Path, path: Option<&Path>| {
        let mut c = laptop.tether(dir, &["up", "--ci", "--timeout", "180"]);
        c.env("DOCKER_CONFIG", docker_config);
        if let Some(bin) = path {
            let path = std::env::var("PATH").unwrap_or_default();
            c.env("PATH", format!("{}:{path}", bin.display()));
        }
        output(c)
    };

    // No credentials at all: refused before anything is deployed, with the fix.
    let nothing = registry.docker_config(home.path(), "empty", serde_json::json!({}));
    let out = up(&nothing, None);
    let text = said(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "registry {} asks for credentials and {} has none for it",
            registry.host,
            nothing.join("config.json").display()
        )) && text.contains(&format!("docker login {}", registry.host)),
        "{text}"
    );
    assert!(
        rt.block_on(deployments.get_opt("hello")).unwrap().is_none(),
        "a refused push deployed something"
    );

    // Wrong ones: the registry's refusal, naming where they came from.
    let wrong = registry.logged_in(home.path(), "wrong", "not-the-password");
    let out = up(&wrong, None);
    let text = said(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "registry {} refused the credentials {} has for it",
            registry.host,
            wrong.join("config.json").display()
        )),
        "{text}"
    );

    // `docker login`'s config file: pushed, pulled by the node, ready.
    let logged_in = registry.logged_in(home.path(), "login", &registry.password);
    let out = up(&logged_in, None);
    let text = said(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("[hello] build: pushed {}/hello:", registry.host)),
        "{text}"
    );
    let image = |d: Deployment| {
        d.spec
            .and_then(|s| s.template.spec)
            .map(|s| s.containers[0].image.clone().unwrap_or_default())
            .unwrap_or_default()
    };
    let deployed = rt.block_on(deployments.get("hello")).unwrap();
    assert!(
        image(deployed).starts_with(&format!("{}/hello:", registry.host)),
        "the Deployment runs what was pushed"
    );

    // A credential helper on PATH: a changed page is a new image, pushed with what the
    // helper answers.
    std::fs::write(
        dir.join("index.html"),
        format!("hello from {} through a credential helper\n", ns.name),
    )
    .unwrap();
    let (helper_config, bin) = registry.with_helper(home.path());
    let out = up(&helper_config, Some(&bin));
    let text = said(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("[hello] build: pushed {}/hello:", registry.host)),
        "{text}"
    );
    let calls = std::fs::read_to_string(home.path().join("helper.log")).unwrap_or_default();
    assert!(
        calls.lines().any(|l| l == format!("get {}", registry.host)),
        "the helper was asked: {calls:?}"
    );

    let out = output(laptop.tether(dir, &["down"]));
    assert!(out.status.success(), "{}", said(&out));
    assert!(rt.block_on(deployments.get_opt("hello")).unwrap().is_none());
}
