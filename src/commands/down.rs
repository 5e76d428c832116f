//! `tether down`: delete what `up` created, from the record kept for this cluster.

use super::{Failure, up::load};
use crate::{
    cli::Target,
    cluster::{AllowList, Cluster},
    deploy,
};

pub async fn run(target: Target, delete_namespaces: bool) -> Result<(), Failure> {
    let project = load(&target)?;
    let cluster =
        Cluster::connect_guarded(target.context.as_deref(), &AllowList::of_project(&project))
            .await
            .map_err(Failure::classify)?;
    let report = deploy::down(
        cluster.client.clone(),
        &project.root,
        &cluster.context,
        &cluster.id,
        delete_namespaces,
        |line| println!("{line}"),
    )
    .await?;
    if report.failures.is_empty() {
        let foreign = match report.foreign.len() {
            0 => String::new(),
            n => format!(", {n} left alone (no longer tether's)"),
        };
        println!(
            "down: {} deleted, {} kept{foreign}",
            report.deleted.len(),
            report.kept.len()
        );
        Ok(())
    } else {
        Err(Failure::Failed(anyhow::anyhow!(
            "down could not remove everything (run it again):\n  {}",
            report.failures.join("\n  ")
        )))
    }
}
