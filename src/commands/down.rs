//! `tether down`: delete what `up` created, from the record kept for this cluster.

use super::{Failure, project::load, remove::remove};
use crate::{
    cli::DownArgs,
    cluster::{AllowList, Cluster},
};

pub async fn run(args: DownArgs) -> Result<(), Failure> {
    let DownArgs {
        target,
        delete_namespaces,
    } = args;
    let project = load(&target)?;
    let cluster =
        Cluster::connect_guarded(target.context.as_deref(), &AllowList::of_project(&project))
            .await
            .map_err(Failure::classify)?;
    remove(&cluster, &project.root, delete_namespaces).await
}
