//! Who the current credentials are, as the API server sees them: a `SelfSubjectReview`
//! (authentication.k8s.io/v1). The kubeconfig cannot say it (a token or an exec plugin
//! names nobody), and the server's answer is what RBAC and quotas go by.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::{Api, Client, api::PostParams};

/// The user the API server authenticated, and its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub username: String,
    pub groups: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot ask the API server who these credentials are (SelfSubjectReview)")]
    Review(#[source] kube::Error),
    #[error("the API server's SelfSubjectReview names no user")]
    NoUser,
}

/// Asks the API server who the client's credentials are.
pub async fn whoami(client: &Client) -> Result<Identity, IdentityError> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(IdentityError::Review)?;
    identity_of(&review)
}

/// The identity a review's status names.
pub fn identity_of(review: &SelfSubjectReview) -> Result<Identity, IdentityError> {
    let info = review
        .status
        .as_ref()
        .and_then(|s| s.user_info.as_ref())
        .ok_or(IdentityError::NoUser)?;
    let username = info
        .username
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or(IdentityError::NoUser)?;
    Ok(Identity {
        username,
        groups: info.groups.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(json: serde_json::Value) -> SelfSubjectReview {
        serde_json::from_value(json).expect("a valid review")
    }

    #[test]
    fn the_review_names_the_user_and_groups() {
        let r = review(serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
            "metadata": {},
            "status": {"userInfo": {"username": "alice",
                "groups": ["tether:developers", "system:authenticated"]}}
        }));
        assert_eq!(
            identity_of(&r).expect("an identity"),
            Identity {
                username: "alice".into(),
                groups: vec!["tether:developers".into(), "system:authenticated".into()],
            }
        );
    }

    #[test]
    fn a_review_without_a_user_is_an_error() {
        let r = review(serde_json::json!({"metadata": {}, "status": {"userInfo": {}}}));
        assert!(matches!(identity_of(&r), Err(IdentityError::NoUser)));
        let r = review(serde_json::json!({"metadata": {}}));
        assert!(matches!(identity_of(&r), Err(IdentityError::NoUser)));
    }
}
