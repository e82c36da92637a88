//! [`ConsumerGroupMetadata`]: what a transactional producer sends with the offsets it commits
//! in a transaction, so the group coordinator can refuse them from a consumer that is no
//! longer a member of the generation (KIP-447; Kafka's `ConsumerGroupMetadata`).

/// A consumer's group, generation and member id, from
/// [`Consumer::group_metadata`](crate::Consumer::group_metadata), for
/// [`Producer::send_offsets_to_transaction`](crate::Producer::send_offsets_to_transaction).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConsumerGroupMetadata {
    /// The group id.
    pub group_id: String,
    /// The generation of the consumer's assignment; -1 without one (no group membership).
    pub generation_id: i32,
    /// The consumer's member id; empty without one.
    pub member_id: String,
    /// The consumer's `group.instance.id`, if static.
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// Metadata of a group with no membership check (generation -1, no member id): what a
    /// producer sends for a consumer that uses `assign` rather than a group subscription.
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }

    /// `Some((member id, generation))` when the metadata names a member (KIP-447: the
    /// coordinator checks it then); `None` for [`ConsumerGroupMetadata::new`].
    pub(crate) fn member(&self) -> Option<(&str, i32)> {
        (!self.member_id.is_empty() || self.generation_id >= 0)
            .then_some((self.member_id.as_str(), self.generation_id))
    }
}
