//! `tether scale RESOURCE N`: a resource's Deployment or StatefulSet set to N replicas
//! now, with or without an `up` running; `up` keeps the count until tether.toml changes.

use super::{
    Failure,
    project::{self, load},
};
use crate::{cli::ScaleArgs, cluster::AllowList, deploy::scale::Scaler};

pub async fn run(args: ScaleArgs) -> Result<(), Failure> {
    let ScaleArgs {
        target,
        resource,
        replicas,
        workload,
    } = args;
    let project = load(&target)?;
    let cluster = project::cluster(&target, &AllowList::of_project(&project)).await?;
    let scaler = Scaler {
        client: cluster.client.clone(),
        root: project.root.clone(),
        cluster_id: cluster.id.clone(),
    };
    let scaled = scaler
        .scale(&resource, workload.as_deref(), replicas)
        .await
        .map_err(Failure::classify)?;
    println!("{resource}: {scaled}");
    Ok(())
}
