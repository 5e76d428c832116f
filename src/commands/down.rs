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
    let own = match &profile {
        Some(p) => Some(profile::resolve(&cluster, p).await?.0.namespace),
        None => None,
    };
    remove(&cluster, &project.root, delete_namespaces, own.as_deref()).await
}
