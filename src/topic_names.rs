//! The one copy of each topic name that records and metadata hand out as `&'static str`.
//!
//! [`ConsumerRecord::topic`](crate::ConsumerRecord) and
//! [`RecordMetadata::topic`](crate::RecordMetadata) are interned names: a record or a send's
//! result then carries its topic without an allocation or a reference count. Invariant: a name
//! is interned when a partition is assigned or a producer looks its topic up, never per record;
//! each distinct name is kept for the life of the process (a few bytes per topic ever used).

use std::collections::HashSet;
use std::sync::OnceLock;

use parking_lot::Mutex;

/// The one copy of the topic name `name`.
pub(crate) fn intern_topic(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(|| Mutex::new(HashSet::new())).lock();
    if let Some(&interned) = names.get(name) {
        return interned;
    }
    let interned: &'static str = Box::leak(name.into());
    names.insert(interned);
    interned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_interned_once() {
        let a = intern_topic("interned-topic");
        let b = intern_topic(&String::from("interned-topic"));
        assert!(std::ptr::eq(a, b));
        assert_ne!(intern_topic("another-topic"), a);
    }
}
