//! `--profile NAME` of `up` and `down`: which profile a run uses, the contexts it may
//! change, and the namespace it gets for the user the cluster says the credentials are.

use super::Failure;
use crate::{
    cluster::{AllowList, Cluster, Identity, whoami},
    config::{Profile, Project},
    control::protocol::ProfileStatus,
    deploy::Deployer,
};

/// The profile named (else the project's `default_profile`), or none; an unknown name
/// is bad input listing the known ones.
pub fn choose(project: &Project, name: Option<&str>) -> Result<Option<Profile>, Failure> {
    let Some(name) = name.or(project.default_profile.as_deref()) else {
        return Ok(None);
    };
    match project.profiles.get(name) {
        Some(p) => Ok(Some(p.clone())),
        None => Err(Failure::BadInput(anyhow::anyhow!(
            "unknown profile `{name}` in {} ({})",
            project.root.join(crate::config::FILE_NAME).display(),
            crate::config::known_profiles(&project.profiles)
        ))),
    }
}

/// The project's allow list, widened by the profile's own `contexts`.
pub fn allow_list(project: &Project, profile: Option<&Profile>) -> AllowList {
    let mut allow = AllowList::of_project(project);
    if let Some(p) = profile {
        allow.contexts.extend(p.contexts.iter().cloned());
    }
    allow
}

/// The deployer of `project` (already in the profile) on `cluster`: a profile's shared
/// resources carry their instance's label, not this checkout's, so `up` and `plan` stamp
/// and compare them alike.
pub fn deployer(
    cluster: &Cluster,
    project: &Project,
    profile: Option<&Profile>,
) -> Result<Deployer, Failure> {
    let deployer = Deployer::new(
        cluster.client.clone(),
        &project.root,
        &cluster.context,
        &cluster.id,
    )?;
    Ok(deployer.share(profile.iter().flat_map(|p| p.shared.keys().cloned())))
}

/// Asks the cluster who the credentials are and renders the profile's namespace; the
/// identity comes along for the policy's check.
pub async fn resolve(
    cluster: &Cluster,
    profile: &Profile,
) -> Result<(ProfileStatus, Identity), Failure> {
    let identity = whoami(&cluster.client).await?;
    let namespace = profile
        .namespace_for(&identity.username)
        .map_err(|e| Failure::BadInput(e.into()))?;
    let status = ProfileStatus {
        name: profile.name.clone(),
        namespace,
        user: identity.username.clone(),
    };
    Ok((status, identity))
}

/// The project as the profile runs it, when there is one.
pub fn apply(
    project: Project,
    profile: Option<(&Profile, &ProfileStatus)>,
) -> Result<Project, Failure> {
    match profile {
        None => Ok(project),
        Some((p, status)) => project
            .in_profile(p, &status.namespace)
            .map_err(|e| Failure::BadInput(e.into())),
    }
}
