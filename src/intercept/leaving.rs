//! Whether this laptop is the last one out: before a personal intercept ends it asks
//! every replica's agent who is attached (an Open of [`LAPTOPS_TARGET`] on its session),
//! and only when no other laptop is attached anywhere does it restore the Service and
//! the Deployment. Otherwise it only detaches: the agent keeps routing the others.

use std::time::Duration;

use tokio::io::AsyncReadExt as _;

use crate::tunnel::{Filter, LAPTOPS_TARGET, LaptopInfo, Opener};

/// How long an agent may take to say who is attached.
const ASK_LIMIT: Duration = Duration::from_secs(2);

/// One agent's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Laptops(Vec<LaptopInfo>),
    /// No answer that parses: an agent from before this question, or one that is going.
    Unknown(String),
}

/// What the leaving laptop does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody else is attached: put everything back.
    Restore,
    /// These laptops (user@host and what they route) are still attached: detach only.
    Stay { others: Vec<String> },
}

/// Decides from every agent's answer, `me` being this laptop's name and filter. An agent
/// that cannot say (`Unknown`) holds one laptop at a time, this one, so it does not keep
/// the intercept alive: with no other laptop named anywhere, restore.
pub fn decide(me: (&str, &Filter), answers: &[Answer]) -> Decision {
    let mut others: Vec<String> = answers
        .iter()
        .filter_map(|a| match a {
            Answer::Laptops(l) => Some(l),
            Answer::Unknown(_) => None,
        })
        .flatten()
        .filter(|l| !(l.name == me.0 && &l.filter == me.1))
        .map(describe)
        .collect();
    others.sort();
    others.dedup();
    if others.is_empty() {
        Decision::Restore
    } else {
        Decision::Stay { others }
    }
}

fn describe(l: &LaptopInfo) -> String {
    if l.filter.is_all() {
        format!("{} (all traffic)", l.name)
    } else {
        let hs: Vec<String> = l
            .filter
            .headers
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{} ({})", l.name, hs.join(", "))
    }
}

/// Asks each agent (through its session's opener) who is attached, all at once.
pub async fn ask(openers: Vec<Opener>) -> Vec<Answer> {
    futures::future::join_all(openers.into_iter().map(ask_one)).await
}

async fn ask_one(opener: Opener) -> Answer {
    let mut stream = match opener.open(LAPTOPS_TARGET) {
        Ok(s) => s,
        Err(e) => return Answer::Unknown(e.to_string()),
    };
    let mut body = Vec::new();
    match tokio::time::timeout(ASK_LIMIT, stream.read_to_end(&mut body)).await {
        Err(_) => return Answer::Unknown("no answer in time".into()),
        Ok(Err(e)) => return Answer::Unknown(e.to_string()),
        Ok(Ok(_)) => {}
    }
    match serde_json::from_slice(&body) {
        Ok(laptops) => Answer::Laptops(laptops),
        Err(e) => Answer::Unknown(format!("not a list of laptops: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn laptop(name: &str, header: Option<&str>) -> LaptopInfo {
        LaptopInfo {
            name: name.into(),
            filter: Filter {
                headers: header
                    .map(|v| vec![("x-dev".to_owned(), v.to_owned())])
                    .unwrap_or_default(),
            },
            attached_ms: 10,
        }
    }

    #[test]
    fn alice_leaving_while_bob_is_attached_only_detaches() {
        let alice = laptop("dev@box pid 1", Some("alice"));
        let bob = laptop("dev@box pid 2", Some("bob"));
        // Two replicas; bob is attached to both, alice too.
        let answers = [
            Answer::Laptops(vec![alice.clone(), bob.clone()]),
            Answer::Laptops(vec![bob.clone(), alice.clone()]),
        ];
        assert_eq!(
            decide((&alice.name, &alice.filter), &answers),
            Decision::Stay {
                others: vec!["dev@box pid 2 (x-dev=bob)".into()]
            }
        );
        // Bob leaving after alice went: the last one out restores.
        let answers = [
            Answer::Laptops(vec![bob.clone()]),
            Answer::Laptops(vec![bob.clone()]),
        ];
        assert_eq!(
            decide((&bob.name, &bob.filter), &answers),
            Decision::Restore
        );
    }

    #[test]
    fn another_laptop_on_one_replica_only_is_enough_to_stay() {
        let me = laptop("dev@box pid 1", Some("alice"));
        let other = laptop("ci@runner pid 9", None);
        let answers = [
            Answer::Laptops(vec![me.clone()]),
            Answer::Unknown("no answer in time".into()),
            Answer::Laptops(vec![me.clone(), other]),
        ];
        assert_eq!(
            decide((&me.name, &me.filter), &answers),
            Decision::Stay {
                others: vec!["ci@runner pid 9 (all traffic)".into()]
            }
        );
    }

    #[test]
    fn agents_that_cannot_say_or_no_agents_at_all_mean_restore() {
        let me = laptop("dev@box pid 1", None);
        assert_eq!(decide((&me.name, &me.filter), &[]), Decision::Restore);
        let answers = [
            Answer::Unknown("reset".into()),
            Answer::Laptops(vec![]),
            Answer::Laptops(vec![me.clone()]),
        ];
        assert_eq!(decide((&me.name, &me.filter), &answers), Decision::Restore);
        // The same user@host with another filter is someone else.
        let same_host = laptop("dev@box pid 1", Some("bob"));
        assert!(matches!(
            decide((&me.name, &me.filter), &[Answer::Laptops(vec![same_host])]),
            Decision::Stay { .. }
        ));
    }
}
