//! Where images go: the registry named in config, in `TETHER_REGISTRY`, or advertised by
//! the cluster in the `local-registry-hosting` ConfigMap (KEP-1755), and whether it
//! already holds a tag, which lets an unchanged image skip its build even after a restart.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use serde::Deserialize;

use super::BuildError;
use crate::registry::{Access, challenge::scope_for};

/// A registry as seen from the laptop (push) and from the node's runtime (pull).
#[derive(Debug, Clone)]
pub struct Registry {
    /// `host:port` the laptop pushes to.
    pub push: String,
    /// `host:port` the cluster's container runtime pulls from.
    pub pull: String,
    /// The push side's API, with the user's credentials for it.
    access: Arc<Access>,
}

impl PartialEq for Registry {
    fn eq(&self, other: &Registry) -> bool {
        (&self.push, &self.pull) == (&other.push, &other.pull)
    }
}

impl Eq for Registry {}

impl Registry {
    pub fn same(host: &str) -> Registry {
        Registry::new(host, host)
    }

    pub fn new(push: &str, pull: &str) -> Registry {
        Registry {
            push: push.to_owned(),
            pull: pull.to_owned(),
            access: Arc::new(Access::new(push)),
        }
    }

    /// The push side's API, for the engine's push and for reads.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// The first of: the config's `registry`, `TETHER_REGISTRY`, the cluster's advert.
    pub async fn resolve(
        configured: Option<&str>,
        client: &Client,
    ) -> Result<Registry, BuildError> {
        match Registry::named(configured) {
            Some((r, _)) => Ok(r),
            None => Registry::advertised(client).await,
        }
    }

    /// The registry this machine names, without asking the cluster: the config's
    /// `registry`, else `TETHER_REGISTRY`; with where it was found.
    pub fn named(configured: Option<&str>) -> Option<(Registry, Source)> {
        if let Some(r) = configured {
            return Some((Registry::same(r), Source::Config));
        }
        std::env::var("TETHER_REGISTRY")
            .ok()
            .filter(|r| !r.is_empty())
            .map(|r| (Registry::same(&r), Source::Env))
    }

    /// The registry the cluster advertises (KEP-1755's kube-public ConfigMap).
    pub async fn advertised(client: &Client) -> Result<Registry, BuildError> {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-public");
        let advert = cms
            .get_opt("local-registry-hosting")
            .await
            .map_err(|e| {
                BuildError::Registry(format!(
                    "cannot read kube-public/local-registry-hosting: {e}"
                ))
            })?
            .and_then(|cm| cm.data)
            .and_then(|d| d.get("localRegistryHosting.v1").cloned());
        let Some(advert) = advert else {
            return Err(BuildError::Registry(
                "no registry: set `registry = \"host:port\"` in tether.toml or TETHER_REGISTRY, \
                 or advertise one in the kube-public/local-registry-hosting ConfigMap"
                    .into(),
            ));
        };
        parse_advert(&advert)
    }

    /// Whether `repository:tag` already exists in the registry.
    pub async fn has_tag(&self, repository: &str, tag: &str) -> Result<bool, BuildError> {
        let resp = self
            .access
            .send(
                reqwest::Method::HEAD,
                &format!("/v2/{repository}/manifests/{tag}"),
                MANIFESTS,
                &scope_for(repository, false),
            )
            .await?;
        Ok(resp.status().is_success())
    }

    /// What `repository:tag` runs when a container names no command (its config's
    /// `Entrypoint` and `Cmd`), read from the registry so it holds for images built
    /// elsewhere or in an earlier session too.
    pub async fn entry(&self, repository: &str, tag: &str) -> Result<ImageEntry, BuildError> {
        let scope = scope_for(repository, false);
        let get = |path: String, accept: &'static str| {
            let scope = scope.clone();
            async move {
                let resp = self
                    .access
                    .send(reqwest::Method::GET, &path, accept, &scope)
                    .await?;
                let resp = resp.error_for_status().map_err(|e| {
                    BuildError::Registry(format!("cannot read {repository} {path}: {e}"))
                })?;
                resp.json::<serde_json::Value>()
                    .await
                    .map_err(|e| BuildError::Registry(format!("{path} is not JSON: {e}")))
            }
        };
        let base = format!("/v2/{repository}");
        let mut manifest = get(format!("{base}/manifests/{tag}"), MANIFESTS).await?;
        // An index (a multi-platform build, or one with attestations): take linux/amd64.
        if let Some(digest) = platform_manifest(&manifest) {
            manifest = get(format!("{base}/manifests/{digest}"), MANIFESTS).await?;
        }
        let config = manifest
            .pointer("/config/digest")
            .and_then(|d| d.as_str())
            .ok_or_else(|| {
                BuildError::Registry(format!(
                    "{repository}:{tag} has a manifest without a config"
                ))
            })?;
        let blob = get(format!("{base}/blobs/{config}"), "*/*").await?;
        let strings = |key: &str| -> Vec<String> {
            blob.pointer(&format!("/config/{key}"))
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(ImageEntry {
            entrypoint: strings("Entrypoint"),
            cmd: strings("Cmd"),
        })
    }
}

/// Every manifest kind tether reads, single images and indexes.
const MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// What an image runs by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageEntry {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

/// In an index, the digest of the linux/amd64 image (else the first one that is not an
/// attestation); `None` for a single image's manifest.
fn platform_manifest(manifest: &serde_json::Value) -> Option<String> {
    let list = manifest.get("manifests")?.as_array()?;
    let platform = |m: &serde_json::Value, key: &str| {
        m.pointer(&format!("/platform/{key}"))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let digest = |m: &serde_json::Value| m.get("digest")?.as_str().map(str::to_owned);
    list.iter()
        .find(|m| {
            platform(m, "os").as_deref() == Some("linux")
                && platform(m, "architecture").as_deref() == Some("amd64")
        })
        .or_else(|| {
            list.iter()
                .find(|m| platform(m, "os").as_deref() != Some("unknown"))
        })
        .and_then(digest)
}

/// Where the registry in use was named, for messages that say why this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `registry` in tether.toml.
    Config,
    /// The `TETHER_REGISTRY` environment variable.
    Env,
    /// The cluster's `kube-public/local-registry-hosting` ConfigMap.
    ClusterAdvert,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Advert {
    host: Option<String>,
    host_from_container_runtime: Option<String>,
}

fn parse_advert(text: &str) -> Result<Registry, BuildError> {
    let a: Advert = serde_yaml_ng::from_str(text).map_err(|e| {
        BuildError::Registry(format!(
            "kube-public/local-registry-hosting is malformed: {e}"
        ))
    })?;
    let push = a.host.ok_or_else(|| {
        BuildError::Registry("kube-public/local-registry-hosting names no `host`".into())
    })?;
    let pull = a
        .host_from_container_runtime
        .unwrap_or_else(|| push.clone());
    Ok(Registry::new(&push, &pull))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kep_1755_advert() {
        let r = parse_advert("host: \"localhost:5001\"\nhostFromContainerRuntime: \"kind-registry:5000\"\nhelp: \"https://kind.sigs.k8s.io\"\n").unwrap();
        assert_eq!(r.push, "localhost:5001");
        assert_eq!(r.pull, "kind-registry:5000");
        assert_eq!(
            parse_advert("host: 127.0.0.1:5000\n").unwrap(),
            Registry::same("127.0.0.1:5000")
        );
        assert!(parse_advert("help: x\n").is_err());
    }

    #[test]
    fn an_index_yields_its_linux_amd64_image_and_never_an_attestation() {
        let index = serde_json::json!({ "manifests": [
            { "digest": "sha256:att", "platform": { "os": "unknown", "architecture": "unknown" } },
            { "digest": "sha256:arm", "platform": { "os": "linux", "architecture": "arm64" } },
            { "digest": "sha256:amd", "platform": { "os": "linux", "architecture": "amd64" } },
        ]});
        assert_eq!(platform_manifest(&index).as_deref(), Some("sha256:amd"));
        let no_amd = serde_json::json!({ "manifests": [
            { "digest": "sha256:att", "platform": { "os": "unknown" } },
            { "digest": "sha256:arm", "platform": { "os": "linux", "architecture": "arm64" } },
        ]});
        assert_eq!(platform_manifest(&no_amd).as_deref(), Some("sha256:arm"));
        assert_eq!(
            platform_manifest(&serde_json::json!({ "config": {} })),
            None
        );
    }
}
