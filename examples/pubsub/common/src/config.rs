//! Settings from environment variables, each with a default that suits the
//! cluster, so a pod needs to set only what differs.

use std::{str::FromStr, time::Duration};

/// Where clients bootstrap: the broker pod's name, which pods resolve through
/// their search path and a laptop through tether's DNS.
pub const DEFAULT_BOOTSTRAP: &str = "kafka-0.kafka.pubsub:9092";

/// A variable that is set but cannot be used: better to stop at start-up than
/// to run with a value nobody asked for.
#[derive(Debug, thiserror::Error)]
#[error("{name}={value:?} is not {expected}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub expected: &'static str,
}

/// `KAFKA_BOOTSTRAP`, the broker list clients start from.
pub fn bootstrap() -> String {
    text("KAFKA_BOOTSTRAP").unwrap_or_else(|| DEFAULT_BOOTSTRAP.to_owned())
}

/// `POD_NAME` (the downward API sets it), else the host name, else `local`:
/// it names the patient in its orders and the worker in its deliveries.
pub fn pod_name() -> String {
    text("POD_NAME")
        .or_else(|| text("HOSTNAME"))
        .unwrap_or_else(|| "local".to_owned())
}

/// A duration given in milliseconds by the variable `name`, or `default_ms`.
pub fn millis(name: &str, default_ms: u64) -> Result<Duration, ConfigError> {
    parse(name, text(name), default_ms, "a number of milliseconds").map(Duration::from_millis)
}

/// `raw` parsed as a `T`, or `default` when the variable is unset or empty.
fn parse<T: FromStr>(
    name: &str,
    raw: Option<String>,
    default: T,
    expected: &'static str,
) -> Result<T, ConfigError> {
    match raw {
        None => Ok(default),
        Some(value) => value.trim().parse().map_err(|_| ConfigError {
            name: name.to_owned(),
            value,
            expected,
        }),
    }
}

/// The variable's value, with unset and empty alike treated as absent.
fn text(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_variable_takes_the_default() {
        assert_eq!(parse::<u64>("X", None, 200, "n").unwrap(), 200);
    }

    #[test]
    fn a_set_variable_is_parsed_with_spaces_around_it() {
        assert_eq!(
            parse::<u64>("X", Some(" 50 ".into()), 200, "n").unwrap(),
            50
        );
    }

    #[test]
    fn a_bad_value_is_reported_with_its_name() {
        let err = parse::<u64>(
            "WORK_MS",
            Some("fast".into()),
            20,
            "a number of milliseconds",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "WORK_MS=\"fast\" is not a number of milliseconds"
        );
    }
}
