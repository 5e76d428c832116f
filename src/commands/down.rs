//! `tether down`: delete what `up` created, from the record kept for this cluster.

use super::{Failure, project::load, remove::remove};
use crate::{
    cli::Target,
    cluster::{AllowList, Cluster},
};

pub async fn run(target: Target, delete_namespaces: bool) -> Result<(), Failure> {
    let project = load(&target)?;
    let cluster =
        Cluster::connect_guarded(target.context.as_deref(), &AllowList::of_project(&project))
            .await
            .map_err(Failure::classify)?;
    remove(&cluster, &project.root, delete_namespaces).await
}
