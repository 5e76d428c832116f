//! `[profiles.NAME.set.RESOURCE]`: the values a profile sets over what a resource's
//! manifests say (replicas, memory, cpu, env, Helm values), so one set of manifests
//! serves a small dev namespace and a larger staging one.
//!
//! They are read here and checked once every file is in (a resource may be declared in
//! an included file); `deploy::overrides` writes them into the rendered objects.

use std::collections::BTreeMap;

use toml::Spanned;

use super::{ConfigError, Location, Manifests, Resource, load::Source, schema::SetDecl};

/// What a profile sets over one resource's manifests; the default sets nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `spec.replicas` of every Deployment and StatefulSet.
    pub replicas: Option<u32>,
    /// Requests and limits of memory of every container.
    pub memory: Option<String>,
    /// Requests and limits of cpu of every container.
    pub cpu: Option<String>,
    /// Environment variables of every container, replacing same-named entries.
    pub env: BTreeMap<String, String>,
    /// `--set-string` values for a Helm chart, over the resource's own `set`.
    pub helm: BTreeMap<String, String>,
}

/// A profile's overrides of one resource, with where they are declared, checked against
/// the resources once every file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub overrides: Overrides,
    /// The `[profiles.NAME.set.RESOURCE]` table, for an unknown resource.
    pub declared_at: Location,
    /// The `helm` key, for a resource that has no chart.
    pub helm_at: Option<Location>,
}

/// One `[profiles.NAME.set.RESOURCE]` table, validated on its own.
pub(super) fn parse(
    src: &Source,
    profile: &str,
    resource: &str,
    decl: &Spanned<SetDecl>,
) -> Result<Set, ConfigError> {
    let d = decl.get_ref();
    let quantity = |v: &Option<Spanned<String>>, key: &str| match v {
        Some(q) if q.get_ref().trim().is_empty() => Err(ConfigError::at(
            src.loc(q),
            format!(
                "profile `{profile}`: set.{resource}.{key} is empty: expected a quantity like \"512Mi\" or \"500m\""
            ),
        )),
        Some(q) => Ok(Some(q.get_ref().trim().to_owned())),
        None => Ok(None),
    };
    Ok(Set {
        overrides: Overrides {
            replicas: d.replicas.as_ref().map(|r| *r.get_ref()),
            memory: quantity(&d.memory, "memory")?,
            cpu: quantity(&d.cpu, "cpu")?,
            env: d.env.clone(),
            helm: d
                .helm
                .as_ref()
                .map(|h| h.get_ref().clone())
                .unwrap_or_default(),
        },
        declared_at: src.loc(decl),
        helm_at: d.helm.as_ref().map(|h| src.loc(h)),
    })
}

/// Each set names a declared resource, and `helm` only one with a chart: a typo would
/// otherwise set nothing, silently.
pub(super) fn check(
    profile: &str,
    sets: &BTreeMap<String, Set>,
    resources: &BTreeMap<String, Resource>,
) -> Result<(), ConfigError> {
    for (name, set) in sets {
        let Some(r) = resources.get(name) else {
            let known: Vec<_> = resources.keys().map(String::as_str).collect();
            return Err(ConfigError::at(
                set.declared_at.clone(),
                format!(
                    "profile `{profile}`: set names unknown resource `{name}` (known: {})",
                    known.join(", ")
                ),
            ));
        };
        let has_chart = r.manifests.iter().any(|m| matches!(m, Manifests::Helm(_)));
        if let (Some(at), false) = (&set.helm_at, has_chart) {
            return Err(ConfigError::at(
                at.clone(),
                format!(
                    "profile `{profile}`: set.{name}.helm sets Helm values, and resource `{name}` has no `helm` chart"
                ),
            ));
        }
    }
    Ok(())
}

impl Resource {
    /// This resource as a profile that sets `overrides` runs it: the Helm values go into
    /// its chart's `set` (so `helm template` renders them), the rest into the objects
    /// once rendered.
    pub(super) fn with_overrides(mut self, overrides: &Overrides) -> Resource {
        for m in &mut self.manifests {
            if let Manifests::Helm(h) = m {
                h.set.extend(overrides.helm.clone());
            }
        }
        self.overrides = overrides.clone();
        self
    }
}
