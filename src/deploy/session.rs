//! The ownership label that ties the objects of one checkout on one machine together.

use std::path::Path;

/// The ownership label value for the project rooted at `root`: its folder name for people,
/// and a hash of this machine's name and the path, so two checkouts (also at the same
/// path on two laptops) never claim each other's objects.
pub fn session_id(root: &Path) -> String {
    session_id_on(&host_name(), root)
}

fn session_id_on(host: &str, root: &Path) -> String {
    use sha2::{Digest as _, Sha256};
    let mut hash = Sha256::new();
    hash.update(host.as_bytes());
    hash.update([0]);
    hash.update(root.to_string_lossy().as_bytes());
    let hash = hex::encode(&hash.finalize()[..5]);
    let name: String = root
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    let name = name.trim_matches('-');
    if name.is_empty() {
        hash
    } else {
        format!("{name}-{hash}")
    }
}

/// This machine's name, as the kernel has it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_label_values_unique_per_path() {
        let a = session_id_on("laptop", Path::new("/home/me/Shop Payments"));
        assert!(a.starts_with("shop-payments-"), "{a}");
        assert!(a.len() <= 63);
        assert_ne!(
            a,
            session_id_on("laptop", Path::new("/other/Shop Payments"))
        );
        assert_ne!(
            a,
            session_id_on("other-laptop", Path::new("/home/me/Shop Payments")),
            "the same path on two machines is two checkouts"
        );
        assert_eq!(session_id_on("laptop", Path::new("/")).len(), 10);
    }
}
