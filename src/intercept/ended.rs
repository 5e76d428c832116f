//! Noticing, while an intercept runs, that it was ended elsewhere: `tether leave` in
//! another terminal, `tether uninstall`, or someone removing the agent or deleting the
//! objects. Watches the Service and the Deployment by name (kube-runtime watchers, no
//! polling) and resolves with the reason in words, so the command can say so and exit
//! without restoring again.

use std::fmt::Debug;

use futures::StreamExt as _;
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Service};
use kube::{Api, Client, Resource, runtime::watcher};
use serde::de::DeserializeOwned;

use super::spec::{self, AGENT_CONTAINER};

/// Why the intercept of `service` (its agent in `deployment`) is over; never resolves
/// while it runs.
pub async fn ended_elsewhere(
    client: Client,
    namespace: String,
    service: String,
    deployment: String,
) -> String {
    let services: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let deployments: Api<Deployment> = Api::namespaced(client, &namespace);
    tokio::select! {
        why = watch_one(services, &service, service_ended) => why,
        why = watch_one(deployments, &deployment, deployment_ended) => why,
    }
}

/// Why the Service no longer carries the intercept, if it does not.
pub fn service_ended(svc: &Service) -> Option<String> {
    let name = svc.metadata.name.as_deref().unwrap_or("?");
    spec::installed(svc).is_none().then(|| {
        format!("Service {name} no longer carries tether's intercept (`tether leave` or `tether uninstall` elsewhere)")
    })
}

/// Why the Deployment no longer carries the agent, if it does not.
pub fn deployment_ended(d: &Deployment) -> Option<String> {
    let name = d.metadata.name.as_deref().unwrap_or("?");
    let has_agent = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .is_some_and(|p| p.containers.iter().any(|c| c.name == AGENT_CONTAINER));
    (!has_agent).then(|| format!("the agent was removed from Deployment {name}"))
}

/// Follows one object by name until `ended` gives a reason or the object goes.
async fn watch_one<K>(api: Api<K>, name: &str, ended: fn(&K) -> Option<String>) -> String
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(api, cfg).boxed();
    // Whether the current (re)list has shown the object yet.
    let mut seen = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => seen = false,
            Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o)) => {
                seen = true;
                if let Some(why) = ended(&o) {
                    return why;
                }
            }
            Ok(watcher::Event::InitDone) if !seen => return format!("{kind} {name} was deleted"),
            Ok(watcher::Event::InitDone) => {}
            Ok(watcher::Event::Delete(_)) => return format!("{kind} {name} was deleted"),
            // The watcher lists and watches again by itself; a short pause keeps a
            // broken connection from spinning.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    }
    std::future::pending().await
}
