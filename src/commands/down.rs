//! `tether down`: delete what `up` created, from the record kept for this cluster.

use super::{
    Failure, profile,
    project::{self, load},
    remove::remove,
};
use crate::cli::DownArgs;

pub async fn run(args: DownArgs) -> Result<(), Failure> {
    let DownArgs {
        target,
        delete_namespaces,
        profile,
    } = args;
    let project = load(&target)?;
    let profile = profile::choose(&project, profile.as_deref())?;
    let allow = profile::allow_list(&project, profile.as_ref());
    let cluster = project::cluster(&target, &allow).await?;
    // The profile's namespace was made for this run alone: it goes with the rest.
    let status = match &profile {
        Some(p) => Some(profile::resolve(&cluster, p).await?.0),
        None => None,
    };
    let own = status.as_ref().map(|s| s.namespace.as_str());
    let shared = profile
        .as_ref()
        .zip(status.as_ref().map(|s| s.user.as_str()));
    remove(&cluster, &project.root, delete_namespaces, own, shared).await
}
