//! `tether status`: the resources of the `up` running in a project folder, as a table or
//! as the control socket's document in JSON or YAML.

use std::{fmt::Write as _, path::Path};

use super::{
    Failure,
    output::{self, OutputError, Shape},
};
use crate::{
    cli::StatusArgs,
    control::{
        Client, ClientError,
        protocol::{BuildPhase, DeployPhase, ResourceStatus, Status},
    },
};

pub async fn run(args: StatusArgs) -> Result<(), Failure> {
    let StatusArgs { target, output } = args;
    let machine = output::machine(output);
    let connect = crate::connect::control::running().await;
    let client = Client::for_dir(&target.dir).map_err(failure)?;
    let status = match client.status().await {
        Ok(status) => status,
        // No `up` here, but a connect session runs: that is what there is to show.
        Err(e) if e.is_not_running() && connect.is_some() => {
            return match (machine, &connect) {
                (Some(m), c) => Ok(output::print(
                    m,
                    Shape::Document,
                    &serde_json::json!({ "connect": c }),
                )?),
                (None, Some(c)) => Ok(output::write_stdout(connect_line(c).as_bytes())?),
                (None, None) => Ok(()),
            };
        }
        Err(e) => return Err(failure(e)),
    };
    if let Some(m) = machine {
        let mut value = serde_json::to_value(&status).map_err(OutputError::Json)?;
        value["connect"] = serde_json::to_value(&connect).map_err(OutputError::Json)?;
        output::print(m, Shape::Document, &value)?;
        return Ok(());
    }
    let mut text = table(&status, Path::new(&status.root));
    if let Some(c) = &connect {
        text.push_str(&connect_line(c));
    }
    Ok(output::write_stdout(text.as_bytes())?)
}

fn connect_line(c: &crate::connect::control::Status) -> String {
    format!(
        "connect: {} namespace {} via {}, {} open connections, {} B out, {} B in (proxy {}, DNS {})\n",
        c.held.context,
        c.held.namespace,
        c.agent.as_deref().unwrap_or("(reconnecting)"),
        c.open_connections,
        c.bytes_out,
        c.bytes_in,
        c.held.proxy,
        c.held.dns
    )
}

/// A name the running `up` does not know is bad input; anything else is a failure.
pub(super) fn failure(e: ClientError) -> Failure {
    if e.is_not_found() {
        Failure::BadInput(e.into())
    } else {
        Failure::Failed(e.into())
    }
}

/// One line per resource, then the reasons of those that are not ready.
fn table(status: &Status, root: &Path) -> String {
    let name_w = status
        .resources
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .max("RESOURCE".len());
    let mut out = String::new();
    if let Some(p) = &status.profile {
        let _ = writeln!(
            out,
            "profile {}: namespace {} (user {})\n",
            p.name, p.namespace, p.user
        );
    }
    let _ = writeln!(
        out,
        "{:<name_w$}  {:<12}  {:<9}  {:<5}  {:>8}  {:>7}  FORWARDS",
        "RESOURCE", "BUILD", "DEPLOY", "PODS", "RESTARTS", "UPDATE"
    );
    for r in &status.resources {
        let row = format!(
            "{:<name_w$}  {:<12}  {:<9}  {:<5}  {:>8}  {:>7}  {}",
            r.name,
            build(r),
            deploy(r),
            if r.pods.total == 0 {
                "-".to_owned()
            } else {
                format!("{}/{}", r.pods.ready, r.pods.total)
            },
            r.pods.restarts,
            r.last_update
                .map(|u| secs(u.total_ms))
                .unwrap_or_else(|| "-".to_owned()),
            r.forwards
                .iter()
                .map(|f| format!("{} ({})", f.url, f.health))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(out, "{}", row.trim_end());
        for p in &r.replicas {
            let _ = writeln!(
                out,
                "  {} {}{}",
                p.pod,
                if p.ready { "ready" } else { "not ready" },
                match p.restarts {
                    0 => String::new(),
                    n => format!(", {n} restarts"),
                }
            );
        }
    }
    for r in &status.resources {
        if let Some(e) = &r.last_error {
            let _ = writeln!(out, "\n{}: {}", r.name, e);
        } else if let (Some(w), false) = (&r.waiting_for, r.deploy == DeployPhase::Ready) {
            let _ = writeln!(out, "\n{}: waiting: {}", r.name, w);
        } else if let Some(c) = &r.last_change {
            let _ = writeln!(out, "\n{}: {}", r.name, c);
        }
    }
    for r in &status.resources {
        if let Some(panel) = &r.status {
            let _ = writeln!(out, "\n{} status:", r.name);
            for line in panel.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    if status.resources.is_empty() {
        let _ = writeln!(out, "(no resources in {})", root.display());
    }
    out
}

fn build(r: &ResourceStatus) -> String {
    match r.build {
        _ if r.images.is_empty() => "-".to_owned(),
        BuildPhase::Pending => "pending".to_owned(),
        BuildPhase::Building => match r.building_ms {
            Some(ms) => format!("building {}s", ms / 1000),
            None => "building".to_owned(),
        },
        BuildPhase::Built => match r.last_build_ms {
            Some(ms) => format!("built {}", secs(ms)),
            None => "up to date".to_owned(),
        },
        BuildPhase::Failed => "failed".to_owned(),
    }
}

fn deploy(r: &ResourceStatus) -> &'static str {
    match r.deploy {
        DeployPhase::Pending => "pending",
        DeployPhase::Deploying if r.waiting_for.is_some() => "waiting",
        DeployPhase::Deploying => "deploying",
        DeployPhase::Ready => "ready",
        DeployPhase::Failed => "failed",
    }
}

fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::{ForwardStatus, Pods, UpdateStatus};

    #[test]
    fn the_table_says_ready_and_why_others_are_not() {
        let resource = |name: &str, deploy| ResourceStatus {
            name: name.into(),
            images: vec![name.into()],
            build: BuildPhase::Built,
            building_ms: None,
            last_build_ms: Some(3100),
            deploy,
            pods: Pods {
                ready: 1,
                total: 1,
                restarts: 0,
            },
            forwards: vec![ForwardStatus {
                local: 8001,
                url: "http://localhost:8001".into(),
                health: "healthy".into(),
                pod: None,
                reason: None,
            }],
            waiting_for: None,
            last_error: None,
            last_update: None,
            last_change: None,
            replicas: vec![],
            status: None,
        };
        let mut medicine = resource("medicine", DeployPhase::Ready);
        medicine.forwards.clear();
        medicine.pods.total = 2;
        medicine.pods.ready = 2;
        medicine.replicas = ["medicine-5c8d-2x4rt", "medicine-5c8d-9kq7w"]
            .map(|pod| crate::control::protocol::ReplicaStatus {
                pod: pod.into(),
                ready: true,
                restarts: 0,
            })
            .to_vec();
        medicine.status = Some("partition 0 lag 2\ntotal lag 2".into());
        let mut orders = resource("orders", DeployPhase::Deploying);
        orders.waiting_for = Some("waiting for `users` to be ready".into());
        let mut users = resource("users", DeployPhase::Ready);
        users.last_update = Some(UpdateStatus {
            total_ms: 4210,
            watch_ms: 0,
            digest_ms: 0,
            host_build_ms: 0,
            image_build_ms: 0,
            push_ms: 0,
            apply_ms: 0,
            rollout_ms: 0,
            sync_ms: 0,
            restart_ms: 0,
        });
        let status = Status {
            version: 1,
            pid: 1,
            root: "/p".into(),
            all_ready: false,
            resources: vec![medicine, orders, users],
            profile: None,
        };
        let t = table(&status, Path::new("/p"));
        let expected = "\
RESOURCE  BUILD         DEPLOY     PODS   RESTARTS   UPDATE  FORWARDS
medicine  built 3.1s    ready      2/2           0        -
  medicine-5c8d-2x4rt ready
  medicine-5c8d-9kq7w ready
orders    built 3.1s    waiting    1/1           0        -  http://localhost:8001 (healthy)
users     built 3.1s    ready      1/1           0     4.2s  http://localhost:8001 (healthy)

orders: waiting: waiting for `users` to be ready

medicine status:
  partition 0 lag 2
  total lag 2
";
        assert_eq!(t, expected);
        let profiled = Status {
            profile: Some(crate::control::protocol::ProfileStatus {
                name: "dev".into(),
                namespace: "dev-alice".into(),
                user: "alice".into(),
            }),
            ..status
        };
        let t = table(&profiled, Path::new("/p"));
        assert!(
            t.starts_with("profile dev: namespace dev-alice (user alice)\n\nRESOURCE"),
            "{t}"
        );
    }
}
