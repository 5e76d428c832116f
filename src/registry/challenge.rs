//! The pure parts of the registry token flow: reading a `WWW-Authenticate`
//! challenge, building the token request URL and reading the token reply.
//! Kept apart from HTTP so each step can be tested on fixed strings.

use serde::Deserialize;

/// What a registry asks for in its `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Send credentials directly on each request.
    Basic { realm: String },
    /// Fetch a token from `realm` first, then send it as a bearer token.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Why a token endpoint reply could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenResponseError {
    #[error("token response is not valid JSON")]
    Json(#[source] serde_json::Error),
    #[error("token response has neither \"token\" nor \"access_token\"")]
    MissingToken,
}

/// Parses the first challenge in a `WWW-Authenticate` header. Returns
/// `None` for schemes other than Basic and Bearer, for a Bearer challenge
/// without a realm (there is nowhere to get a token), and for malformed
/// quoting.
pub fn parse_www_authenticate(header: &str) -> Option<Challenge> {
    let header = header.trim_start();
    let scheme_end = header
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(header.len());
    let (scheme, rest) = header.split_at(scheme_end);
    let params = parse_params(rest)?;
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic {
            realm: param("realm").unwrap_or_default(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: param("realm")?,
            service: param("service"),
            scope: param("scope"),
        })
    } else {
        None
    }
}

/// Reads `key=value` pairs separated by commas. Stops at a bare token,
/// which starts the next challenge in a multi-challenge header.
fn parse_params(input: &str) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    let mut rest = input;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        let key_end = rest
            .find(|c: char| c == '=' || c == ',' || c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let (key, after_key) = rest.split_at(key_end);
        let Some(after_eq) = after_key.trim_start().strip_prefix('=') else {
            return Some(params);
        };
        if key.is_empty() {
            return Some(params);
        }
        let (value, after_value) = parse_value(after_eq.trim_start())?;
        params.push((key.to_string(), value));
        rest = after_value;
    }
}

/// A quoted string (with backslash escapes) or a bare token. `None` for an
/// unterminated quote.
fn parse_value(input: &str) -> Option<(String, &str)> {
    match input.strip_prefix('"') {
        Some(quoted) => parse_quoted(quoted),
        None => {
            let end = input
                .find(|c: char| c == ',' || c.is_ascii_whitespace())
                .unwrap_or(input.len());
            Some((input[..end].to_string(), &input[end..]))
        }
    }
}

fn parse_quoted(input: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = input.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &input[i + 1..])),
            '\\' => value.push(chars.next()?.1),
            _ => value.push(c),
        }
    }
    None
}

/// URL to request a token from: the realm with `service` and one `scope`
/// parameter per scope. When `scopes` is empty the challenge's own scope is
/// used, so a plain retry asks for what the registry said it needs.
/// `None` for Basic challenges, which have no token endpoint.
pub fn token_url(challenge: &Challenge, scopes: &[String]) -> Option<String> {
    let Challenge::Bearer {
        realm,
        service,
        scope,
    } = challenge
    else {
        return None;
    };
    let scopes: Vec<&str> = if scopes.is_empty() {
        scope.iter().map(String::as_str).collect()
    } else {
        scopes.iter().map(String::as_str).collect()
    };
    let query: Vec<String> = service
        .iter()
        .map(|s| format!("service={}", percent_encode(s)))
        .chain(
            scopes
                .iter()
                .map(|s| format!("scope={}", percent_encode(s))),
        )
        .collect();
    if query.is_empty() {
        return Some(realm.clone());
    }
    Some(format!(
        "{realm}{}{}",
        query_separator(realm),
        query.join("&")
    ))
}

/// Realms may already carry a query string; append to it rather than
/// starting a second one.
fn query_separator(realm: &str) -> &'static str {
    match realm.find('?') {
        None => "?",
        Some(_) if realm.ends_with('?') || realm.ends_with('&') => "",
        Some(_) => "&",
    }
}

/// Percent-encodes everything except RFC 3986 unreserved characters, which
/// is safe for any query value.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The token scope for pulling (and optionally pushing) a repository.
pub fn scope_for(repository: &str, push: bool) -> String {
    let actions = if push { "pull,push" } else { "pull" };
    format!("repository:{repository}:{actions}")
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// Extracts the bearer token from a token endpoint reply. Docker's
/// endpoint sends `token`, OAuth2-style ones send `access_token`; either
/// is accepted, `token` first.
pub fn parse_token_response(body: &[u8]) -> Result<String, TokenResponseError> {
    let response: TokenResponse = serde_json::from_slice(body).map_err(TokenResponseError::Json)?;
    [response.token, response.access_token]
        .into_iter()
        .flatten()
        .find(|t| !t.is_empty())
        .ok_or(TokenResponseError::MissingToken)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HUB: &str = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer {
            realm: realm.into(),
            service: service.map(str::to_string),
            scope: scope.map(str::to_string),
        }
    }

    #[test]
    fn docker_hub_bearer_challenge() {
        assert_eq!(
            parse_www_authenticate(HUB),
            Some(bearer(
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                Some("repository:library/nginx:pull")
            ))
        );
    }

    #[test]
    fn basic_challenge() {
        assert_eq!(
            parse_www_authenticate(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic {
                realm: "Registry Realm".into()
            })
        );
        assert_eq!(
            parse_www_authenticate("basic"),
            Some(Challenge::Basic { realm: "".into() })
        );
    }

    #[test]
    fn quoted_commas_and_escapes() {
        let header = r#"Bearer realm="https://a/t?x=1,2",scope="repository:a:pull,push",service="say \"hi\"\\""#;
        assert_eq!(
            parse_www_authenticate(header),
            Some(bearer(
                "https://a/t?x=1,2",
                Some(r#"say "hi"\"#),
                Some("repository:a:pull,push")
            ))
        );
    }

    #[test]
    fn spacing_case_and_bare_tokens() {
        let header = "BEARER  Realm = \"https://a/t\" ,  service=reg.io";
        assert_eq!(
            parse_www_authenticate(header),
            Some(bearer("https://a/t", Some("reg.io"), None))
        );
    }

    #[test]
    fn first_of_several_challenges() {
        let header = r#"Bearer realm="https://a/t",service="s", Basic realm="b""#;
        assert_eq!(
            parse_www_authenticate(header),
            Some(bearer("https://a/t", Some("s"), None))
        );
    }

    #[test]
    fn rejected_challenges() {
        assert_eq!(parse_www_authenticate(""), None);
        assert_eq!(parse_www_authenticate(r#"Digest realm="x""#), None);
        assert_eq!(parse_www_authenticate(r#"Bearer service="s""#), None);
        assert_eq!(
            parse_www_authenticate(r#"Bearer realm="unterminated"#),
            None
        );
    }

    #[test]
    fn token_url_with_scopes() {
        let challenge = parse_www_authenticate(HUB).unwrap();
        let scopes = vec![scope_for("org/app", true), scope_for("library/base", false)];
        assert_eq!(
            token_url(&challenge, &scopes).unwrap(),
            "https://auth.docker.io/token?service=registry.docker.io\
             &scope=repository%3Aorg%2Fapp%3Apull%2Cpush\
             &scope=repository%3Alibrary%2Fbase%3Apull"
        );
    }

    #[test]
    fn token_url_falls_back_to_challenge_scope() {
        let challenge = parse_www_authenticate(HUB).unwrap();
        assert_eq!(
            token_url(&challenge, &[]).unwrap(),
            "https://auth.docker.io/token?service=registry.docker.io\
             &scope=repository%3Alibrary%2Fnginx%3Apull"
        );
    }

    #[test]
    fn token_url_respects_existing_query() {
        let scopes = ["repository:a:pull".to_string()];
        let with_query = bearer("https://a/t?x=1", None, None);
        assert_eq!(
            token_url(&with_query, &scopes).unwrap(),
            "https://a/t?x=1&scope=repository%3Aa%3Apull"
        );
        let trailing = bearer("https://a/t?", Some("s"), None);
        assert_eq!(token_url(&trailing, &[]).unwrap(), "https://a/t?service=s");
        let bare = bearer("https://a/t", None, None);
        assert_eq!(token_url(&bare, &[]).unwrap(), "https://a/t");
    }

    #[test]
    fn token_url_none_for_basic() {
        let basic = Challenge::Basic { realm: "r".into() };
        assert_eq!(token_url(&basic, &[]), None);
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(percent_encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(
            percent_encode("a b/c:d,e&f=g?"),
            "a%20b%2Fc%3Ad%2Ce%26f%3Dg%3F"
        );
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn scopes() {
        assert_eq!(scope_for("org/app", true), "repository:org/app:pull,push");
        assert_eq!(scope_for("org/app", false), "repository:org/app:pull");
    }

    #[test]
    fn token_response_fields() {
        assert_eq!(
            parse_token_response(br#"{"token":"t1","expires_in":300}"#).unwrap(),
            "t1"
        );
        assert_eq!(
            parse_token_response(br#"{"access_token":"t2"}"#).unwrap(),
            "t2"
        );
        assert_eq!(
            parse_token_response(br#"{"token":"t1","access_token":"t2"}"#).unwrap(),
            "t1"
        );
        assert_eq!(
            parse_token_response(br#"{"token":"","access_token":"t2"}"#).unwrap(),
            "t2"
        );
    }

    #[test]
    fn token_response_errors() {
        let missing = parse_token_response(br#"{"expires_in":300}"#).unwrap_err();
        assert!(matches!(missing, TokenResponseError::MissingToken));
        assert_eq!(
            missing.to_string(),
            "token response has neither \"token\" nor \"access_token\""
        );
        let bad = parse_token_response(b"<html>").unwrap_err();
        assert!(matches!(bad, TokenResponseError::Json(_)));
        assert!(std::error::Error::source(&bad).is_some());
    }
}
