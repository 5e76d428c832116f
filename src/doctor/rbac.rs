//! Check 3: whether this user may do what tether does, asked of the API server with one
//! `SelfSubjectAccessReview` per row of [`NEEDS`] (the authorizer's own answer, RBAC or
//! not). A denied row is named `verb resource`.

use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::{Api, Client, api::PostParams};

use super::{
    error::{DoctorError, within},
    report::Line,
};

pub const RBAC: &str = "RBAC";

/// All reviews together; they are independent and answered at once.
const LIMIT: Duration = Duration::from_secs(15);

/// One request tether makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub verb: &'static str,
    /// The API group; `""` is the core group.
    pub group: &'static str,
    /// `resource` or `resource/subresource`.
    pub resource: &'static str,
    /// Asked in the target namespace; cluster-wide otherwise.
    pub namespaced: bool,
    /// Which command needs it, for the reader of this table.
    pub why: &'static str,
}

const fn need(
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    why: &'static str,
) -> Need {
    Need {
        verb,
        group,
        resource,
        namespaced: true,
        why,
    }
}

/// What tether asks of the API server, in one place.
pub const NEEDS: &[Need] = &[
    need("create", "apps", "deployments", "up applies workloads"),
    need(
        "patch",
        "apps",
        "deployments",
        "up (server-side apply), intercept",
    ),
    need("delete", "apps", "deployments", "down"),
    need("watch", "apps", "deployments", "up waits for rollouts"),
    need("create", "", "services", "up applies services"),
    need("patch", "", "services", "up, intercept routes a Service"),
    need("delete", "", "services", "down"),
    need("create", "", "configmaps", "up applies configmaps"),
    need("patch", "", "configmaps", "up (server-side apply)"),
    need("delete", "", "configmaps", "down"),
    need("create", "", "secrets", "intercept keeps its token in one"),
    need("delete", "", "secrets", "leave, uninstall"),
    need("create", "", "pods", "connect's agent, doctor's probe"),
    need("delete", "", "pods", "doctor's probe, connect"),
    need(
        "watch",
        "",
        "pods",
        "readiness, forwards and logs follow pods",
    ),
    need("get", "", "pods/log", "logs"),
    need(
        "create",
        "",
        "pods/portforward",
        "port forwards, intercept, connect",
    ),
    need(
        "list",
        "discovery.k8s.io",
        "endpointslices",
        "connect resolves Services",
    ),
    Need {
        verb: "create",
        group: "",
        resource: "namespaces",
        namespaced: false,
        why: "up creates a project's namespace",
    },
];

impl Need {
    /// `verb resource`, as a denial names it (`create pods/portforward`).
    pub fn named(&self) -> String {
        format!("{} {}", self.verb, self.resource)
    }

    fn review(&self, namespace: &str) -> SelfSubjectAccessReview {
        let (resource, subresource) = match self.resource.split_once('/') {
            Some((r, s)) => (r, Some(s.to_owned())),
            None => (self.resource, None),
        };
        SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(self.verb.to_owned()),
                    group: Some(self.group.to_owned()),
                    resource: Some(resource.to_owned()),
                    subresource,
                    namespace: self.namespaced.then(|| namespace.to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        }
    }
}

/// The RBAC line for `namespace`: pass when every need is allowed.
pub async fn rbac(client: &Client, namespace: &str) -> Result<Line, DoctorError> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answers = within(
        LIMIT,
        "the API server's access reviews",
        "check that the API server answers (kubectl auth can-i --list)",
        async {
            let asked = NEEDS.iter().map(|need| {
                let api = api.clone();
                let review = need.review(namespace);
                async move {
                    let answer = api.create(&PostParams::default(), &review).await?;
                    Ok::<_, kube::Error>(answer.status.is_some_and(|s| s.allowed))
                }
            });
            join_all(asked)
                .await
                .into_iter()
                .collect::<Result<Vec<bool>, _>>()
                .map_err(DoctorError::Review)
        },
    )
    .await?;
    let denied = denied(NEEDS, &answers);
    if denied.is_empty() {
        Ok(Line::pass(
            RBAC,
            format!(
                "all {} requests tether makes are allowed in namespace {namespace}",
                NEEDS.len()
            ),
        ))
    } else {
        Err(DoctorError::Denied {
            namespace: namespace.to_owned(),
            denied,
        })
    }
}

/// The needs whose answer was no, by name.
fn denied(needs: &[Need], allowed: &[bool]) -> Vec<String> {
    needs
        .iter()
        .zip(allowed)
        .filter(|(_, ok)| !**ok)
        .map(|(n, _)| n.named())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subresource_is_asked_as_one_and_namespaces_cluster_wide() {
        let pf = NEEDS
            .iter()
            .find(|n| n.resource == "pods/portforward")
            .unwrap();
        let attrs = pf.review("shop").spec.resource_attributes.unwrap();
        assert_eq!(attrs.resource.as_deref(), Some("pods"));
        assert_eq!(attrs.subresource.as_deref(), Some("portforward"));
        assert_eq!(attrs.namespace.as_deref(), Some("shop"));
        let ns = NEEDS.iter().find(|n| n.resource == "namespaces").unwrap();
        assert_eq!(
            ns.review("shop")
                .spec
                .resource_attributes
                .unwrap()
                .namespace,
            None
        );
    }

    #[test]
    fn denials_are_named_verb_and_resource() {
        let needs = &NEEDS[..3];
        assert_eq!(
            denied(needs, &[true, false, false]),
            ["patch deployments", "delete deployments"]
        );
        assert!(denied(needs, &[true, true, true]).is_empty());
    }
}
