//! The kubeconfig's context → a connected client, and who the cluster is.

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};
use sha2::{Digest as _, Sha256};

use super::{AllowList, ClusterError, allow::looks_local};

/// A connected cluster.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// The kube context's name, for people; decisions that must not mix up two clusters
    /// use [`id`](Self::id).
    pub context: String,
    pub server: String,
    /// The cluster itself (its server and CA), not the context's name: every k3s
    /// cluster's context is called `default`, and one cluster may have several contexts.
    pub id: String,
}

/// The kube client, built with the layers kube's own builder uses but with `TCP_NODELAY`
/// on the connection to the API server: tunnels and port-forwards carry small
/// request/response exchanges over it, which Nagle's algorithm and delayed ACKs would
/// hold back by up to 40 ms each. A kubeconfig with a `proxy-url` gets kube's own client.
fn client_of(config: Config) -> Result<Client, kube::Error> {
    use hyper_util::{client::legacy::connect::HttpConnector, rt::TokioExecutor};
    use kube::client::{Body, ConfigExt as _, retry::RetryPolicy};
    use tower::{BoxError, ServiceBuilder, retry::RetryLayer};

    if config.proxy_url.is_some() {
        return Client::try_from(config);
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = config.rustls_https_connector_with_connector(http)?;
    let mut timed = hyper_timeout::TimeoutConnector::new(https);
    timed.set_connect_timeout(config.connect_timeout);
    timed.set_read_timeout(config.read_timeout);
    timed.set_write_timeout(config.write_timeout);
    timed.set_reset_reader_on_write(config.reset_reader_on_write);
    let hyper: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(timed);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(hyper);
    Ok(Client::new(service, config.default_namespace))
}

impl Cluster {
    /// Connects through the kubeconfig's `context`, or its current context.
    pub async fn connect(context: Option<&str>) -> Result<Cluster, ClusterError> {
        let kubeconfig = Kubeconfig::read().map_err(ClusterError::Kubeconfig)?;
        let name = match context {
            Some(c) => c.to_owned(),
            None => kubeconfig
                .current_context
                .clone()
                .ok_or(ClusterError::NoCurrentContext)?,
        };
        if !kubeconfig.contexts.iter().any(|c| c.name == name) {
            return Err(ClusterError::NoSuchContext(name));
        }
        let options = KubeConfigOptions {
            context: Some(name.clone()),
            ..KubeConfigOptions::default()
        };
        let config = Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|source| ClusterError::Config {
                context: name.clone(),
                source,
            })?;
        let server = config.cluster_url.to_string();
        let id = cluster_id(&server, config.root_cert.as_deref().unwrap_or_default());
        let client = client_of(config).map_err(|source| ClusterError::Client {
            context: name.clone(),
            source,
        })?;
        Ok(Cluster {
            client,
            context: name,
            server,
            id,
        })
    }

    /// Connects, then refuses a context that does not look local unless `allow` names it.
    /// Every command that changes a cluster comes through here.
    pub async fn connect_guarded(
        context: Option<&str>,
        allow: &AllowList,
    ) -> Result<Cluster, ClusterError> {
        let cluster = Cluster::connect(context).await?;
        cluster.check_allowed(allow)?;
        Ok(cluster)
    }

    /// Refuses a context that does not look local unless `allow` names it.
    pub fn check_allowed(&self, allow: &AllowList) -> Result<(), ClusterError> {
        if looks_local(&self.context, &self.server) || allow.contexts.contains(&self.context) {
            Ok(())
        } else {
            Err(ClusterError::NotAllowed {
                context: self.context.clone(),
                server: self.server.clone(),
                file: allow.file.clone(),
            })
        }
    }
}

/// A short, stable name for a cluster: its API server and the CA that vouches for it.
fn cluster_id(server: &str, ca: &[Vec<u8>]) -> String {
    let mut hash = Sha256::new();
    hash.update(server.trim_end_matches('/').as_bytes());
    for cert in ca {
        hash.update([0]);
        hash.update(cert);
    }
    hex::encode(&hash.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_is_its_server_and_ca_not_its_context_name() {
        let a = cluster_id("https://10.0.0.1:6443", &[b"ca-one".to_vec()]);
        assert_eq!(
            a,
            cluster_id("https://10.0.0.1:6443/", &[b"ca-one".to_vec()])
        );
        assert_ne!(
            a,
            cluster_id("https://10.0.0.1:6443", &[b"ca-two".to_vec()])
        );
        assert_ne!(
            a,
            cluster_id("https://10.0.0.2:6443", &[b"ca-one".to_vec()])
        );
        assert_eq!(a.len(), 16);
    }
}
