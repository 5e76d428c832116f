//! Client errors in words, said once (and again every so often) rather than
//! on every retry: librdkafka reconnects and retries by itself, and a broker
//! that restarts is not news forty times a minute.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// How many repeats of the same trouble go unsaid before it is said again.
const SAY_AGAIN_AFTER: u32 = 30;

/// What `error` means for a client of `topic`, in words.
pub fn describe(error: &KafkaError, topic: &str) -> String {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            format!(
                "topic {topic} does not exist (the `topics` Job makes it; a new broker pod starts empty)"
            )
        }
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::Resolve
            | RDKafkaErrorCode::MessageTimedOut,
        ) => "the broker is not answering".to_owned(),
        _ => error.to_string(),
    }
}

/// The last trouble said, to tell news from repeats.
#[derive(Debug, Default)]
pub struct Trouble {
    last: Option<String>,
    unsaid: u32,
}

impl Trouble {
    /// Whether `what` should be said now: it differs from the last trouble,
    /// or the same one has gone unsaid for a while.
    pub fn news(&mut self, what: &str) -> bool {
        if self.last.as_deref() == Some(what) && self.unsaid < SAY_AGAIN_AFTER {
            self.unsaid += 1;
            return false;
        }
        self.last = Some(what.to_owned());
        self.unsaid = 0;
        true
    }

    /// Things work again; true when there was trouble to say is over.
    pub fn over(&mut self) -> bool {
        self.unsaid = 0;
        self.last.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_trouble_is_said_once_then_every_so_often() {
        let mut trouble = Trouble::default();
        assert!(trouble.news("down"));
        // Each round: SAY_AGAIN_AFTER repeats unsaid, then said again.
        let rounds = 2;
        let said = (0..(SAY_AGAIN_AFTER + 1) * rounds)
            .filter(|_| trouble.news("down"))
            .count();
        assert_eq!(said, rounds as usize);
    }

    #[test]
    fn new_trouble_is_said_at_once() {
        let mut trouble = Trouble::default();
        assert!(trouble.news("down"));
        assert!(trouble.news("gone"));
    }

    #[test]
    fn after_recovery_the_same_trouble_is_news_again() {
        let mut trouble = Trouble::default();
        assert!(!trouble.over());
        assert!(trouble.news("down"));
        assert!(trouble.over());
        assert!(trouble.news("down"));
    }

    #[test]
    fn connection_errors_of_every_kind_read_the_same() {
        let errors = [
            RDKafkaErrorCode::Resolve,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::BrokerTransportFailure,
        ];
        for code in errors {
            assert_eq!(
                describe(&KafkaError::MessageConsumption(code), "t"),
                "the broker is not answering"
            );
        }
        assert!(
            describe(
                &KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopic),
                "t"
            )
            .starts_with("topic t does not exist")
        );
    }
}
