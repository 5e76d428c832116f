//! "Did you mean": serde's `unknown field` message, rewritten to name the nearest known
//! key, because a typo in `tether.toml` is far more often one letter off than a new idea.
//!
//! serde says `unknown field `manifest`, expected one of `namespace`, `manifests`, ...`;
//! that list is the only place the known keys of the table at fault are named, so it is
//! parsed here rather than kept in a second, hand-written list that could drift.

/// At most this many edits away, a known key is offered as the one meant.
const MAX_EDITS: usize = 2;

/// serde's message for an unknown key, as ours; `None` for any other message.
pub fn unknown_key(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let known = known_keys(rest);
    Some(match nearest(key, &known) {
        Some(best) => format!("unknown key `{key}`; did you mean `{best}`?"),
        None if known.is_empty() => format!("unknown key `{key}`: this table takes no keys"),
        None => format!(
            "unknown key `{key}`; the known keys are {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// The backquoted names after `expected` (`expected one of `a`, `b``, `expected `a``).
fn known_keys(rest: &str) -> Vec<&str> {
    let Some((_, list)) = rest.split_once("expected") else {
        return Vec::new();
    };
    list.split('`').skip(1).step_by(2).collect()
}

/// The known key closest to `key`, if it is close enough to be a typo of it.
fn nearest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(key, k), *k))
        .filter(|(d, _)| *d <= MAX_EDITS)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESOURCE: &str = "unknown field `manifest`, expected one of `namespace`, `manifests`, \
                            `depends_on`, `helm`, `port_forwards`";

    #[test]
    fn a_near_miss_suggests_the_key() {
        assert_eq!(
            unknown_key(RESOURCE).unwrap(),
            "unknown key `manifest`; did you mean `manifests`?"
        );
        let m = "unknown field `dependson`, expected one of `namespace`, `manifests`, `depends_on`";
        assert_eq!(
            unknown_key(m).unwrap(),
            "unknown key `dependson`; did you mean `depends_on`?"
        );
    }

    #[test]
    fn a_far_miss_lists_the_known_keys_and_suggests_nothing() {
        let m = "unknown field `replicas`, expected one of `namespace`, `manifests`, `helm`";
        let ours = unknown_key(m).unwrap();
        assert_eq!(
            ours,
            "unknown key `replicas`; the known keys are `namespace`, `manifests`, `helm`"
        );
        assert!(!ours.contains("did you mean"), "{ours}");
    }

    #[test]
    fn a_table_of_one_key_is_read_too() {
        let m = "unknown field `chrat`, expected `chart`";
        assert_eq!(
            unknown_key(m).unwrap(),
            "unknown key `chrat`; did you mean `chart`?"
        );
    }

    #[test]
    fn other_messages_are_left_alone() {
        assert_eq!(
            unknown_key("invalid type: integer `1`, expected a string"),
            None
        );
        assert_eq!(unknown_key("missing field `chart`"), None);
    }
}
