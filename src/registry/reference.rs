//! Image references following the distribution/reference grammar, with the
//! Docker Hub normalisation that Docker and containerd apply, so that names
//! typed by users resolve to the same images those tools would pull.

use std::fmt;
use std::str::FromStr;

/// Registry assumed when a name has no host part.
const DEFAULT_REGISTRY: &str = "docker.io";
/// Older spelling of Docker Hub still found in scripts and configs.
const LEGACY_REGISTRY: &str = "index.docker.io";
/// Docker Hub serves the registry API from a different host than its name.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// Namespace of Docker Hub's official images (`nginx` is `library/nginx`).
const OFFICIAL_NAMESPACE: &str = "library";
const NAME_TOTAL_LENGTH_MAX: usize = 255;
const TAG_LENGTH_MAX: usize = 128;
/// Shortest digest the grammar accepts (128 bits of hex).
const DIGEST_HEX_MIN: usize = 32;

/// A fully qualified image reference: registry, repository and optionally a
/// tag and/or a digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Why a string is not a valid image reference. Each message quotes the
/// input so it can be shown to users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("image reference is empty")]
    Empty,
    #[error("{input:?}: repository names must be lowercase")]
    Uppercase { input: String },
    #[error("{input:?}: repository name is missing")]
    MissingRepository { input: String },
    #[error(
        "{input:?}: invalid repository path component {component:?}: expected lowercase letters \
         and digits, optionally separated by '.', '_', '__' or dashes"
    )]
    InvalidPathComponent { input: String, component: String },
    #[error("{input:?}: invalid registry host {registry:?}")]
    InvalidRegistry { input: String, registry: String },
    #[error(
        "{input:?}: invalid tag {tag:?}: expected 1 to 128 letters, digits, '_', '.' or '-', \
         not starting with '.' or '-'"
    )]
    InvalidTag { input: String, tag: String },
    #[error("{input:?}: invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        input: String,
        digest: String,
        reason: &'static str,
    },
    #[error("{input:?}: repository name is {length} characters long, the limit is 255")]
    NameTooLong { input: String, length: usize },
    #[error(
        "{input:?}: a 64-character hexadecimal string cannot be a repository name \
         (it looks like an image ID)"
    )]
    HexRepository { input: String },
}

impl Reference {
    /// Parses and normalises a reference as `docker pull` would.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        // Docker refuses these so that image IDs are never mistaken for names.
        if is_hex_identifier(s) {
            return Err(ReferenceError::HexRepository { input: s.into() });
        }
        let (name_and_tag, digest) = split_digest(s);
        let (name, tag) = split_tag(name_and_tag);
        let (registry, path) = split_registry(name);
        let registry = match registry {
            Some(host) => {
                validate_registry(s, host)?;
                normalise_registry(host)
            }
            None => DEFAULT_REGISTRY.to_string(),
        };
        validate_path(s, path)?;
        let repository = qualify_repository(&registry, path);
        check_name_length(s, &registry, &repository)?;
        if let Some(tag) = tag {
            validate_tag(s, tag)?;
        }
        if let Some(digest) = digest {
            validate_digest(s, digest)?;
        }
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form Docker prints: Docker Hub's host and `library/`
    /// namespace are dropped, everything else is kept.
    pub fn familiar(&self) -> String {
        let mut out = if self.registry == DEFAULT_REGISTRY {
            familiar_hub_path(&self.repository).to_string()
        } else {
            self.name()
        };
        push_tag_and_digest(&mut out, self.tag.as_deref(), self.digest.as_deref());
        out
    }

    /// Same image with another tag. Like Docker's `WithTag`, an existing
    /// digest is kept (it still pins the content). The tag is not checked;
    /// use [`Reference::try_with_tag`] for user input.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            ..self.clone()
        }
    }

    /// [`Reference::with_tag`] that rejects tags the grammar does not allow.
    pub fn try_with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        let tagged = self.with_tag(tag);
        validate_tag(&tagged.to_string(), tag)?;
        Ok(tagged)
    }

    /// Host that serves the registry HTTP API for this reference.
    pub fn registry_api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        push_tag_and_digest(&mut out, self.tag.as_deref(), self.digest.as_deref());
        f.write_str(&out)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

fn push_tag_and_digest(out: &mut String, tag: Option<&str>, digest: Option<&str>) {
    if let Some(tag) = tag {
        out.push(':');
        out.push_str(tag);
    }
    if let Some(digest) = digest {
        out.push('@');
        out.push_str(digest);
    }
}

/// `library/nginx` prints as `nginx`, but `library/a/b` stays as it is,
/// because dropping the namespace there would change which image it names.
fn familiar_hub_path(repository: &str) -> &str {
    repository
        .strip_prefix("library/")
        .filter(|rest| !rest.contains('/'))
        .unwrap_or(repository)
}

fn is_hex_identifier(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Neither names nor tags may contain `@`, so the first one starts the digest.
fn split_digest(s: &str) -> (&str, Option<&str>) {
    match s.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (s, None),
    }
}

/// The tag follows the last `:` after the last `/`; earlier colons belong to
/// a registry port (`localhost:5000/users`) or an IPv6 host.
fn split_tag(s: &str) -> (&str, Option<&str>) {
    let after_slash = s.rfind('/').map_or(0, |i| i + 1);
    match s[after_slash..].rfind(':') {
        Some(i) => {
            let colon = after_slash + i;
            (&s[..colon], Some(&s[colon + 1..]))
        }
        None => (s, None),
    }
}

/// The first component is a host only if it looks like one; otherwise
/// `org/app` would be ambiguous with a registry named `org`.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if looks_like_host(first) => (Some(first), rest),
        _ => (None, name),
    }
}

fn looks_like_host(component: &str) -> bool {
    component.contains(['.', ':']) || component == "localhost"
}

fn normalise_registry(host: &str) -> String {
    if host == LEGACY_REGISTRY {
        DEFAULT_REGISTRY.to_string()
    } else {
        host.to_string()
    }
}

/// Docker Hub puts single-component names in the `library` namespace.
fn qualify_repository(registry: &str, path: &str) -> String {
    if registry == DEFAULT_REGISTRY && !path.contains('/') {
        format!("{OFFICIAL_NAMESPACE}/{path}")
    } else {
        path.to_string()
    }
}

fn check_name_length(input: &str, registry: &str, repository: &str) -> Result<(), ReferenceError> {
    let length = registry.len() + 1 + repository.len();
    if length > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong {
            input: input.into(),
            length,
        });
    }
    Ok(())
}

fn validate_registry(input: &str, host: &str) -> Result<(), ReferenceError> {
    let (hostname, port) = split_host_port(host);
    let host_ok = if hostname.starts_with('[') {
        is_ipv6_literal(hostname)
    } else {
        is_domain_name(hostname)
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(ReferenceError::InvalidRegistry {
            input: input.into(),
            registry: host.into(),
        })
    }
}

/// Splits `host:port`, skipping colons inside an IPv6 literal's brackets.
fn split_host_port(host: &str) -> (&str, Option<&str>) {
    let search_from = if host.starts_with('[') {
        host.find(']').map_or(host.len(), |i| i + 1)
    } else {
        0
    };
    match host[search_from..].find(':') {
        Some(i) => {
            let colon = search_from + i;
            (&host[..colon], Some(&host[colon + 1..]))
        }
        None => (host, None),
    }
}

fn is_ipv6_literal(host: &str) -> bool {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|inner| {
            !inner.is_empty() && inner.bytes().all(|b| b == b':' || b.is_ascii_hexdigit())
        })
}

/// Dot-separated labels of letters, digits and inner dashes (IPv4 included).
fn is_domain_name(host: &str) -> bool {
    !host.is_empty() && host.split('.').all(is_domain_label)
}

fn is_domain_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

fn validate_path(input: &str, path: &str) -> Result<(), ReferenceError> {
    if path.is_empty() {
        return Err(ReferenceError::MissingRepository {
            input: input.into(),
        });
    }
    // Reported before the general check because it is the common mistake.
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase {
            input: input.into(),
        });
    }
    match path.split('/').find(|c| !is_path_component(c)) {
        Some(component) => Err(ReferenceError::InvalidPathComponent {
            input: input.into(),
            component: component.into(),
        }),
        None => Ok(()),
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`, checked by alternating runs of
/// alphanumerics and separators.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let is_alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(is_alnum) || !bytes.last().is_some_and(is_alnum) {
        return false;
    }
    let mut rest = bytes;
    while !rest.is_empty() {
        let alnum_len = rest.iter().take_while(|b| is_alnum(b)).count();
        rest = &rest[alnum_len..];
        let sep_len = rest.iter().take_while(|b| !is_alnum(b)).count();
        if sep_len > 0 && !is_separator(&rest[..sep_len]) {
            return false;
        }
        rest = &rest[sep_len..];
    }
    true
}

fn is_separator(sep: &[u8]) -> bool {
    matches!(sep, b"." | b"_" | b"__") || sep.iter().all(|b| *b == b'-')
}

fn validate_tag(input: &str, tag: &str) -> Result<(), ReferenceError> {
    if is_valid_tag(tag) {
        Ok(())
    } else {
        Err(ReferenceError::InvalidTag {
            input: input.into(),
            tag: tag.into(),
        })
    }
}

/// An image as a manifest writes it, without its tag or digest and without
/// normalising (`users` stays `users`, the key tether.toml names it by):
/// `localhost:5000/users:1` is `localhost:5000/users`, not `localhost`.
pub fn repository_as_written(image: &str) -> &str {
    let name = image.split_once('@').map_or(image, |(name, _)| name);
    match name.rfind(':') {
        Some(colon) if !name[colon..].contains('/') => &name[..colon],
        _ => name,
    }
}

/// `[\w][\w.-]{0,127}` with ASCII `\w`, as in the Go grammar.
pub fn is_valid_tag(tag: &str) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let bytes = tag.as_bytes();
    bytes.len() <= TAG_LENGTH_MAX
        && bytes.first().is_some_and(word)
        && bytes.iter().all(|b| word(b) || *b == b'.' || *b == b'-')
}

fn validate_digest(input: &str, digest: &str) -> Result<(), ReferenceError> {
    check_digest(digest).map_err(|reason| ReferenceError::InvalidDigest {
        input: input.into(),
        digest: digest.into(),
        reason,
    })
}

/// Grammar: `algorithm:hex`. Registered algorithms also have a fixed
/// lowercase-hex length, so a truncated digest fails here rather than at
/// the registry.
fn check_digest(digest: &str) -> Result<(), &'static str> {
    let (algorithm, hex) = digest.split_once(':').ok_or("expected <algorithm>:<hex>")?;
    if !is_digest_algorithm(algorithm) {
        return Err("invalid algorithm name");
    }
    match algorithm {
        "sha256" => check_fixed_hex(
            hex,
            64,
            "sha256 digests must be 64 lowercase hex characters",
        ),
        "sha384" => check_fixed_hex(
            hex,
            96,
            "sha384 digests must be 96 lowercase hex characters",
        ),
        "sha512" => check_fixed_hex(
            hex,
            128,
            "sha512 digests must be 128 lowercase hex characters",
        ),
        _ if hex.len() >= DIGEST_HEX_MIN && hex.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(()),
        _ => Err("expected at least 32 hex characters"),
    }
}

fn check_fixed_hex(hex: &str, len: usize, reason: &'static str) -> Result<(), &'static str> {
    let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if hex.len() == len && hex.bytes().all(lower_hex) {
        Ok(())
    } else {
        Err(reason)
    }
}

/// `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*`
fn is_digest_algorithm(algorithm: &str) -> bool {
    algorithm.split(['-', '_', '+', '.']).all(|part| {
        let mut bytes = part.bytes();
        bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            && bytes.all(|b| b.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_as_written_keeps_host_ports_and_drops_tags_and_digests() {
        for (image, repository) in [
            ("users", "users"),
            ("users:dev", "users"),
            ("localhost:5000/users", "localhost:5000/users"),
            ("localhost:5000/users:1.2", "localhost:5000/users"),
            ("ghcr.io/org/users@sha256:abc", "ghcr.io/org/users"),
            ("ghcr.io/org/users:1@sha256:abc", "ghcr.io/org/users"),
        ] {
            assert_eq!(repository_as_written(image), repository, "{image}");
        }
    }

    const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parse(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        match Reference::parse(s) {
            Ok(r) => panic!("{s} parsed as {r}"),
            Err(e) => e.to_string(),
        }
    }

    fn parts(r: &Reference) -> (&str, &str, Option<&str>, Option<&str>) {
        (
            &r.registry,
            &r.repository,
            r.tag.as_deref(),
            r.digest.as_deref(),
        )
    }

    #[test]
    fn single_name_goes_to_docker_hub_library() {
        let r = parse("nginx");
        assert_eq!(parts(&r), ("docker.io", "library/nginx", None, None));
        assert_eq!(r.to_string(), "docker.io/library/nginx");
        assert_eq!(r.familiar(), "nginx");
    }

    #[test]
    fn tag_is_not_invented() {
        assert_eq!(parse("nginx").tag, None);
        assert_eq!(
            parse("nginx:latest").to_string(),
            "docker.io/library/nginx:latest"
        );
    }

    #[test]
    fn org_name_on_docker_hub() {
        let r = parse("org/app:1");
        assert_eq!(parts(&r), ("docker.io", "org/app", Some("1"), None));
        assert_eq!(r.familiar(), "org/app:1");
    }

    #[test]
    fn docker_hub_spellings_normalise() {
        for s in [
            "docker.io/nginx",
            "docker.io/library/nginx",
            "index.docker.io/nginx",
            "index.docker.io/library/nginx",
        ] {
            let r = parse(s);
            assert_eq!(r.to_string(), "docker.io/library/nginx", "{s}");
            assert_eq!(r.familiar(), "nginx", "{s}");
        }
    }

    #[test]
    fn familiar_keeps_nested_library_paths() {
        let r = parse("library/a/b");
        assert_eq!(r.repository, "library/a/b");
        assert_eq!(r.familiar(), "library/a/b");
    }

    #[test]
    fn localhost_with_port_is_registry() {
        let r = parse("localhost:5000/users");
        assert_eq!(parts(&r), ("localhost:5000", "users", None, None));
        assert_eq!(r.familiar(), "localhost:5000/users");
    }

    #[test]
    fn localhost_without_port_is_registry() {
        assert_eq!(
            parts(&parse("localhost/users:v2")),
            ("localhost", "users", Some("v2"), None)
        );
    }

    #[test]
    fn colon_without_slash_is_a_tag() {
        let r = parse("users:5000");
        assert_eq!(
            parts(&r),
            ("docker.io", "library/users", Some("5000"), None)
        );
        let r = parse("localhost:5000");
        assert_eq!(
            parts(&r),
            ("docker.io", "library/localhost", Some("5000"), None)
        );
    }

    #[test]
    fn ip_registry_with_port_and_tag() {
        let r = parse("127.0.0.1:5000/a/b:tag");
        assert_eq!(parts(&r), ("127.0.0.1:5000", "a/b", Some("tag"), None));
    }

    #[test]
    fn ipv6_registry() {
        let r = parse("[::1]:5000/x");
        assert_eq!(parts(&r), ("[::1]:5000", "x", None, None));
        assert_eq!(parse("[fe80::1]/x:1").registry, "[fe80::1]");
        assert_eq!(r.registry_api_host(), "[::1]:5000");
    }

    #[test]
    fn digest_only() {
        let r = parse(&format!("nginx@{SHA}"));
        assert_eq!(parts(&r), ("docker.io", "library/nginx", None, Some(SHA)));
        assert_eq!(r.to_string(), format!("docker.io/library/nginx@{SHA}"));
        assert_eq!(r.familiar(), format!("nginx@{SHA}"));
    }

    #[test]
    fn tag_and_digest() {
        let s = format!("ghcr.io/org/users:v1@{SHA}");
        let r = parse(&s);
        assert_eq!(parts(&r), ("ghcr.io", "org/users", Some("v1"), Some(SHA)));
        assert_eq!(r.to_string(), s);
        assert_eq!(r.familiar(), s);
    }

    #[test]
    fn digest_with_port_registry() {
        let r = parse(&format!("localhost:5000/users@{SHA}"));
        assert_eq!(parts(&r), ("localhost:5000", "users", None, Some(SHA)));
    }

    #[test]
    fn separators_in_repository() {
        for s in ["a.b/c__d", "org/a-b", "org/a---b", "org/a_b.c"] {
            parse(s);
        }
    }

    #[test]
    fn registry_api_host_for_hub() {
        assert_eq!(parse("nginx").registry_api_host(), "registry-1.docker.io");
        assert_eq!(parse("ghcr.io/o/a").registry_api_host(), "ghcr.io");
    }

    #[test]
    fn with_tag_replaces_tag_and_keeps_digest() {
        let r = parse("ghcr.io/org/app:old");
        assert_eq!(r.with_tag("new").to_string(), "ghcr.io/org/app:new");
        let pinned = parse(&format!("nginx@{SHA}")).with_tag("1.27");
        assert_eq!(
            pinned.to_string(),
            format!("docker.io/library/nginx:1.27@{SHA}")
        );
    }

    #[test]
    fn try_with_tag_rejects_bad_tags() {
        let r = parse("nginx");
        assert_eq!(
            r.try_with_tag("ok-1").map(|r| r.to_string()),
            Ok("docker.io/library/nginx:ok-1".into())
        );
        assert!(matches!(
            r.try_with_tag(".bad"),
            Err(ReferenceError::InvalidTag { .. })
        ));
    }

    #[test]
    fn from_str_matches_parse() {
        let r: Reference = "alpine:3".parse().unwrap();
        assert_eq!(r, parse("alpine:3"));
    }

    #[test]
    fn uppercase_repository_error_text() {
        assert_eq!(
            err("Users/x"),
            "\"Users/x\": repository names must be lowercase"
        );
        assert_eq!(
            err("ghcr.io/Org/app"),
            "\"ghcr.io/Org/app\": repository names must be lowercase"
        );
    }

    #[test]
    fn uppercase_registry_and_tag_are_fine() {
        assert_eq!(parse("Example.COM/app:V1").registry, "Example.COM");
        assert_eq!(parse("app:V1").tag.as_deref(), Some("V1"));
    }

    #[test]
    fn empty_error_text() {
        assert_eq!(err(""), "image reference is empty");
    }

    #[test]
    fn missing_repository_error_text() {
        assert_eq!(err("ghcr.io/"), "\"ghcr.io/\": repository name is missing");
    }

    #[test]
    fn invalid_component_error_text() {
        assert_eq!(
            err("org/-app"),
            "\"org/-app\": invalid repository path component \"-app\": expected lowercase \
             letters and digits, optionally separated by '.', '_', '__' or dashes"
        );
        for s in ["org//app", "org/app/", "a..b", "a___b", "a._b", "a b"] {
            assert!(
                matches!(
                    Reference::parse(s),
                    Err(ReferenceError::InvalidPathComponent { .. })
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn invalid_tag_error_text() {
        assert_eq!(
            err("nginx:-x"),
            "\"nginx:-x\": invalid tag \"-x\": expected 1 to 128 letters, digits, '_', '.' or \
             '-', not starting with '.' or '-'"
        );
        assert!(err("nginx:").contains("invalid tag \"\""));
        let long = format!("nginx:{}", "a".repeat(129));
        assert!(err(&long).contains("invalid tag"));
        assert!(Reference::parse(&format!("nginx:{}", "a".repeat(128))).is_ok());
    }

    #[test]
    fn invalid_digest_error_text() {
        assert_eq!(
            err("nginx@sha256:abc"),
            "\"nginx@sha256:abc\": invalid digest \"sha256:abc\": sha256 digests must be 64 \
             lowercase hex characters"
        );
        let upper = format!("nginx@{}", SHA.to_uppercase().replace("SHA256", "sha256"));
        assert!(err(&upper).contains("sha256 digests must be 64 lowercase hex characters"));
        assert!(err("nginx@").contains("expected <algorithm>:<hex>"));
        assert!(err("nginx@1sha:0123456789abcdef0123456789abcdef").contains("invalid algorithm"));
        assert!(err(&format!("nginx@{SHA}@{SHA}")).contains("invalid digest"));
    }

    #[test]
    fn unregistered_digest_algorithm_follows_grammar() {
        let r = parse("nginx@blake3:0123456789abcdef0123456789abcdef");
        assert_eq!(
            r.digest.as_deref(),
            Some("blake3:0123456789abcdef0123456789abcdef")
        );
        assert!(err("nginx@blake3:0123").contains("at least 32 hex"));
    }

    #[test]
    fn invalid_registry_error_text() {
        assert_eq!(
            err("exa_mple.com/app"),
            "\"exa_mple.com/app\": invalid registry host \"exa_mple.com\""
        );
        for s in [
            "localhost:/a",
            "localhost:50x/a",
            "-a.com/b",
            "[::1/x",
            "[]:5/x",
            "a..b/c",
        ] {
            assert!(
                matches!(
                    Reference::parse(s),
                    Err(ReferenceError::InvalidRegistry { .. })
                ),
                "{s}"
            );
        }
    }

    #[test]
    fn name_length_limit() {
        // docker.io/ (10) + library/ (8) + 237 = 255
        assert!(Reference::parse(&"a".repeat(237)).is_ok());
        let too_long = "a".repeat(238);
        assert_eq!(
            err(&too_long),
            format!("\"{too_long}\": repository name is 256 characters long, the limit is 255")
        );
    }

    #[test]
    fn hex_id_is_not_a_name() {
        let id = &SHA["sha256:".len()..];
        assert_eq!(
            err(id),
            format!(
                "\"{id}\": a 64-character hexadecimal string cannot be a repository name \
                 (it looks like an image ID)"
            )
        );
    }

    #[test]
    fn error_quotes_control_characters() {
        assert!(err("a\nb").starts_with("\"a\\nb\""));
    }
}
