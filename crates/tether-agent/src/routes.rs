//! The seam between who is attached and where a request goes: the per-request router asks
//! these questions of the agent's registry of laptops ([`Registry`](super::Registry)
//! implements it), so routing can be tested with any set of laptops.

/// What the per-request router asks: which laptop (if any) takes a request with these headers.
pub trait Routes: Clone + Send + Sync + 'static {
    /// The opener of the laptop whose header filter every header of matches, if any.
    fn laptop_for(&self, headers: &http::HeaderMap) -> Option<crate::tunnel::Opener>;
    /// The laptop taking every connection, if one is attached in all-traffic mode.
    fn all_traffic(&self) -> Option<crate::tunnel::Opener>;
    /// Whether any header laptop is attached (so connections need per-request routing).
    fn any_header_laptop(&self) -> bool;
}
