//! [`AppState`]: what every handler shares: the configuration, the
//! password hasher and the accounts.
//!
//! Accounts live in this process's memory only: a restart of the pod (a
//! redeploy, a crash) forgets every one, and their owners sign up again.
//! Their tokens stay valid until they expire, since they are checked with
//! `JWT_SECRET` alone.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use crate::{Config, Passwords};

/// A user as stored: never leaves the service.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    /// The `sub` of the user's tokens.
    pub(crate) id: String,
    /// PHC string: `$argon2id$v=19$m=...,t=...,p=...$salt$hash`.
    pub(crate) password_hash: Arc<str>,
}

/// Shared by all handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    pub(crate) config: Arc<Config>,
    pub(crate) passwords: Passwords,
    /// Accounts by username; the only state written after start.
    accounts: Arc<Mutex<HashMap<String, Account>>>,
}

impl AppState {
    /// State with no users yet.
    pub fn new(config: Config) -> Self {
        let passwords = Passwords::new(config.password_hashing.clone(), config.hashing_slots);
        Self {
            config: Arc::new(config),
            passwords,
            accounts: Arc::default(),
        }
    }

    pub(crate) fn accounts(&self) -> MutexGuard<'_, HashMap<String, Account>> {
        // No handler panics while holding the lock; if one ever did, the map
        // is still consistent (every write is a single insert).
        self.accounts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
