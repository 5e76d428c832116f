//! Reads the environment into validated settings.
//!
//! [`Env`] is a snapshot of variables: [`Env::from_process`] in `main`,
//! [`Env::from_pairs`] in tests, so no test touches the real environment.
//! Each service's `Config::from_env` calls the helpers here; a bad value is
//! a [`ConfigError`] naming the variable, and `main` exits with status 2.
//!
//! In the cluster every service reaches its peers through the Services in
//! namespace `api`, which are the defaults below; on a laptop set the
//! variables to wherever the peers are (`http://127.0.0.1:8081`, ...).

use std::{collections::HashMap, str::FromStr};

use reqwest::Url;

use crate::JwtSecret;

/// Names and in-cluster defaults of the variables the shop reads.
pub mod vars {
    /// The port to listen on, on all interfaces.
    pub const PORT: &str = "PORT";
    /// Default of [`PORT`]: the named container port `http` of every pod.
    pub const DEFAULT_PORT: u16 = 8080;
    /// Base URL of the users service.
    pub const USERS_URL: &str = "USERS_URL";
    /// Default of [`USERS_URL`].
    pub const DEFAULT_USERS_URL: &str = "http://users-svc.api";
    /// Base URL of the products service.
    pub const PRODUCTS_URL: &str = "PRODUCTS_URL";
    /// Default of [`PRODUCTS_URL`].
    pub const DEFAULT_PRODUCTS_URL: &str = "http://products-svc.api";
    /// Base URL of the orders service.
    pub const ORDERS_URL: &str = "ORDERS_URL";
    /// Default of [`ORDERS_URL`].
    pub const DEFAULT_ORDERS_URL: &str = "http://orders-svc.api";
    /// Base URL of the payments service.
    pub const PAYMENTS_URL: &str = "PAYMENTS_URL";
    /// Default of [`PAYMENTS_URL`].
    pub const DEFAULT_PAYMENTS_URL: &str = "http://payments-svc.api";
    /// The HS256 key shared by users (signs) and the gateway (verifies).
    /// Required: there is no default, so a service never starts with a key
    /// that anyone who has read this code can forge tokens with.
    pub const JWT_SECRET: &str = "JWT_SECRET";
}

/// A variable that is set but unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    /// The variable's name.
    pub name: String,
    /// Its value as found.
    pub value: String,
    /// What is wrong with it, and what is expected instead.
    pub reason: String,
}

/// A snapshot of environment variables. An empty value counts as unset.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// The process environment (variables that are not UTF-8 are skipped).
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// An environment made of the given pairs (for tests).
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// `name` parsed as a `T`, or `default` when unset.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|e: T::Err| ConfigError {
                name: name.to_owned(),
                value: value.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    /// `PORT`, default 8080.
    pub fn port(&self) -> Result<u16, ConfigError> {
        self.parse_or(vars::PORT, vars::DEFAULT_PORT)
    }

    /// The base URL of a peer service: `name`, or `default` when unset. It
    /// must be an absolute `http://` or `https://` URL.
    pub fn peer_url(&self, name: &str, default: &str) -> Result<Url, ConfigError> {
        let value = self.get(name).unwrap_or(default);
        let invalid = |reason: String| ConfigError {
            name: name.to_owned(),
            value: value.to_owned(),
            reason,
        };
        let url =
            Url::parse(value).map_err(|e| invalid(format!("{e} (expected http://HOST[:PORT])")))?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(invalid("expected an http:// or https:// URL".to_owned()));
        }
        Ok(url)
    }

    /// `JWT_SECRET`, which must be set and not empty.
    pub fn jwt_secret(&self) -> Result<JwtSecret, ConfigError> {
        self.get(vars::JWT_SECRET)
            .map(JwtSecret::new)
            .ok_or_else(|| ConfigError {
                name: vars::JWT_SECRET.to_owned(),
                value: String::new(),
                reason: "it must be set to the key users signs tokens with and the \
                         gateway checks them with (in the cluster it comes from the \
                         Secret shop-jwt; on a laptop e.g. \
                         export JWT_SECRET=\"$(openssl rand -hex 32)\" for both)"
                    .to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_defaults_and_parses() {
        assert_eq!(Env::default().port(), Ok(8080));
        assert_eq!(Env::from_pairs([("PORT", "9000")]).port(), Ok(9000));
        assert_eq!(Env::from_pairs([("PORT", "")]).port(), Ok(8080));
        let err = Env::from_pairs([("PORT", "http")]).port().unwrap_err();
        assert_eq!(err.name, "PORT");
        assert!(
            err.to_string().starts_with("PORT=\"http\" is invalid"),
            "{err}"
        );
    }

    #[test]
    fn jwt_secret_is_required() {
        for env in [Env::default(), Env::from_pairs([("JWT_SECRET", "")])] {
            let err = env.jwt_secret().unwrap_err();
            assert_eq!(err.name, "JWT_SECRET");
            assert!(
                err.to_string()
                    .starts_with("JWT_SECRET=\"\" is invalid: it must be set"),
                "{err}"
            );
        }
        assert!(Env::from_pairs([("JWT_SECRET", "k")]).jwt_secret().is_ok());
    }

    #[test]
    fn peer_urls_default_to_the_cluster() {
        let env = Env::default();
        let url = env
            .peer_url(vars::ORDERS_URL, vars::DEFAULT_ORDERS_URL)
            .unwrap();
        assert_eq!(url.as_str(), "http://orders-svc.api/");
    }

    #[test]
    fn peer_urls_are_validated() {
        for bad in ["orders-svc.api", "ftp://x", "mailto:a@b", "http://"] {
            let env = Env::from_pairs([("ORDERS_URL", bad)]);
            let err = env
                .peer_url(vars::ORDERS_URL, vars::DEFAULT_ORDERS_URL)
                .unwrap_err();
            assert_eq!(err.name, "ORDERS_URL", "{bad}");
        }
        let env = Env::from_pairs([("ORDERS_URL", "http://127.0.0.1:8083")]);
        let url = env.peer_url(vars::ORDERS_URL, "http://unused").unwrap();
        assert_eq!(url.port(), Some(8083));
    }
}
