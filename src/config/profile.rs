//! `[profiles.NAME]`: one environment per developer on a shared cluster. A profile puts
//! every resource of the run into one namespace named from a template (`dev-{user}`,
//! the user being who the API server says the credentials are), may allow more kube
//! contexts, and may give that namespace a quota.
//!
//! The template is checked when the file loads (only `{user}` is known); the name it
//! renders is checked once the user is known, and a bad one points at the template.

use std::collections::BTreeMap;

use toml::Spanned;

use super::{
    ConfigError, Location, Manifests, Project, Resource,
    load::{Source, check_name},
    schema::{File, ProfileDecl},
};

/// The ResourceQuota a profile's `quota` becomes, and the LimitRange of its `defaults`.
pub const QUOTA_NAME: &str = "tether-quota";
pub const DEFAULTS_NAME: &str = "tether-defaults";

/// The one placeholder a namespace template knows.
const USER: &str = "{user}";

/// A validated profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    /// The namespace template, as written (`dev-{user}`).
    pub namespace: String,
    /// Kube contexts this profile may deploy to besides `allow_contexts`.
    pub contexts: Vec<String>,
    /// The `hard` limits of the ResourceQuota `tether-quota` (empty: no quota).
    pub quota: BTreeMap<String, String>,
    /// A container's requests and limits where its pod names none (a LimitRange), so a
    /// quota on cpu or memory does not refuse pods that say nothing.
    pub defaults: BTreeMap<String, String>,
    /// A production environment: a run asks first (`--yes` in scripts), so a command
    /// meant for another profile never reaches it unasked.
    pub production: bool,
    /// Values set over each named resource's manifests (`[profiles.NAME.set.RESOURCE]`).
    pub set: BTreeMap<String, super::overrides::Set>,
    /// Where the template is, for a name it renders badly.
    pub namespace_at: Location,
    /// Resources shared by every consumer of the profile, with where each is named (an
    /// unknown one is an error there once every file is read).
    pub shared: BTreeMap<String, Location>,
    /// Where the shared resources run: `shared_namespace`, else the fixed `namespace`.
    pub shared_namespace: Option<String>,
}

impl Profile {
    /// Whether `resource` is one of this profile's shared instances.
    pub fn is_shared(&self, resource: &str) -> bool {
        self.shared.contains_key(resource)
    }

    /// The namespace of the shared instances: `shared_namespace`, else the profile's
    /// namespace (fixed: the load refuses a `{user}` template without `shared_namespace`).
    pub fn shared_namespace(&self) -> &str {
        self.shared_namespace.as_deref().unwrap_or(&self.namespace)
    }

    /// The namespace for `user`: the template with `{user}` made DNS-safe.
    pub fn namespace_for(&self, user: &str) -> Result<String, ConfigError> {
        let value = self.namespace.replace(USER, &dns_safe(user));
        if is_dns_label(&value) {
            Ok(value)
        } else {
            Err(ConfigError::at(
                self.namespace_at.clone(),
                format!(
                    "profile `{}`: namespace `{}` renders `{value}` for user `{user}`, which is not \
                     a namespace name (lower-case letters, digits and '-', at most 63)",
                    self.name, self.namespace
                ),
            ))
        }
    }
}

impl Project {
    /// The project as `profile` runs it for the namespace `namespace`: every resource
    /// deploys into it (also objects that name a namespace of their own), after a
    /// resource `profile-NAME` of tether's own has made the namespace and its quota.
    /// That resource goes through the same apply and record as the others, so `down`
    /// removes it too.
    pub fn in_profile(
        mut self,
        profile: &Profile,
        namespace: &str,
    ) -> Result<Project, ConfigError> {
        let name = format!("profile-{}", profile.name);
        if let Some(r) = self.resources.get(&name) {
            return Err(ConfigError::at(
                profile.namespace_at.clone(),
                format!(
                    "profile `{}` needs the resource name `{name}` for its namespace, and {} declares a resource of that name",
                    profile.name, r.declared_at
                ),
            ));
        }
        for r in self.resources.values_mut() {
            // A shared instance is every consumer's: never in one user's namespace.
            r.namespace = if profile.is_shared(&r.name) {
                profile.shared_namespace().to_owned()
            } else {
                namespace.to_owned()
            };
            r.force_namespace = true;
            r.depends_on.push(name.clone());
            if let Some(set) = profile.set.get(&r.name) {
                *r = r.clone().with_overrides(&set.overrides);
            }
        }
        let base = Resource {
            name: name.clone(),
            namespace: namespace.to_owned(),
            force_namespace: true,
            manifests: vec![Manifests::Objects(objects(profile, namespace))],
            depends_on: Vec::new(),
            port_forwards: Vec::new(),
            ready_cmd: None,
            status_cmd: None,
            overrides: Default::default(),
            declared_at: profile.namespace_at.clone(),
        };
        self.resources.insert(name, base);
        Ok(self)
    }
}

/// The profile a run uses and the user it runs for: what a `tether.toml` loaded again
/// while `up` runs is put through, so an edit never moves the run out of its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRun {
    pub name: String,
    pub user: String,
    /// The policy the run started under: a resource added by an edit is decided by it
    /// too, so a reload never deploys what `up` would have refused.
    pub admission: crate::policy::Admission,
}

impl ProfileRun {
    /// `project` as this run's profile (as the project declares it now) runs it.
    pub fn apply(&self, project: Project) -> Result<Project, ConfigError> {
        let Some(profile) = project.profiles.get(&self.name).cloned() else {
            let file = project.root.join(super::FILE_NAME);
            return Err(ConfigError::at(
                Location {
                    file,
                    line: 1,
                    col: 1,
                },
                format!(
                    "profile `{}`, which this run uses, is no longer declared ({})",
                    self.name,
                    known(&project.profiles)
                ),
            ));
        };
        let namespace = profile.namespace_for(&self.user)?;
        for r in project.resources.values() {
            self.admission
                .instantiate(&self.name, &r.name)
                .map_err(|refusal| ConfigError::at(r.declared_at.clone(), refusal.to_string()))?;
        }
        project.in_profile(&profile, &namespace)
    }
}

/// The namespace, and its ResourceQuota and LimitRange when the profile has them.
pub fn objects(profile: &Profile, namespace: &str) -> Vec<serde_json::Value> {
    use serde_json::json;
    let mut out = vec![json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": namespace},
    })];
    if !profile.quota.is_empty() {
        out.push(json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": QUOTA_NAME, "namespace": namespace},
            "spec": {"hard": profile.quota},
        }));
    }
    if !profile.defaults.is_empty() {
        out.push(json!({
            "apiVersion": "v1", "kind": "LimitRange",
            "metadata": {"name": DEFAULTS_NAME, "namespace": namespace},
            "spec": {"limits": [{
                "type": "Container",
                "default": profile.defaults,
                "defaultRequest": profile.defaults,
            }]},
        }));
    }
    out
}

/// A user name made into something a DNS label can hold: lower case, every other
/// character `-`, no `-` at either end, at most 63 characters.
pub fn dns_safe(user: &str) -> String {
    let mapped: String = user
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    trimmed
        .chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

/// A DNS label (RFC 1123): what Kubernetes takes as a namespace name, and what tether's
/// profile, resource and rule names are.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The root file's profiles and its `default_profile`, validated.
pub(super) fn profiles(
    src: &Source,
    file: &File,
) -> Result<(BTreeMap<String, Profile>, Option<String>), ConfigError> {
    let mut out = BTreeMap::new();
    for (name, decl) in &file.profiles {
        out.insert(name.clone(), profile(src, name, decl)?);
    }
    let default = match &file.default_profile {
        Some(d) if !out.contains_key(d.get_ref()) => {
            return Err(ConfigError::at(
                src.loc(d),
                format!(
                    "default_profile names unknown profile `{}` ({})",
                    d.get_ref(),
                    known(&out)
                ),
            ));
        }
        Some(d) => Some(d.get_ref().clone()),
        None => None,
    };
    Ok((out, default))
}

/// "known: a, b", or "no profile is declared", for messages.
pub fn known(profiles: &BTreeMap<String, Profile>) -> String {
    if profiles.is_empty() {
        "no profile is declared: add a [profiles.NAME] table".to_owned()
    } else {
        format!(
            "known: {}",
            profiles.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    }
}

fn profile(src: &Source, name: &str, decl: &Spanned<ProfileDecl>) -> Result<Profile, ConfigError> {
    let d = decl.get_ref();
    check_name(&src.loc(decl), name, "profile")?;
    let namespace_at = src.loc(&d.namespace);
    let template = d.namespace.get_ref();
    // Every `{` must open `{user}`: another placeholder is a typo, not a literal.
    let rest = template.replace(USER, "");
    if rest.contains('{') || rest.contains('}') {
        return Err(ConfigError::at(
            namespace_at,
            format!("profile `{name}`: namespace `{template}`: the only placeholder is {USER}"),
        ));
    }
    let empty = |map: &BTreeMap<String, Spanned<String>>, key: &str| {
        map.iter()
            .find(|(_, v)| v.get_ref().trim().is_empty())
            .map(|(k, v)| {
                ConfigError::at(
                    src.loc(v),
                    format!("profile `{name}`: {key} `{k}` is empty: expected a quantity like \"1Gi\" or \"10\""),
                )
            })
    };
    if let Some(e) = empty(&d.quota, "quota").or_else(|| empty(&d.defaults, "defaults")) {
        return Err(e);
    }
    let values = |map: &BTreeMap<String, Spanned<String>>| {
        map.iter()
            .map(|(k, v)| (k.clone(), v.get_ref().trim().to_owned()))
            .collect()
    };
    let set = d
        .set
        .iter()
        .map(|(resource, decl)| {
            check_name(&src.loc(decl), resource, "resource")?;
            super::overrides::parse(src, name, resource, decl).map(|s| (resource.clone(), s))
        })
        .collect::<Result<_, _>>()?;
    let shared_namespace = match &d.shared_namespace {
        Some(ns) if !is_dns_label(ns.get_ref()) => {
            return Err(ConfigError::at(
                src.loc(ns),
                format!(
                    "profile `{name}`: shared_namespace `{}` is not a namespace name (lower-case \
                     letters, digits and '-', at most 63)",
                    ns.get_ref()
                ),
            ));
        }
        Some(ns) => Some(ns.get_ref().clone()),
        None if !d.shared.is_empty() && template.contains(USER) => {
            return Err(ConfigError::at(
                namespace_at,
                format!(
                    "profile `{name}`: namespace `{template}` is one per user, so its shared \
                     resources need `shared_namespace = \"NAME\"` to run in"
                ),
            ));
        }
        None => None,
    };
    Ok(Profile {
        name: name.to_owned(),
        namespace: template.clone(),
        contexts: d.contexts.clone(),
        quota: values(&d.quota),
        defaults: values(&d.defaults),
        production: d.production,
        set,
        namespace_at,
        shared: d
            .shared
            .iter()
            .map(|s| (s.get_ref().clone(), src.loc(s)))
            .collect(),
        shared_namespace,
    })
}

/// Every profile's `shared` names a resource of the project (checked once every file is
/// read, as a resource may come from an included one).
pub(super) fn check_shared<'a>(
    profiles: impl IntoIterator<Item = &'a Profile>,
    resources: &BTreeMap<String, Resource>,
) -> Result<(), ConfigError> {
    for p in profiles {
        if let Some((name, at)) = p.shared.iter().find(|(n, _)| !resources.contains_key(*n)) {
            let known = resources.keys().cloned().collect::<Vec<_>>().join(", ");
            return Err(ConfigError::at(
                at.clone(),
                format!(
                    "profile `{}`: shared names unknown resource `{name}` (known: {known})",
                    p.name
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(template: &str) -> Profile {
        Profile {
            name: "dev".into(),
            namespace: template.into(),
            contexts: vec![],
            quota: BTreeMap::new(),
            defaults: BTreeMap::new(),
            production: false,
            set: BTreeMap::new(),
            namespace_at: Location {
                file: "tether.toml".into(),
                line: 3,
                col: 13,
            },
            shared: BTreeMap::new(),
            shared_namespace: None,
        }
    }

    #[test]
    fn a_user_name_is_made_dns_safe() {
        assert_eq!(dns_safe("alice"), "alice");
        assert_eq!(
            dns_safe("Alice.Smith@example.com"),
            "alice-smith-example-com"
        );
        assert_eq!(
            dns_safe("system:serviceaccount:ci:runner"),
            "system-serviceaccount-ci-runner"
        );
        assert_eq!(dns_safe("--bob--"), "bob");
        let long = "a".repeat(62) + ".b";
        assert_eq!(dns_safe(&long), "a".repeat(62), "cut at 63, then trimmed");
        assert_eq!(dns_safe("@@@"), "");
    }

    #[test]
    fn the_template_renders_the_namespace_or_says_why_not() {
        assert_eq!(
            dev("dev-{user}").namespace_for("Alice").expect("a name"),
            "dev-alice"
        );
        let e = dev("{user}").namespace_for("@@").unwrap_err().to_string();
        assert!(
            e.starts_with("tether.toml:3:13: profile `dev`: namespace `{user}` renders ``"),
            "{e}"
        );
        let e = dev(&format!("{}-{{user}}", "x".repeat(60)))
            .namespace_for("alice")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a namespace name"), "{e}");
    }
}
