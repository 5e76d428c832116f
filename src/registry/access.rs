//! Requests to a registry's HTTP API as the Docker CLI makes them: anonymous first; on
//! 401 the challenge says how to authenticate: Basic with the user's credentials, or a
//! Bearer token fetched from the challenge's realm (with the credentials when there are
//! any, so private repositories work) and kept per scope for the requests that follow.
//! Credentials are found once, on the first challenge, so a registry that asks for none
//! never runs a credential helper.

use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

use tokio::sync::{Mutex, OnceCell};

use super::{
    challenge::{self, Challenge},
    credentials::{self, Credentials, CredentialsError, DockerConfig},
};

/// What stops a request to a registry, in the words a developer acts on.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(
        "registry {host} asks for credentials and {where_} has none for it: run `docker login \
         {host}`, or name a credential helper for it under credHelpers"
    )]
    NoCredentials { host: String, where_: String },
    #[error("registry {host} refused the credentials {where_} has for it (HTTP {status})")]
    Refused {
        host: String,
        where_: String,
        status: u16,
    },
    #[error("cannot find the credentials for registry {host}")]
    Credentials {
        host: String,
        #[source]
        source: Arc<CredentialsError>,
    },
    #[error("cannot reach registry {host} ({url})")]
    Http {
        host: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("registry {host} asked for a token from {realm}, which did not give one: {detail}")]
    Token {
        host: String,
        realm: String,
        detail: String,
    },
}

/// One registry's API, with its credentials and tokens.
#[derive(Debug)]
pub struct Access {
    host: String,
    http: reqwest::Client,
    /// `https`, or `http` for a registry on this machine that speaks no TLS (as Docker
    /// allows for loopback registries), found on the first request.
    scheme: OnceCell<&'static str>,
    credentials: OnceCell<Result<Option<Credentials>, Arc<CredentialsError>>>,
    /// The Docker config folder; `None`: `$DOCKER_CONFIG`, else `~/.docker`.
    config_dir: Option<PathBuf>,
    /// Bearer tokens by scope (`repository:users:pull`).
    tokens: Mutex<HashMap<String, String>>,
}

impl Access {
    pub fn new(host: &str) -> Access {
        Access::with_docker_config(host, None)
    }

    /// Access whose credentials come from the Docker config in `dir` (`None`: where
    /// Docker looks).
    pub fn with_docker_config(host: &str, dir: Option<PathBuf>) -> Access {
        Access {
            host: host.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            scheme: OnceCell::new(),
            credentials: OnceCell::new(),
            config_dir: dir,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// The user's credentials for this registry, found once.
    pub async fn credentials(&self) -> Result<Option<Credentials>, AccessError> {
        let host = self.host.clone();
        let dir = self.config_dir.clone();
        self.credentials
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || match DockerConfig::load(dir.as_deref())? {
                    Some(config) => config.credentials_for(&host),
                    None => Ok(None),
                })
                .await
                .unwrap_or_else(|e| {
                    Err(CredentialsError::HelperSpawn {
                        program: "the credential lookup".into(),
                        source: std::io::Error::other(e.to_string()),
                    })
                })
                .map_err(Arc::new)
            })
            .await
            .clone()
            .map_err(|source| AccessError::Credentials {
                host: self.host.clone(),
                source,
            })
    }

    /// `https://HOST`, or `http://HOST` for a loopback registry whose port answers
    /// plain HTTP.
    pub async fn base(&self) -> String {
        let scheme = self
            .scheme
            .get_or_init(|| async {
                if !is_loopback(&self.host) {
                    return "https";
                }
                let probe = format!("https://{}/v2/", self.host);
                match self.http.get(&probe).send().await {
                    Ok(_) => "https",
                    Err(_) => "http",
                }
            })
            .await;
        format!("{scheme}://{}", self.host)
    }

    /// Sends `method` to `path` (`/v2/...`; `accept` as its Accept header) with what the
    /// registry asks for `scope`. A 401 after authenticating is an error; any other
    /// status is the caller's to judge.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        accept: &str,
        scope: &str,
    ) -> Result<reqwest::Response, AccessError> {
        let url = format!("{}{path}", self.base().await);
        let url = url.as_str();
        let request = || {
            self.http
                .request(method.clone(), url)
                .header(reqwest::header::ACCEPT, accept)
        };
        let cached = self.tokens.lock().await.get(scope).cloned();
        let first = match &cached {
            Some(token) => request().bearer_auth(token),
            None => request(),
        };
        let response = self.sent(first.send().await, url)?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(challenge::parse_www_authenticate);
        // A lookup that fails (a `credsStore` helper not installed on this machine) does
        // not stop a registry that hands out anonymous tokens, as public images' do; it is
        // the answer only if the registry then refuses.
        let (credentials, mut lookup_failed) = match self.credentials().await {
            Ok(c) => (c, None),
            Err(e) if matches!(challenge, Some(Challenge::Bearer { .. })) => (None, Some(e)),
            Err(e) => return Err(e),
        };
        let mut refused = |e: AccessError| match (&e, lookup_failed.take()) {
            (AccessError::NoCredentials { .. }, Some(lookup)) => lookup,
            _ => e,
        };
        let retry = match (challenge.as_ref(), &credentials) {
            (Some(bearer @ Challenge::Bearer { realm, .. }), _) => {
                let token = self
                    .token(bearer, realm, scope, credentials.as_ref())
                    .await
                    .map_err(&mut refused)?;
                self.tokens
                    .lock()
                    .await
                    .insert(scope.to_owned(), token.clone());
                request().bearer_auth(token)
            }
            (_, Some(Credentials::Basic { username, password })) => {
                request().basic_auth(username, Some(password))
            }
            (_, Some(Credentials::RegistryToken(token))) => request().bearer_auth(token),
            (_, _) => return Err(self.unauthorized(credentials.is_some(), 401)),
        };
        let response = self.sent(retry.send().await, url)?;
        match response.status().as_u16() {
            401 => Err(refused(self.unauthorized(credentials.is_some(), 401))),
            _ => Ok(response),
        }
    }

    /// A token for `scope` from the realm of a Bearer challenge: with the user's basic
    /// credentials, an identity token (OAuth2 refresh token), or anonymously.
    async fn token(
        &self,
        challenge: &Challenge,
        realm: &str,
        scope: &str,
        credentials: Option<&Credentials>,
    ) -> Result<String, AccessError> {
        let fail = |detail: String| AccessError::Token {
            host: self.host.clone(),
            realm: realm.to_owned(),
            detail,
        };
        let request = match credentials {
            Some(Credentials::IdentityToken(refresh)) => {
                let Challenge::Bearer { service, .. } = challenge else {
                    return Err(fail("not a Bearer challenge".into()));
                };
                let form = [
                    ("grant_type", "refresh_token"),
                    ("client_id", "tether"),
                    ("refresh_token", refresh.as_str()),
                    ("service", service.as_deref().unwrap_or_default()),
                    ("scope", scope),
                ];
                self.http.post(realm).form(&form)
            }
            other => {
                let url = challenge::token_url(challenge, &[scope.to_owned()])
                    .ok_or_else(|| fail("the challenge names no realm".into()))?;
                let get = self.http.get(url);
                match other {
                    Some(Credentials::Basic { username, password }) => {
                        get.basic_auth(username, Some(password))
                    }
                    _ => get,
                }
            }
        };
        let response = self.sent(request.send().await, realm)?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(self.unauthorized(credentials.is_some(), status));
        }
        if !response.status().is_success() {
            return Err(fail(format!("HTTP {status}")));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| fail(format!("reading the answer: {e}")))?;
        challenge::parse_token_response(&body).map_err(|e| fail(e.to_string()))
    }

    fn sent(
        &self,
        result: Result<reqwest::Response, reqwest::Error>,
        url: &str,
    ) -> Result<reqwest::Response, AccessError> {
        result.map_err(|source| AccessError::Http {
            host: self.host.clone(),
            url: url.to_owned(),
            source,
        })
    }

    fn unauthorized(&self, had_credentials: bool, status: u16) -> AccessError {
        let where_ = config_file_shown();
        if had_credentials {
            AccessError::Refused {
                host: self.host.clone(),
                where_,
                status,
            }
        } else {
            AccessError::NoCredentials {
                host: self.host.clone(),
                where_,
            }
        }
    }

    /// The credentials in the form the Docker API takes for a push (`X-Registry-Auth`).
    pub async fn push_credentials(
        &self,
    ) -> Result<Option<bollard::auth::DockerCredentials>, AccessError> {
        let server = Some(self.host.clone());
        Ok(self.credentials().await?.map(|c| match c {
            Credentials::Basic { username, password } => bollard::auth::DockerCredentials {
                username: Some(username),
                password: Some(password),
                serveraddress: server,
                ..Default::default()
            },
            Credentials::IdentityToken(token) => bollard::auth::DockerCredentials {
                identitytoken: Some(token),
                serveraddress: server,
                ..Default::default()
            },
            Credentials::RegistryToken(token) => bollard::auth::DockerCredentials {
                registrytoken: Some(token),
                serveraddress: server,
                ..Default::default()
            },
        }))
    }
}

/// Registries on this machine, which Docker lets speak plain HTTP.
fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    name == "localhost" || name.starts_with("127.") || name == "[::1]"
}

/// The Docker config file credentials come from, as messages name it.
fn config_file_shown() -> String {
    credentials::default_config_dir(std::env::var_os("DOCKER_CONFIG"), std::env::var_os("HOME"))
        .map_or_else(
            || "the Docker config (no $DOCKER_CONFIG or $HOME)".to_owned(),
            |dir: PathBuf| dir.join("config.json").display().to_string(),
        )
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    /// A registry on loopback that hands out anonymous tokens: `/v2/...` answers 401 with
    /// a Bearer challenge unless the request carries the token, `/token` gives it.
    async fn anonymous_token_registry() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let realm = format!("http://{host}/token");
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let realm = realm.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0; 4096];
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                    let answer = if request.starts_with("get /token") {
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 17\r\n\r\n{\"token\":\"anon\"}\n".to_owned()
                    } else if request.contains("authorization: bearer anon") {
                        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_owned()
                    } else {
                        format!(
                            "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm=\"{realm}\",service=\"test\"\r\ncontent-length: 0\r\n\r\n"
                        )
                    };
                    let _ = conn.write_all(answer.as_bytes()).await;
                });
            }
        });
        host
    }

    #[tokio::test]
    async fn a_credential_helper_that_is_not_installed_does_not_stop_anonymous_tokens() {
        let host = anonymous_token_registry().await;
        let config = tempfile::tempdir().unwrap();
        std::fs::write(
            config.path().join("config.json"),
            r#"{"credsStore": "tether-test-not-installed"}"#,
        )
        .unwrap();
        let access = Access::with_docker_config(&host, Some(config.path().to_owned()));
        assert!(
            access.credentials().await.is_err(),
            "the lookup itself fails"
        );
        let response = access
            .send(
                reqwest::Method::HEAD,
                "/v2/library/busybox/manifests/latest",
                "*/*",
                "repository:library/busybox:pull",
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}
