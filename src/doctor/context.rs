//! Checks 1 and 2: which kube context tether would use, whether the context guard lets
//! tether change its cluster (the guard of [`crate::cluster`], not a copy of it), and
//! whether its API server answers.

use std::{path::Path, time::Duration};

use super::{
    error::{DoctorError, within},
    report::Line,
};
use crate::cluster::{AllowList, Cluster, looks_local};

pub const CONTEXT: &str = "kube context";
pub const API_SERVER: &str = "API server";

/// Reading the kubeconfig may run an exec credential plugin (cloud logins): bounded.
const CONNECT_LIMIT: Duration = Duration::from_secs(15);
const VERSION_LIMIT: Duration = Duration::from_secs(10);

/// The connected cluster, and whether the guard lets tether change it.
pub struct Target {
    pub cluster: Cluster,
    pub may_change: bool,
}

/// The context line, and the cluster when the kubeconfig gave one.
pub async fn context(dir: &Path, context: Option<&str>) -> (Line, Option<Target>) {
    let connected = within(
        CONNECT_LIMIT,
        "the kubeconfig's credentials",
        "check the context's credential plugin: kubectl cluster-info",
        async {
            Cluster::connect(context)
                .await
                .map_err(DoctorError::Cluster)
        },
    )
    .await;
    let cluster = match connected {
        Ok(c) => c,
        Err(e) => return (e.line(CONTEXT), None),
    };
    let local = looks_local(&cluster.context, &cluster.server);
    let named = format!("{} at {}", cluster.context, cluster.server);
    let allowed = AllowList::for_dir(dir).and_then(|allow| cluster.check_allowed(&allow));
    let line = match (local, allowed) {
        (true, _) => Line::pass(CONTEXT, format!("{named} (looks local)")),
        (false, Ok(())) => Line::pass(
            CONTEXT,
            format!("{named} (not local; allowed by allow_contexts)"),
        ),
        (false, Err(e)) => {
            let mut line = DoctorError::Cluster(e).line(CONTEXT);
            line.found = format!(
                "{named} does not look local: tether refuses to change it (loopback or \
                 private server, or a kind/k3d/minikube/docker-desktop name, would be)"
            );
            line
        }
    };
    let may_change = line.status != super::report::Status::Fail;
    (
        line,
        Some(Target {
            cluster,
            may_change,
        }),
    )
}

/// The API server's line: its version (`/version`), or why it does not answer.
pub async fn api_server(cluster: &Cluster) -> Result<Line, DoctorError> {
    let info = within(
        VERSION_LIMIT,
        format!("the API server {}", cluster.server),
        "start the cluster: scripts/dev-cluster up (or check the context's server)",
        async {
            cluster
                .client
                .apiserver_version()
                .await
                .map_err(|source| DoctorError::ApiServer {
                    server: cluster.server.clone(),
                    source,
                })
        },
    )
    .await?;
    Ok(Line::pass(
        API_SERVER,
        format!(
            "answers, Kubernetes {} ({})",
            info.git_version, info.platform
        ),
    ))
}
