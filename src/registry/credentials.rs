//! Registry credentials found the way the Docker CLI finds them: from
//! `config.json` under `$DOCKER_CONFIG` or `~/.docker`, via credential
//! helpers or inline `auths` entries, so a user logged in with
//! `docker login` needs no extra setup.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::{Deserialize, Deserializer};

/// Key under which Docker stores Docker Hub credentials, and the server URL
/// its helpers expect for Docker Hub.
pub const DOCKER_HUB_SERVER_URL: &str = "https://index.docker.io/v1/";
/// Host names that all mean Docker Hub in config keys.
const DOCKER_HUB_HOSTS: [&str; 3] = ["index.docker.io", "docker.io", "registry-1.docker.io"];
/// Username a helper reports when its secret is an identity token.
const IDENTITY_TOKEN_USERNAME: &str = "<token>";
/// What helpers built on docker-credential-helpers print for a miss.
const NOT_FOUND_MESSAGE: &str = "credentials not found in native keychain";
const HELPER_PREFIX: &str = "docker-credential-";
const CONFIG_FILE: &str = "config.json";

/// Credentials to present to a registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic {
        username: String,
        password: String,
    },
    /// Refresh token exchanged at the token endpoint (what `docker login`
    /// stores for registries using OAuth).
    IdentityToken(String),
    /// Bearer token sent to the registry as is.
    RegistryToken(String),
}

/// Secrets never reach logs: only the username is shown.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &Redacted)
                .finish(),
            Credentials::IdentityToken(_) => {
                f.debug_tuple("IdentityToken").field(&Redacted).finish()
            }
            Credentials::RegistryToken(_) => {
                f.debug_tuple("RegistryToken").field(&Redacted).finish()
            }
        }
    }
}

struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Failures while finding credentials; each names the file or helper
/// involved and keeps the underlying error as its source.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}:{line}:{column}: invalid Docker config JSON", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("auths entry {server:?}: \"auth\" is not valid base64")]
    AuthBase64 {
        server: String,
        #[source]
        source: base64::DecodeError,
    },
    #[error("auths entry {server:?}: \"auth\" must decode to \"username:password\"")]
    AuthFormat { server: String },
    #[error("credential helper {program} not found in PATH")]
    HelperNotFound { program: String },
    #[error("cannot run credential helper {program}")]
    HelperSpawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("credential helper {program} failed ({status}): {message}")]
    HelperFailed {
        program: String,
        status: String,
        message: String,
    },
    #[error("credential helper {program} printed invalid JSON")]
    HelperOutput {
        program: String,
        #[source]
        source: serde_json::Error,
    },
}

/// One `auths` entry. Fields are public for callers that need them, but
/// `Debug` hides the secrets.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct AuthEntry {
    /// base64 of `username:password`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub auth: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub username: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub password: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub identitytoken: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub registrytoken: String,
}

impl fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("AuthEntry")
            .field("auth", &hidden(&self.auth))
            .field("username", &self.username)
            .field("password", &hidden(&self.password))
            .field("identitytoken", &hidden(&self.identitytoken))
            .field("registrytoken", &hidden(&self.registrytoken))
            .finish()
    }
}

/// The parts of Docker's `config.json` that concern credentials; other
/// keys are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct DockerConfig {
    #[serde(default, deserialize_with = "null_as_default")]
    pub auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers", deserialize_with = "null_as_default")]
    pub cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore", deserialize_with = "null_as_default")]
    pub creds_store: String,
}

/// Go writes `null` for empty maps and strings; treat it as empty.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

impl DockerConfig {
    /// Loads `config.json` from `dir`, or from `$DOCKER_CONFIG` / `~/.docker`
    /// when `dir` is `None`. A missing file (or no home directory) is not an
    /// error: it just means anonymous access.
    pub fn load(dir: Option<&Path>) -> Result<Option<DockerConfig>, CredentialsError> {
        let dir = match dir {
            Some(dir) => dir.to_path_buf(),
            None => match default_config_dir(
                std::env::var_os("DOCKER_CONFIG"),
                std::env::var_os("HOME"),
            ) {
                Some(dir) => dir,
                None => return Ok(None),
            },
        };
        Self::load_file(&dir.join(CONFIG_FILE))
    }

    /// Reads one config file; `Ok(None)` if it does not exist.
    pub fn load_file(path: &Path) -> Result<Option<DockerConfig>, CredentialsError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_json(path, &text).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CredentialsError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses config text; `path` is only used in error messages. An empty
    /// file is accepted, as the Docker CLI does.
    pub fn from_json(path: &Path, text: &str) -> Result<DockerConfig, CredentialsError> {
        if text.trim().is_empty() {
            return Ok(DockerConfig::default());
        }
        serde_json::from_str(text).map_err(|source| CredentialsError::Parse {
            path: path.to_path_buf(),
            line: source.line(),
            column: source.column(),
            source,
        })
    }

    /// Credentials for `registry` (a host such as `ghcr.io`, `docker.io` or
    /// a URL), running credential helpers found on `PATH`.
    pub fn credentials_for(&self, registry: &str) -> Result<Option<Credentials>, CredentialsError> {
        self.credentials_with(registry, &ProcessRunner::from_env())
    }

    /// [`DockerConfig::credentials_for`] with an explicit helper runner.
    ///
    /// As in the Docker CLI, the first configured source decides: a
    /// `credHelpers` entry for the host, else `credsStore`, else `auths`.
    /// A helper that has nothing stored yields `None` without falling back
    /// to `auths`, so results match what `docker pull` would send.
    pub fn credentials_with(
        &self,
        registry: &str,
        runner: &dyn HelperRunner,
    ) -> Result<Option<Credentials>, CredentialsError> {
        let host = normalise_host(registry);
        if let Some(helper) = self.helper_for(&host) {
            return run_helper(runner, helper, &helper_server_url(&host));
        }
        match self.auth_entry_for(&host) {
            Some((key, entry)) => entry_credentials(key, entry),
            None => Ok(None),
        }
    }

    /// The helper suffix to use for `host`, if any.
    fn helper_for(&self, host: &str) -> Option<&str> {
        find_by_host(&self.cred_helpers, host)
            .map(|(_, suffix)| suffix.as_str())
            .filter(|suffix| !suffix.is_empty())
            .or_else(|| Some(self.creds_store.as_str()).filter(|s| !s.is_empty()))
    }

    fn auth_entry_for(&self, host: &str) -> Option<(&str, &AuthEntry)> {
        find_by_host(&self.auths, host).map(|(key, entry)| (key.as_str(), entry))
    }
}

/// `$DOCKER_CONFIG` when set and non-empty, else `$HOME/.docker`.
pub fn default_config_dir(
    docker_config: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let non_empty = |v: Option<OsString>| v.filter(|v| !v.is_empty());
    non_empty(docker_config)
        .map(PathBuf::from)
        .or_else(|| non_empty(home).map(|home| Path::new(&home).join(".docker")))
}

/// Looks a host up in a map whose keys may be hosts or URLs. The key the
/// Docker CLI itself writes wins (`https://index.docker.io/v1/` for Docker
/// Hub, the bare host otherwise); failing that, the first key in sorted
/// order with the same host, so the choice is stable when several
/// spellings are present.
fn find_by_host<'a, V>(map: &'a BTreeMap<String, V>, host: &str) -> Option<(&'a String, &'a V)> {
    let preferred = [&helper_server_url(host), host];
    preferred
        .iter()
        .find_map(|key| map.get_key_value(*key))
        .or_else(|| map.iter().find(|(key, _)| normalise_host(key) == host))
}

/// Reduces a config key or registry name to a comparable host: scheme and
/// path dropped, lowercased, and every Docker Hub alias mapped to
/// `docker.io`.
fn normalise_host(key: &str) -> String {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = without_scheme
        .split('/')
        .next()
        .unwrap_or(without_scheme)
        .to_ascii_lowercase();
    if DOCKER_HUB_HOSTS.contains(&host.as_str()) {
        "docker.io".to_string()
    } else {
        host
    }
}

/// Helpers key Docker Hub by its legacy URL and other registries by host.
fn helper_server_url(host: &str) -> String {
    if host == "docker.io" {
        DOCKER_HUB_SERVER_URL.to_string()
    } else {
        host.to_string()
    }
}

/// Tokens take precedence over a password, as in the Docker CLI; an entry
/// with nothing usable (Docker Desktop leaves `{}`) means no credentials.
fn entry_credentials(
    key: &str,
    entry: &AuthEntry,
) -> Result<Option<Credentials>, CredentialsError> {
    if !entry.identitytoken.is_empty() {
        return Ok(Some(Credentials::IdentityToken(
            entry.identitytoken.clone(),
        )));
    }
    if !entry.registrytoken.is_empty() {
        return Ok(Some(Credentials::RegistryToken(
            entry.registrytoken.clone(),
        )));
    }
    let (username, password) = if entry.auth.is_empty() {
        (entry.username.clone(), entry.password.clone())
    } else {
        decode_auth(key, &entry.auth)?
    };
    if username.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials::Basic { username, password }))
}

/// Decodes `auth` like the Docker CLI: base64 of `user:password`, with a
/// non-empty user; trailing NULs some tools write are dropped.
fn decode_auth(key: &str, auth: &str) -> Result<(String, String), CredentialsError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|source| CredentialsError::AuthBase64 {
            server: key.to_string(),
            source,
        })?;
    let format_error = || CredentialsError::AuthFormat {
        server: key.to_string(),
    };
    let text = String::from_utf8(bytes).map_err(|_| format_error())?;
    match text.split_once(':') {
        Some((user, password)) if !user.is_empty() => {
            Ok((user.to_string(), password.trim_matches('\0').to_string()))
        }
        _ => Err(format_error()),
    }
}

/// What a helper process produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperOutput {
    /// Exit status as text (`exit status: 1`), `None` on success.
    pub failure: Option<String>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs credential helper programs; injectable so tests need no processes.
pub trait HelperRunner {
    /// Runs `program` with `args`, writing `stdin` to it.
    fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: &[u8],
    ) -> Result<HelperOutput, CredentialsError>;
}

/// Runs helpers as child processes, looked up in an explicit search path
/// so callers (and tests) need not change the process environment.
#[derive(Debug, Clone)]
pub struct ProcessRunner {
    search_path: OsString,
}

impl ProcessRunner {
    /// Searches the current `PATH`.
    pub fn from_env() -> ProcessRunner {
        ProcessRunner::with_search_path(std::env::var_os("PATH").unwrap_or_default())
    }

    /// Searches the given `PATH`-style list of directories.
    pub fn with_search_path(search_path: impl Into<OsString>) -> ProcessRunner {
        ProcessRunner {
            search_path: search_path.into(),
        }
    }

    fn find(&self, program: &str) -> Option<PathBuf> {
        std::env::split_paths(&self.search_path)
            .flat_map(|dir| program_candidates(program).map(move |name| dir.join(name)))
            .find(|path| is_executable(path))
    }
}

impl HelperRunner for ProcessRunner {
    fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: &[u8],
    ) -> Result<HelperOutput, CredentialsError> {
        let path = self
            .find(program)
            .ok_or_else(|| CredentialsError::HelperNotFound {
                program: program.to_string(),
            })?;
        let spawn_error = |source| CredentialsError::HelperSpawn {
            program: program.to_string(),
            source,
        };
        let mut child = Command::new(&path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        if let Some(mut input) = child.stdin.take() {
            // A helper may exit without reading its input; that is not ours
            // to report, its exit status is.
            match input.write_all(stdin) {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(spawn_error(e)),
                _ => {}
            }
        }
        let output = child.wait_with_output().map_err(spawn_error)?;
        Ok(HelperOutput {
            failure: (!output.status.success()).then(|| output.status.to_string()),
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }
}

fn program_candidates(program: &str) -> impl Iterator<Item = OsString> + '_ {
    let exe = cfg!(windows).then(|| OsString::from(format!("{program}.exe")));
    std::iter::once(OsStr::new(program).to_os_string()).chain(exe)
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// The JSON a helper prints for `get`.
#[derive(Deserialize)]
struct HelperCredentials {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

fn run_helper(
    runner: &dyn HelperRunner,
    suffix: &str,
    server_url: &str,
) -> Result<Option<Credentials>, CredentialsError> {
    let program = format!("{HELPER_PREFIX}{suffix}");
    let output = runner.run(&program, &["get"], server_url.as_bytes())?;
    if let Some(status) = output.failure {
        return helper_failure(program, status, &output.stdout, &output.stderr);
    }
    let parsed: HelperCredentials = serde_json::from_slice(&output.stdout)
        .map_err(|source| CredentialsError::HelperOutput { program, source })?;
    Ok(helper_credentials(parsed))
}

/// Helpers report a miss as a failed exit with a fixed message on stdout;
/// anything else is a real failure, described by stderr (or stdout, where
/// docker-credential-helpers writes its errors).
fn helper_failure(
    program: String,
    status: String,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<Option<Credentials>, CredentialsError> {
    let stdout = String::from_utf8_lossy(stdout);
    let stderr = String::from_utf8_lossy(stderr);
    if stdout.contains(NOT_FOUND_MESSAGE) || stderr.contains(NOT_FOUND_MESSAGE) {
        return Ok(None);
    }
    let message = [stderr.trim(), stdout.trim()]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or("no output")
        .to_string();
    Err(CredentialsError::HelperFailed {
        program,
        status,
        message,
    })
}

fn helper_credentials(parsed: HelperCredentials) -> Option<Credentials> {
    if parsed.secret.is_empty() {
        return None;
    }
    if parsed.username == IDENTITY_TOKEN_USERNAME {
        return Some(Credentials::IdentityToken(parsed.secret));
    }
    Some(Credentials::Basic {
        username: parsed.username,
        password: parsed.secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn config(json: &str) -> DockerConfig {
        DockerConfig::from_json(Path::new("config.json"), json).unwrap()
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn basic(user: &str, password: &str) -> Credentials {
        Credentials::Basic {
            username: user.into(),
            password: password.into(),
        }
    }

    /// Records calls and answers with a canned output.
    struct FakeRunner {
        output: HelperOutput,
        calls: RefCell<Vec<(String, Vec<String>, String)>>,
    }

    impl FakeRunner {
        fn new(failure: Option<&str>, stdout: &str, stderr: &str) -> FakeRunner {
            FakeRunner {
                output: HelperOutput {
                    failure: failure.map(str::to_string),
                    stdout: stdout.as_bytes().to_vec(),
                    stderr: stderr.as_bytes().to_vec(),
                },
                calls: RefCell::new(Vec::new()),
            }
        }

        fn ok(stdout: &str) -> FakeRunner {
            FakeRunner::new(None, stdout, "")
        }

        fn calls(&self) -> Vec<(String, Vec<String>, String)> {
            self.calls.borrow().clone()
        }
    }

    impl HelperRunner for FakeRunner {
        fn run(
            &self,
            program: &str,
            args: &[&str],
            stdin: &[u8],
        ) -> Result<HelperOutput, CredentialsError> {
            self.calls.borrow_mut().push((
                program.to_string(),
                args.iter().map(|a| a.to_string()).collect(),
                String::from_utf8_lossy(stdin).into_owned(),
            ));
            Ok(self.output.clone())
        }
    }

    /// A runner that must not be called.
    struct NoRunner;

    impl HelperRunner for NoRunner {
        fn run(
            &self,
            program: &str,
            _: &[&str],
            _: &[u8],
        ) -> Result<HelperOutput, CredentialsError> {
            panic!("unexpected helper call to {program}")
        }
    }

    fn lookup(cfg: &DockerConfig, registry: &str) -> Option<Credentials> {
        cfg.credentials_with(registry, &NoRunner).unwrap()
    }

    /// A fresh directory under the system temp dir, unique per test.
    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tether-credentials-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn auth_field_decodes_to_basic() {
        let cfg = config(&format!(
            r#"{{"auths":{{"ghcr.io":{{"auth":"{}"}}}}}}"#,
            b64("alice:pa:ss")
        ));
        assert_eq!(lookup(&cfg, "ghcr.io"), Some(basic("alice", "pa:ss")));
    }

    #[test]
    fn username_and_password_fields() {
        let cfg = config(r#"{"auths":{"quay.io":{"username":"bob","password":"pw"}}}"#);
        assert_eq!(lookup(&cfg, "quay.io"), Some(basic("bob", "pw")));
    }

    #[test]
    fn tokens_take_precedence() {
        let cfg = config(&format!(
            r#"{{"auths":{{
                "a.io":{{"auth":"{0}","identitytoken":"idt"}},
                "b.io":{{"auth":"{0}","registrytoken":"rt"}}
            }}}}"#,
            b64("u:p")
        ));
        assert_eq!(
            lookup(&cfg, "a.io"),
            Some(Credentials::IdentityToken("idt".into()))
        );
        assert_eq!(
            lookup(&cfg, "b.io"),
            Some(Credentials::RegistryToken("rt".into()))
        );
    }

    #[test]
    fn unknown_registry_and_empty_entry_give_none() {
        let cfg = config(r#"{"auths":{"ghcr.io":{}}}"#);
        assert_eq!(lookup(&cfg, "ghcr.io"), None);
        assert_eq!(lookup(&cfg, "quay.io"), None);
    }

    #[test]
    fn docker_hub_aliases_match_each_other() {
        let keys = [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            "registry-1.docker.io",
        ];
        for key in keys {
            let cfg = config(&format!(
                r#"{{"auths":{{"{key}":{{"auth":"{}"}}}}}}"#,
                b64("hub:pw")
            ));
            for registry in keys {
                assert_eq!(
                    lookup(&cfg, registry),
                    Some(basic("hub", "pw")),
                    "{key} vs {registry}"
                );
            }
        }
    }

    #[test]
    fn url_keys_match_on_host() {
        for key in [
            "https://ghcr.io",
            "https://ghcr.io/v2/",
            "http://ghcr.io/",
            "GHCR.io",
        ] {
            let cfg = config(&format!(
                r#"{{"auths":{{"{key}":{{"auth":"{}"}}}}}}"#,
                b64("u:p")
            ));
            assert_eq!(lookup(&cfg, "ghcr.io"), Some(basic("u", "p")), "{key}");
        }
    }

    #[test]
    fn exact_key_wins_over_url_key() {
        let cfg = config(&format!(
            r#"{{"auths":{{"https://ghcr.io":{{"auth":"{}"}},"ghcr.io":{{"auth":"{}"}}}}}}"#,
            b64("url:1"),
            b64("exact:2")
        ));
        assert_eq!(lookup(&cfg, "ghcr.io"), Some(basic("exact", "2")));
    }

    #[test]
    fn docker_cli_hub_key_wins_over_aliases() {
        let cfg = config(&format!(
            r#"{{"auths":{{"docker.io":{{"auth":"{}"}},"https://index.docker.io/v1/":{{"auth":"{}"}}}}}}"#,
            b64("alias:1"),
            b64("cli:2")
        ));
        assert_eq!(lookup(&cfg, "docker.io"), Some(basic("cli", "2")));
    }

    #[test]
    fn registry_with_port_matches_exactly() {
        let cfg = config(&format!(
            r#"{{"auths":{{"localhost:5000":{{"auth":"{}"}}}}}}"#,
            b64("u:p")
        ));
        assert_eq!(lookup(&cfg, "localhost:5000"), Some(basic("u", "p")));
        assert_eq!(lookup(&cfg, "localhost"), None);
    }

    #[test]
    fn cred_helper_for_host_is_used_first() {
        let cfg = config(&format!(
            r#"{{"credHelpers":{{"ghcr.io":"gh"}},"credsStore":"desktop",
                "auths":{{"ghcr.io":{{"auth":"{}"}}}}}}"#,
            b64("file:pw")
        ));
        let runner = FakeRunner::ok(r#"{"ServerURL":"ghcr.io","Username":"helper","Secret":"s"}"#);
        let creds = cfg.credentials_with("ghcr.io", &runner).unwrap();
        assert_eq!(creds, Some(basic("helper", "s")));
        assert_eq!(
            runner.calls(),
            vec![(
                "docker-credential-gh".into(),
                vec!["get".into()],
                "ghcr.io".into()
            )]
        );
    }

    #[test]
    fn creds_store_used_when_no_host_helper() {
        let cfg = config(r#"{"credHelpers":{"gcr.io":"gcloud"},"credsStore":"desktop"}"#);
        let runner = FakeRunner::ok(r#"{"Username":"<token>","Secret":"refresh"}"#);
        let creds = cfg.credentials_with("docker.io", &runner).unwrap();
        assert_eq!(creds, Some(Credentials::IdentityToken("refresh".into())));
        let calls = runner.calls();
        assert_eq!(calls[0].0, "docker-credential-desktop");
        assert_eq!(calls[0].2, "https://index.docker.io/v1/");
    }

    #[test]
    fn hub_helper_key_matches_alias() {
        let cfg = config(r#"{"credHelpers":{"https://index.docker.io/v1/":"hub"}}"#);
        let runner = FakeRunner::ok(r#"{"Username":"u","Secret":"s"}"#);
        cfg.credentials_with("registry-1.docker.io", &runner)
            .unwrap();
        assert_eq!(runner.calls()[0].0, "docker-credential-hub");
        assert_eq!(runner.calls()[0].2, "https://index.docker.io/v1/");
    }

    #[test]
    fn helper_not_found_message_means_none_without_fallback() {
        let cfg = config(&format!(
            r#"{{"credsStore":"desktop","auths":{{"ghcr.io":{{"auth":"{}"}}}}}}"#,
            b64("file:pw")
        ));
        let runner = FakeRunner::new(
            Some("exit status: 1"),
            "credentials not found in native keychain\n",
            "",
        );
        assert_eq!(cfg.credentials_with("ghcr.io", &runner).unwrap(), None);
    }

    #[test]
    fn helper_failure_reports_program_and_stderr() {
        let cfg = config(r#"{"credsStore":"pass"}"#);
        let runner = FakeRunner::new(Some("exit status: 2"), "", "gpg: decryption failed\n");
        let err = cfg.credentials_with("ghcr.io", &runner).unwrap_err();
        assert_eq!(
            err.to_string(),
            "credential helper docker-credential-pass failed (exit status: 2): gpg: decryption failed"
        );
    }

    #[test]
    fn helper_failure_falls_back_to_stdout_message() {
        let cfg = config(r#"{"credsStore":"pass"}"#);
        let runner = FakeRunner::new(Some("exit status: 1"), "error getting credentials\n", "");
        let err = cfg.credentials_with("ghcr.io", &runner).unwrap_err();
        assert!(
            err.to_string().ends_with(": error getting credentials"),
            "{err}"
        );
    }

    #[test]
    fn helper_invalid_json_is_an_error_with_source() {
        let cfg = config(r#"{"credsStore":"x"}"#);
        let err = cfg
            .credentials_with("ghcr.io", &FakeRunner::ok("not json"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "credential helper docker-credential-x printed invalid JSON"
        );
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn helper_empty_secret_is_none() {
        let cfg = config(r#"{"credsStore":"x"}"#);
        let runner = FakeRunner::ok(r#"{"ServerURL":"","Username":"","Secret":""}"#);
        assert_eq!(cfg.credentials_with("ghcr.io", &runner).unwrap(), None);
    }

    #[test]
    fn empty_helper_names_are_ignored() {
        let cfg = config(&format!(
            r#"{{"credsStore":"","credHelpers":{{"ghcr.io":""}},"auths":{{"ghcr.io":{{"auth":"{}"}}}}}}"#,
            b64("u:p")
        ));
        assert_eq!(lookup(&cfg, "ghcr.io"), Some(basic("u", "p")));
    }

    #[test]
    fn bad_auth_values_are_errors() {
        let cfg = config(r#"{"auths":{"a.io":{"auth":"%%%"}}}"#);
        let err = cfg.credentials_with("a.io", &NoRunner).unwrap_err();
        assert_eq!(
            err.to_string(),
            "auths entry \"a.io\": \"auth\" is not valid base64"
        );
        assert!(std::error::Error::source(&err).is_some());

        let cfg = config(&format!(
            r#"{{"auths":{{"a.io":{{"auth":"{}"}}}}}}"#,
            b64("nocolon")
        ));
        let err = cfg.credentials_with("a.io", &NoRunner).unwrap_err();
        assert_eq!(
            err.to_string(),
            "auths entry \"a.io\": \"auth\" must decode to \"username:password\""
        );
    }

    #[test]
    fn trailing_nuls_are_trimmed_from_password() {
        let cfg = config(&format!(
            r#"{{"auths":{{"a.io":{{"auth":"{}"}}}}}}"#,
            b64("u:p\0\0")
        ));
        assert_eq!(lookup(&cfg, "a.io"), Some(basic("u", "p")));
    }

    #[test]
    fn nulls_and_other_keys_are_accepted() {
        let cfg = config(r#"{"auths":null,"credHelpers":null,"credsStore":null,"psFormat":"x"}"#);
        assert_eq!(cfg, DockerConfig::default());
        assert_eq!(config("  \n"), DockerConfig::default());
    }

    #[test]
    fn debug_redacts_secrets() {
        let shown = format!(
            "{:?} {:?} {:?}",
            basic("alice", "hunter2"),
            Credentials::IdentityToken("tok1".into()),
            Credentials::RegistryToken("tok2".into())
        );
        assert_eq!(
            shown,
            "Basic { username: \"alice\", password: <redacted> } \
             IdentityToken(<redacted>) RegistryToken(<redacted>)"
        );
        let cfg = config(&format!(
            r#"{{"auths":{{"a.io":{{"auth":"{}","password":"hunter2","identitytoken":"tok1"}}}}}}"#,
            b64("alice:hunter2")
        ));
        let debug = format!("{cfg:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("tok1"),
            "{debug}"
        );
        assert!(!debug.contains(&b64("alice:hunter2")), "{debug}");
    }

    #[test]
    fn default_config_dir_prefers_docker_config() {
        assert_eq!(
            default_config_dir(Some("/cfg".into()), Some("/home/u".into())),
            Some(PathBuf::from("/cfg"))
        );
        assert_eq!(
            default_config_dir(Some("".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.docker"))
        );
        assert_eq!(default_config_dir(None, None), None);
    }

    #[test]
    fn load_missing_file_is_none() {
        let dir = temp_dir("missing");
        assert_eq!(DockerConfig::load(Some(&dir)).unwrap(), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn load_reads_config_json() {
        let dir = temp_dir("load");
        let json = format!(r#"{{"auths":{{"ghcr.io":{{"auth":"{}"}}}}}}"#, b64("u:p"));
        std::fs::write(dir.join("config.json"), json).unwrap();
        let cfg = DockerConfig::load(Some(&dir)).unwrap().unwrap();
        assert_eq!(lookup(&cfg, "ghcr.io"), Some(basic("u", "p")));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn load_bad_json_names_file_line_and_column() {
        let dir = temp_dir("badjson");
        let path = dir.join("config.json");
        std::fs::write(&path, "{\n  \"auths\": {\n    \"a\": 1\n  }\n}\n").unwrap();
        let err = DockerConfig::load(Some(&dir)).unwrap_err();
        assert!(
            matches!(
                err,
                CredentialsError::Parse {
                    line: 3,
                    column: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("{}:3:10: invalid Docker config JSON", path.display())
        );
        assert!(std::error::Error::source(&err).is_some());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn load_unreadable_path_is_error() {
        let dir = temp_dir("unreadable");
        std::fs::create_dir(dir.join("config.json")).unwrap();
        let err = DockerConfig::load(Some(&dir)).unwrap_err();
        assert!(matches!(err, CredentialsError::Read { .. }), "{err:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// All real-process cases live in one test so that no other test thread
    /// forks while a freshly written script is still open for writing.
    #[cfg(unix)]
    #[test]
    fn real_helper_script_on_explicit_path() {
        use std::os::unix::fs::PermissionsExt;

        let dir = temp_dir("helper");
        let script = dir.join("docker-credential-fake");
        std::fs::write(
            &script,
            r#"#!/bin/sh
[ "$1" = get ] || { echo "bad args: $*" >&2; exit 9; }
read -r server
case "$server" in
  ghcr.io) printf '{"ServerURL":"ghcr.io","Username":"alice","Secret":"s3cret"}\n' ;;
  https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"<token>","Secret":"idtok"}\n' "$server" ;;
  missing.example) echo "credentials not found in native keychain"; exit 1 ;;
  *) echo "boom: $server" >&2; exit 3 ;;
esac
"#,
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

        let search_path = std::env::join_paths([Path::new("/nonexistent"), &dir]).unwrap();
        let runner = ProcessRunner::with_search_path(search_path);
        let cfg = config(r#"{"credsStore":"fake","credHelpers":{"other.io":"absent"}}"#);

        assert_eq!(
            cfg.credentials_with("ghcr.io", &runner).unwrap(),
            Some(basic("alice", "s3cret"))
        );
        assert_eq!(
            cfg.credentials_with("docker.io", &runner).unwrap(),
            Some(Credentials::IdentityToken("idtok".into()))
        );
        assert_eq!(
            cfg.credentials_with("missing.example", &runner).unwrap(),
            None
        );

        let err = cfg.credentials_with("quay.io", &runner).unwrap_err();
        assert_eq!(
            err.to_string(),
            "credential helper docker-credential-fake failed (exit status: 3): boom: quay.io"
        );

        let err = cfg.credentials_with("other.io", &runner).unwrap_err();
        assert_eq!(
            err.to_string(),
            "credential helper docker-credential-absent not found in PATH"
        );

        std::fs::remove_dir_all(dir).unwrap();
    }
}
