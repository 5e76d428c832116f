//! [`Config`]: what the users service needs to start, read from the
//! environment by `main` ([`Config::from_env`]) or built by tests.

use std::{num::NonZeroUsize, time::Duration};

use shop_common::{ConfigError, Env, JwtSecret};

/// Environment variable: how long a token stays valid, in seconds.
pub const TOKEN_TTL_SECS: &str = "TOKEN_TTL_SECS";
/// Default of [`TOKEN_TTL_SECS`]: eight hours, one workshop day.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(8 * 3600);

/// argon2id's cost in the pod: 12 MiB and 3 passes, one of OWASP's
/// equivalent recommendations (with 19 MiB and 2 passes), chosen for its
/// smaller memory: with [`DEFAULT_HASHING_SLOTS`] the hashing never needs
/// more than 24 MiB of the pod's 128Mi.
pub const DEFAULT_PASSWORD_HASHING: argon2::Params =
    match argon2::Params::new(12 * 1024, 3, 1, None) {
        Ok(params) => params,
        Err(_) => panic!("12 MiB, 3 passes, 1 lane are valid argon2 parameters"),
    };

/// How many passwords are hashed at once by default. Hashing is CPU work:
/// more at once than the pod has cores only costs memory; the rest wait.
pub const DEFAULT_HASHING_SLOTS: NonZeroUsize = NonZeroUsize::new(2).expect("2 is not zero");

/// What the service needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Signs the tokens; the gateway must have the same.
    pub jwt_secret: JwtSecret,
    /// Lifetime of a token from login.
    pub token_ttl: Duration,
    /// Cost of argon2id: [`DEFAULT_PASSWORD_HASHING`]; tests use a cheaper
    /// one because unoptimized builds hash slowly.
    pub password_hashing: argon2::Params,
    /// At most this many hashes run at once, each with `m_cost` KiB.
    pub hashing_slots: NonZeroUsize,
}

impl Config {
    /// The defaults, with `jwt_secret`.
    pub fn new(jwt_secret: JwtSecret) -> Self {
        Self {
            jwt_secret,
            token_ttl: DEFAULT_TOKEN_TTL,
            password_hashing: DEFAULT_PASSWORD_HASHING,
            hashing_slots: DEFAULT_HASHING_SLOTS,
        }
    }

    /// Reads `JWT_SECRET` (required) and `TOKEN_TTL_SECS`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let ttl = env.parse_or(TOKEN_TTL_SECS, DEFAULT_TOKEN_TTL.as_secs())?;
        Ok(Self {
            token_ttl: Duration::from_secs(ttl),
            ..Self::new(env.jwt_secret()?)
        })
    }
}
