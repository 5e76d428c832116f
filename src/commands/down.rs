//! `tether down`: delete what `up` created, from the record kept for this cluster.

use super::{
    Failure,
    project::{self, load},
    remove::remove,
};
use crate::cli::DownArgs;

pub async fn run(args: DownArgs) -> Result<(), Failure> {
    let DownArgs {
        target,
        delete_namespaces,
    } = args;
    let project = load(&target)?;
    let cluster = project::cluster(&target, &project).await?;
    remove(&cluster, &project.root, delete_namespaces).await
}
