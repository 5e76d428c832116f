//! Who is attached to this agent: one entry per laptop session, written by the control
//! side as laptops attach and leave, read by the traffic side for every connection or
//! request (through [`Routes`]) and by the laptops query ([`LaptopInfo`]).
//!
//! # Who may hold what
//! - At most one laptop takes all traffic: it stands in for the app, so every connection
//!   no header laptop claims goes to it.
//! - Header laptops with different filters coexist, each getting only the requests that
//!   carry every one of its headers. When several match one request (`x-dev=alice` and
//!   `x-dev=alice, x-team=a`), the most specific filter (most headers) wins, then the
//!   earliest to attach.
//! - A header laptop and an all-traffic laptop coexist: header matches go to the header
//!   laptop, the rest to the all-traffic one instead of the app.
//! - A second all-traffic laptop, or a second laptop with the same headers (in any order
//!   or case), is refused with who holds the route and since when: the one attached first
//!   keeps it until it leaves. Silently taking over would leave the first laptop showing
//!   "attached" while it receives nothing.
//! - A laptop whose session ended holds nothing, even before its entry is removed.

use std::{sync::Arc, time::Duration};

use tokio::{sync::watch, time::Instant};

use super::routes::Routes;
use crate::tunnel::{Filter, LaptopInfo, Opener};

/// One attached laptop.
struct Laptop {
    /// Tells entries apart, so a leaving laptop removes only itself.
    serial: u64,
    name: String,
    /// In canonical form, so equal filters compare equal.
    filter: Filter,
    /// Set once the laptop was welcomed; until then it holds its route but takes nothing.
    opener: std::sync::OnceLock<Opener>,
    since: Instant,
}

impl Laptop {
    /// The opener of a laptop whose session is up.
    fn live(&self) -> Option<&Opener> {
        self.opener.get().filter(|o| !o.is_closed())
    }

    /// Whether it still holds its route (welcomed and up, or being welcomed).
    fn holds(&self) -> bool {
        self.opener.get().is_none_or(|o| !o.is_closed())
    }
}

/// The laptops attached to this agent. Cheap to clone; clones share the state.
#[derive(Clone)]
pub struct Registry {
    laptops_tx: Arc<watch::Sender<Vec<Arc<Laptop>>>>,
    next_serial: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry {
            laptops_tx: Arc::new(watch::channel(Vec::new()).0),
            next_serial: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        }
    }
}

/// A route another laptop holds: why a laptop was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The holder's user@host.
    pub name: String,
    /// The route: all traffic (empty) or these headers.
    pub filter: Filter,
    pub since: Duration,
}

impl Held {
    /// `payments-svc is intercepted by alice@host since 12 s; `tether leave` it first`.
    pub fn message(&self, service: &str) -> String {
        let what = if self.filter.is_all() {
            format!("{service} is intercepted")
        } else {
            format!(
                "{service} requests with {} are intercepted",
                self.filter.describe()
            )
        };
        format!(
            "{what} by {} since {} s; `tether leave` it first",
            self.name,
            self.since.as_secs()
        )
    }
}

/// A laptop's place in the registry; dropping it gives the route up.
pub struct Membership {
    registry: Registry,
    laptop: Arc<Laptop>,
}

impl Membership {
    /// The laptop was welcomed: from now on it takes what it asked for.
    pub fn activate(&self, opener: Opener) {
        let _ = self.laptop.opener.set(opener);
        // Wake the watchers: the laptop now takes traffic.
        self.registry.laptops_tx.send_modify(|_| {});
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let serial = self.laptop.serial;
        self.registry
            .laptops_tx
            .send_modify(|laptops| laptops.retain(|l| l.serial != serial));
    }
}

impl Registry {
    /// Takes the route `filter` for laptop `name`, unless a laptop holds it already.
    pub fn join(&self, name: &str, filter: &Filter) -> Result<Membership, Held> {
        let filter = filter.canonical();
        let serial = self
            .next_serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let laptop = Arc::new(Laptop {
            serial,
            name: name.to_owned(),
            filter,
            opener: std::sync::OnceLock::new(),
            since: Instant::now(),
        });
        let mut held = None;
        // Check and insert under the one lock, so two laptops attaching at once cannot
        // both take a route.
        self.laptops_tx.send_if_modified(|laptops| {
            laptops.retain(|l| l.holds());
            if let Some(h) = laptops.iter().find(|l| l.filter == laptop.filter) {
                held = Some(Held {
                    name: h.name.clone(),
                    filter: h.filter.clone(),
                    since: h.since.elapsed(),
                });
                return false;
            }
            laptops.push(laptop.clone());
            true
        });
        match held {
            Some(h) => Err(h),
            None => Ok(Membership {
                registry: self.clone(),
                laptop,
            }),
        }
    }

    /// Every attached laptop, oldest first, for the laptops query.
    pub fn laptops(&self) -> Vec<LaptopInfo> {
        self.laptops_tx
            .borrow()
            .iter()
            .filter(|l| l.live().is_some())
            .map(|l| LaptopInfo {
                name: l.name.clone(),
                filter: l.filter.clone(),
                attached_ms: l.since.elapsed().as_millis() as u64,
            })
            .collect()
    }

    /// How many laptops take traffic now, as a watch.
    pub fn watch_count(&self) -> watch::Receiver<usize> {
        let mut rx = self.laptops_tx.subscribe();
        let count = |l: &Vec<Arc<Laptop>>| l.iter().filter(|l| l.live().is_some()).count();
        let (tx, out) = watch::channel(count(&rx.borrow()));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = rx.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                }
                let now = count(&rx.borrow_and_update());
                tx.send_if_modified(|c| std::mem::replace(c, now) != now);
            }
        });
        out
    }
}

/// Whether the request carries every header of the filter.
pub fn matches(filter: &Filter, headers: &http::HeaderMap) -> bool {
    filter.headers.iter().all(|(name, value)| {
        headers
            .get_all(name.as_str())
            .iter()
            .any(|v| v.as_bytes() == value.as_bytes())
    })
}

impl Routes for Registry {
    fn laptop_for(&self, headers: &http::HeaderMap) -> Option<Opener> {
        let laptops = self.laptops_tx.borrow();
        laptops
            .iter()
            .filter(|l| !l.filter.is_all() && matches(&l.filter, headers))
            .filter_map(|l| l.live().map(|o| (l.filter.headers.len(), l.serial, o)))
            // The most specific filter, then the earliest.
            .max_by_key(|(n, serial, _)| (*n, std::cmp::Reverse(*serial)))
            .map(|(_, _, o)| o.clone())
    }

    fn all_traffic(&self) -> Option<Opener> {
        let laptops = self.laptops_tx.borrow();
        laptops
            .iter()
            .filter(|l| l.filter.is_all())
            .find_map(|l| l.live().cloned())
    }

    fn any_header_laptop(&self) -> bool {
        let laptops = self.laptops_tx.borrow();
        laptops
            .iter()
            .any(|l| !l.filter.is_all() && l.live().is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> Filter {
        Filter {
            headers: pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[tokio::test]
    async fn the_same_route_is_refused_with_its_holder_and_different_ones_coexist() {
        let reg = Registry::default();
        let alice = reg
            .join("alice@a", &headers(&[("x-dev", "alice")]))
            .unwrap();
        let _bob = reg.join("bob@b", &headers(&[("x-dev", "bob")])).unwrap();
        let _all = reg.join("carol@c", &Filter::default()).unwrap();
        let held = reg
            .join("dave@d", &headers(&[("X-Dev", "alice")]))
            .err()
            .expect("alice's headers are taken");
        assert_eq!(held.name, "alice@a");
        assert_eq!(
            held.message("payments-svc"),
            "payments-svc requests with x-dev=alice are intercepted by alice@a since 0 s; \
             `tether leave` it first"
        );
        let held = reg.join("erin@e", &Filter::default()).err().unwrap();
        assert_eq!(
            held.message("payments-svc"),
            "payments-svc is intercepted by carol@c since 0 s; `tether leave` it first"
        );
        drop(alice);
        assert!(reg.join("dave@d", &headers(&[("x-dev", "alice")])).is_ok());
    }
}
