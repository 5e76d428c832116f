//! Where images go: the registry named in config, in `TETHER_REGISTRY`, or advertised by
//! the cluster in the `local-registry-hosting` ConfigMap (KEP-1755), and whether it
//! already holds a tag, which lets an unchanged image skip its build even after a restart.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use serde::Deserialize;

use super::BuildError;

/// A registry as seen from the laptop (push) and from the node's runtime (pull).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// `host:port` the laptop pushes to.
    pub push: String,
    /// `host:port` the cluster's container runtime pulls from.
    pub pull: String,
}

impl Registry {
    pub fn same(host: &str) -> Registry {
        Registry {
            push: host.to_owned(),
            pull: host.to_owned(),
        }
    }

    /// The first of: the config's `registry`, `TETHER_REGISTRY`, the cluster's advert.
    pub async fn resolve(
        configured: Option<&str>,
        client: &Client,
    ) -> Result<Registry, BuildError> {
        if let Some(r) = configured {
            return Ok(Registry::same(r));
        }
        if let Ok(r) = std::env::var("TETHER_REGISTRY") {
            if !r.is_empty() {
                return Ok(Registry::same(&r));
            }
        }
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
        let url = format!(
            "{}://{}/v2/{repository}/manifests/{tag}",
            self.scheme(),
            self.push
        );
        let resp = reqwest::Client::new()
            .head(&url)
            .header(
                reqwest::header::ACCEPT,
                "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json",
            )
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| BuildError::Registry(format!("cannot reach registry {}: {e}", self.push)))?;
        Ok(resp.status().is_success())
    }

    /// Plain HTTP for registries on this machine, as every local cluster runs them.
    fn scheme(&self) -> &'static str {
        let host = self
            .push
            .rsplit_once(':')
            .map_or(self.push.as_str(), |(h, _)| h);
        if host == "localhost" || host.starts_with("127.") || host == "[::1]" {
            "http"
        } else {
            "https"
        }
    }
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
    Ok(Registry { push, pull })
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
}
