//! Password hashing in bounded memory: argon2id, a few hashes at a time,
//! each in a block buffer that is kept and reused.
//!
//! An argon2id hash fills `m_cost` KiB of memory. Left to the allocator
//! (`Argon2::hash_password`), each hash allocated and freed its own buffer,
//! and glibc's malloc neither returned nor reused them: measured on the
//! static release binary, its RSS grew by about one 19 MiB buffer per
//! hash, sequential ones too (22, 60, 98 MiB after one, two, three
//! walkthroughs of sign-up and login), and parallel ones each took another
//! (763 MiB after 48 hashes, 8 at a time), until the kernel killed the pod
//! at its 128Mi limit. Here at most `slots` hashes run at once, each on the
//! blocking pool with one of at most `slots` buffers, made on first use and
//! reused: the hashing memory is bounded by `slots × m_cost` KiB whatever
//! the allocator does. A request beyond the slots waits its turn on a
//! semaphore without holding a thread.
//!
//! Handlers give a password and get a PHC string
//! (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) at sign-up; at login they
//! give the stored PHC string, or [`Passwords::dummy`] for a name nobody
//! has, and learn whether the password matches. The dummy has the
//! configured cost, so a login takes as long for an unknown name as for a
//! known one and its timing does not tell which names exist.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex, PoisonError},
};

use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version,
    password_hash::{
        self,
        phc::{Output, ParamsString, PasswordHash, Salt},
    },
};
use tokio::sync::Semaphore;

/// Why a password could not be hashed or checked: a fault of this service,
/// never the caller's (a wrong password is `Ok(false)`).
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// argon2 refused its inputs, or a stored hash is not a valid PHC
    /// string of this service's making.
    #[error("password hashing failed")]
    Hash(#[from] password_hash::Error),
    /// The blocking task that hashed panicked or was cancelled.
    #[error("password hashing stopped")]
    Stopped(#[source] tokio::task::JoinError),
}

/// The argon2id hasher of the service: shared, cheap to clone.
#[derive(Debug, Clone)]
pub struct Passwords {
    /// The cost of every new hash and of the dummy.
    params: Params,
    /// One permit per hash allowed to run at once.
    slots: Arc<Semaphore>,
    /// Buffers of `params.block_count()` blocks not in use right now; a
    /// hash takes one (or makes one if none is free) and puts it back.
    idle: Arc<Mutex<Vec<Box<[Block]>>>>,
    /// A PHC string with the configured cost that no password matches.
    dummy: Arc<str>,
}

impl Passwords {
    /// A hasher with cost `params`, running at most `slots` hashes at once.
    pub fn new(params: Params, slots: NonZeroUsize) -> Self {
        let dummy = PasswordHash {
            algorithm: ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            // The longest valid `Params` (every cost at its maximum, a key
            // id and associated data) encodes in about 100 of the 127
            // characters a `ParamsString` holds.
            params: ParamsString::try_from(&params)
                .expect("valid argon2 params fit in a PHC parameter string"),
            salt: Some(Salt::generate()),
            hash: Some(
                Output::new(&[0; Params::DEFAULT_OUTPUT_LEN])
                    .expect("argon2's default output length is a valid PHC output"),
            ),
        }
        .to_string();
        Self {
            params,
            slots: Arc::new(Semaphore::new(slots.get())),
            idle: Arc::default(),
            dummy: dummy.into(),
        }
    }

    /// The stored form of `password`: a PHC string with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let params = self.params.clone();
        let hash = self.run(move |memory| -> password_hash::Result<String> {
            let salt = Salt::generate();
            let mut out = [0; Params::DEFAULT_OUTPUT_LEN];
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
                .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, memory)?;
            let hash = PasswordHash {
                algorithm: ARGON2ID_IDENT,
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(&params)?,
                salt: Some(salt),
                hash: Some(Output::new(&out)?),
            };
            Ok(hash.to_string())
        });
        Ok(hash.await??)
    }

    /// Whether `password` is the one `stored` (a PHC string from
    /// [`Passwords::hash`] or [`Passwords::dummy`]) was made from. The
    /// comparison takes constant time.
    pub async fn verify(&self, password: String, stored: Arc<str>) -> Result<bool, PasswordError> {
        let matches = self.run(move |memory| -> password_hash::Result<bool> {
            let stored = PasswordHash::new(&stored)?;
            let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
                return Err(password_hash::Error::EncodingInvalid);
            };
            let version = stored
                .version
                .map(Version::try_from)
                .transpose()?
                .unwrap_or_default();
            let argon2 = Argon2::new(
                Algorithm::try_from(stored.algorithm.as_str())?,
                version,
                Params::try_from(&stored)?,
            );
            let mut out = vec![0; expected.len()];
            argon2.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, memory)?;
            // `Output`'s equality is constant-time.
            Ok(Output::new(&out)? == *expected)
        });
        Ok(matches.await??)
    }

    /// What a login checks the password against when the name is unknown:
    /// the same work as a real check, and never a match.
    pub fn dummy(&self) -> Arc<str> {
        self.dummy.clone()
    }

    /// Runs `work` on the blocking pool with a buffer for the configured
    /// cost, once a slot is free.
    async fn run<T, F>(&self, work: F) -> Result<T, PasswordError>
    where
        F: FnOnce(&mut [Block]) -> T + Send + 'static,
        T: Send + 'static,
    {
        // The semaphore is never closed, so acquiring only ever waits.
        let permit = self.slots.clone().acquire_owned().await;
        let idle = self.idle.clone();
        let blocks = self.params.block_count();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let lock = || idle.lock().unwrap_or_else(PoisonError::into_inner);
            // With a permit held, at most `slots - 1` buffers are in use
            // elsewhere: one is idle, or this is one of the first `slots`.
            let taken = lock().pop();
            let mut memory = taken.unwrap_or_else(|| vec![Block::default(); blocks].into());
            let out = work(&mut memory);
            lock().push(memory);
            out
        })
        .await
        .map_err(PasswordError::Stopped)
    }

    /// How many buffers exist right now (none is in use when this is
    /// called between requests).
    #[cfg(test)]
    fn buffers(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use argon2::{PasswordHasher, PasswordVerifier};

    use super::*;

    fn cheap(slots: usize) -> Passwords {
        let params = Params::new(256, 1, 1, None).expect("valid argon2 params");
        Passwords::new(params, NonZeroUsize::new(slots).expect("not zero"))
    }

    #[tokio::test]
    async fn hashes_verify_here_and_with_the_argon2_crate() {
        let passwords = cheap(1);
        let stored: Arc<str> = passwords.hash("lovelace".into()).await.unwrap().into();
        assert!(
            stored.starts_with("$argon2id$v=19$m=256,t=1,p=1$"),
            "{stored}"
        );
        assert!(
            passwords
                .verify("lovelace".into(), stored.clone())
                .await
                .unwrap()
        );
        assert!(
            !passwords
                .verify("babbage".into(), stored.clone())
                .await
                .unwrap()
        );
        let standard = Argon2::default();
        assert!(standard.verify_password(b"lovelace", &*stored).is_ok());

        let params = Params::new(256, 1, 1, None).unwrap();
        let made_elsewhere = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"hopper")
            .unwrap()
            .to_string();
        assert!(
            passwords
                .verify("hopper".into(), made_elsewhere.into())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn nothing_matches_the_dummy() {
        let passwords = cheap(1);
        assert!(
            passwords
                .dummy()
                .starts_with("$argon2id$v=19$m=256,t=1,p=1$")
        );
        for password in ["", "lovelace", "0"] {
            assert!(
                !passwords
                    .verify(password.into(), passwords.dummy())
                    .await
                    .unwrap()
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_hashes_share_at_most_slots_buffers() {
        let passwords = cheap(2);
        let hashes: Vec<_> = (0..12)
            .map(|i| {
                let passwords = passwords.clone();
                tokio::spawn(async move { passwords.hash(format!("pw{i}")).await })
            })
            .collect();
        for hash in hashes {
            hash.await.unwrap().unwrap();
        }
        assert!(
            (1..=2).contains(&passwords.buffers()),
            "{}",
            passwords.buffers()
        );
    }
}
