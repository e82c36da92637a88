//! The joins' processors: each side of a stream-stream join (Kafka's
//! `KStreamKStreamJoinLeftSide`/`RightSide` with the outer-join buffer of KIP-633), the
//! stream-table lookup (Kafka's `KStreamKTableJoinProcessor`, also behind the
//! stream-global-table join), and each side of a table-table join (Kafka's
//! `KTableKTableInnerJoin`, `LeftJoin`, `RightJoin` and `OuterJoin`).
//!
//! Invariants: a stream-stream join's result has the larger of the two records' timestamps,
//! an unmatched record's result its own; a left/outer result is emitted only once the join's
//! stream time (the largest timestamp either side has seen) has passed the record's window
//! end plus grace, so a record that finds a partner later never yields a spurious
//! `[A, null]`; a stream-table or table-table result is computed from the other side's
//! store as it is when the record arrives.

use std::marker::PhantomData;
use std::sync::Arc;

use super::join_windows::JoinWindows;
use super::processors::DslStore;
use super::Change;
use crate::error::Result;
use crate::streams::join_store::{JoinSide, JoinWindowStore, LeftOrRight, OuterJoinStore};
use crate::streams::processor::{Processor, ProcessorContext, Record};
use crate::streams::state::ReadOnlyKeyValueStore;

/// A joiner in left-right order: the key, the left value and the right value, either
/// missing for an unmatched record of a left or outer join; `None` when the join's kind has
/// no result for a missing side (an inner joiner given one value), so nothing is forwarded.
pub(crate) type Joiner<K, VL, VR, VO> =
    Arc<dyn Fn(&K, Option<&VL>, Option<&VR>) -> Option<VO> + Send + Sync>;

/// Maps a stream record to the key of the table row it joins.
pub(crate) type KeySelector<K, V, KT> = Arc<dyn Fn(&K, &V) -> KT + Send + Sync>;

/// A stream-table joiner: the stream record's key and value and the row, if any; `None` when
/// the join has no result (an inner join without a row).
pub(crate) type RowJoiner<K, V, VT, VO> =
    Arc<dyn Fn(&K, &V, Option<&VT>) -> Option<VO> + Send + Sync>;

/// A table-table joiner in one side's order: this side's value, then the other side's.
pub(crate) type TableJoiner<K, VT, VO, VR> =
    Arc<dyn Fn(&K, Option<&VT>, Option<&VO>) -> Option<VR> + Send + Sync>;

/// The stream time and the oldest buffered timestamp both sides of a stream-stream join
/// share (Kafka's `TimeTracker`), kept beside the outer-join buffer.
pub(crate) struct OuterShared<K, VL, VR> {
    pub(crate) store: OuterJoinStore<K, VL, VR>,
    stream_time: i64,
    min_time: i64,
}

impl<K: Ord + Clone, VL: Clone, VR: Clone> OuterShared<K, VL, VR> {
    pub(crate) fn new() -> Self {
        OuterShared {
            store: OuterJoinStore::new(),
            stream_time: i64::MIN,
            min_time: i64::MAX,
        }
    }

    /// Set or remove an entry read from the changelog; a restored entry counts as buffered,
    /// so the next scan for closed windows visits it.
    pub(crate) fn restore(
        &mut self,
        key: (i64, JoinSide, K),
        values: Option<Vec<LeftOrRight<VL, VR>>>,
    ) {
        if values.is_some() {
            self.min_time = self.min_time.min(key.0);
        }
        self.store.restore(key, values);
    }
}

/// Which side of a stream-stream join a processor runs: its value types and how its values
/// meet the left-right joiner.
pub(crate) trait Orient<VL, VR> {
    /// This side's values.
    type This;
    /// The other side's values.
    type Other;
    /// This side.
    const SIDE: JoinSide;
    /// Call the joiner with this side's and the other side's value in left-right order.
    fn join<K, VO>(
        joiner: &Joiner<K, VL, VR, VO>,
        key: &K,
        this: Option<&Self::This>,
        other: Option<&Self::Other>,
    ) -> Option<VO>;
    /// This side's value as a buffered unmatched record.
    fn wrap(value: Self::This) -> LeftOrRight<VL, VR>;
}

/// The left side (the stream `join` was called on).
pub(crate) struct LeftSide;
/// The right side (`join`'s argument).
pub(crate) struct RightSide;

impl<VL, VR> Orient<VL, VR> for LeftSide {
    type This = VL;
    type Other = VR;
    const SIDE: JoinSide = JoinSide::Left;
    fn join<K, VO>(
        j: &Joiner<K, VL, VR, VO>,
        k: &K,
        this: Option<&VL>,
        other: Option<&VR>,
    ) -> Option<VO> {
        j(k, this, other)
    }
    fn wrap(value: VL) -> LeftOrRight<VL, VR> {
        LeftOrRight::Left(value)
    }
}

impl<VL, VR> Orient<VL, VR> for RightSide {
    type This = VR;
    type Other = VL;
    const SIDE: JoinSide = JoinSide::Right;
    fn join<K, VO>(
        j: &Joiner<K, VL, VR, VO>,
        k: &K,
        this: Option<&VR>,
        other: Option<&VL>,
    ) -> Option<VO> {
        j(k, other, this)
    }
    fn wrap(value: VR) -> LeftOrRight<VL, VR> {
        LeftOrRight::Right(value)
    }
}

/// One side of a stream-stream join.
pub(crate) struct StreamJoinSide<K, VL, VR, VO, O> {
    /// This side's window store (what the other side joins against).
    pub(crate) this_store: String,
    /// The other side's window store.
    pub(crate) other_store: String,
    /// The shared outer-join buffer, for left and outer joins.
    pub(crate) outer_store: Option<String>,
    /// Whether an unmatched record of this side yields a result (left side of a left join,
    /// both sides of an outer join).
    pub(crate) outer: bool,
    pub(crate) windows: JoinWindows,
    pub(crate) joiner: Joiner<K, VL, VR, VO>,
    pub(crate) _side: PhantomData<fn() -> O>,
}

impl<K, VL, VR, VO, O> StreamJoinSide<K, VL, VR, VO, O>
where
    O: Orient<VL, VR>,
{
    /// How far back and forward this side looks (the right side mirrors the windows).
    fn bounds(&self) -> (i64, i64) {
        match O::SIDE {
            JoinSide::Left => (self.windows.before_ms(), self.windows.after_ms()),
            JoinSide::Right => (self.windows.after_ms(), self.windows.before_ms()),
        }
    }
}

impl<K, VL, VR, VO, O> Processor<K, O::This, K, VO> for StreamJoinSide<K, VL, VR, VO, O>
where
    K: Ord + Clone + 'static,
    VL: Clone + 'static,
    VR: Clone + 'static,
    VO: Clone + 'static,
    O: Orient<VL, VR>,
    O::This: Clone + 'static,
    O::Other: Clone + 'static,
{
    fn process(
        &mut self,
        record: Record<K, O::This>,
        context: &mut ProcessorContext<'_, K, VO>,
    ) -> Result<()> {
        let ts = record.timestamp;
        let (join_before, join_after) = self.bounds();
        let mut stream_time = ts;
        if let Some(outer) = &self.outer_store {
            let shared = context.state_store::<OuterShared<K, VL, VR>>(outer)?;
            shared.stream_time = shared.stream_time.max(ts);
            stream_time = shared.stream_time;
            if ts == stream_time {
                self.emit_closed(&record, join_after, context)?;
            }
        }
        let from = ts.saturating_sub(join_before).max(0);
        let to = ts.saturating_add(join_after).max(0);
        let others = context
            .state_store::<JoinWindowStore<K, O::Other>>(&self.other_store)?
            .fetch(&record.key, from, to)?;
        let unmatched = others.is_empty();
        for (other_ts, other) in others {
            if let Some(outer) = &self.outer_store {
                let other_side = match O::SIDE {
                    JoinSide::Left => JoinSide::Right,
                    JoinSide::Right => JoinSide::Left,
                };
                context
                    .state_store::<OuterShared<K, VL, VR>>(outer)?
                    .store
                    .remove(record.key.clone(), other_side, other_ts);
            }
            let Some(value) = O::join(&self.joiner, &record.key, Some(&record.value), Some(&other))
            else {
                continue;
            };
            context.forward(Record {
                key: record.key.clone(),
                value,
                timestamp: ts.max(other_ts),
                headers: record.headers.clone(),
            })?;
        }
        if self.outer && unmatched {
            match &self.outer_store {
                // Already past its window (out of order): no partner can come any more.
                Some(outer) if to >= stream_time => {
                    let shared = context.state_store::<OuterShared<K, VL, VR>>(outer)?;
                    shared.min_time = shared.min_time.min(ts);
                    shared.store.put(
                        record.key.clone(),
                        O::SIDE,
                        ts,
                        O::wrap(record.value.clone()),
                    );
                }
                _ => {
                    if let Some(value) =
                        O::join(&self.joiner, &record.key, Some(&record.value), None)
                    {
                        context.forward(Record {
                            key: record.key.clone(),
                            value,
                            timestamp: ts,
                            headers: record.headers.clone(),
                        })?;
                    }
                }
            }
        }
        // Kafka's join-window node stores the record after the join has seen it.
        let Record { key, value, .. } = record;
        context
            .state_store::<JoinWindowStore<K, O::This>>(&self.this_store)?
            .put(key, value, ts)
    }
}

impl<K, VL, VR, VO, O> StreamJoinSide<K, VL, VR, VO, O>
where
    K: Ord + Clone + 'static,
    VL: Clone + 'static,
    VR: Clone + 'static,
    VO: Clone + 'static,
    O: Orient<VL, VR>,
{
    /// Emit the buffered unmatched records whose windows have closed, oldest first, and
    /// forget them (Kafka's `emitNonJoinedOuterRecords`, with an emit interval of 0).
    fn emit_closed<VT>(
        &self,
        record: &Record<K, VT>,
        join_after: i64,
        context: &mut ProcessorContext<'_, K, VO>,
    ) -> Result<()> {
        let Some(outer) = &self.outer_store else {
            return Ok(());
        };
        let grace = self.windows.grace_ms();
        let shared = context.state_store::<OuterShared<K, VL, VR>>(outer)?;
        let stream_time = shared.stream_time;
        if shared
            .min_time
            .saturating_add(join_after)
            .saturating_add(grace)
            >= stream_time
        {
            return Ok(());
        }
        let windows = self.windows;
        let (emit, last_visited) = shared.store.take_closed(|ts, side| {
            let look_back = match side {
                JoinSide::Left => windows.after_ms(),
                JoinSide::Right => windows.before_ms(),
            };
            ts.saturating_add(look_back).saturating_add(grace) >= stream_time
        });
        shared.min_time = last_visited;
        for ((ts, _, key), values) in emit {
            for value in values {
                let out = match &value {
                    LeftOrRight::Left(l) => (self.joiner)(&key, Some(l), None),
                    LeftOrRight::Right(r) => (self.joiner)(&key, None, Some(r)),
                };
                let Some(out) = out else { continue };
                context.forward(Record {
                    key: key.clone(),
                    value: out,
                    timestamp: ts,
                    headers: record.headers.clone(),
                })?;
            }
        }
        Ok(())
    }
}

/// A stream-table or stream-global-table join (Kafka's `KStreamKTableJoinProcessor`): each
/// stream record looks up the table's row of the key `key_of` maps it to; an inner join
/// forwards only when the row exists, a left join always (the row missing as `None`), at the
/// stream record's timestamp. Table updates produce nothing.
pub(crate) struct StreamTableJoin<K, V, KT, VT, VO> {
    pub(crate) table_store: String,
    pub(crate) left: bool,
    pub(crate) key_of: KeySelector<K, V, KT>,
    pub(crate) joiner: RowJoiner<K, V, VT, VO>,
}

impl<K, V, KT, VT, VO> Processor<K, V, K, VO> for StreamTableJoin<K, V, KT, VT, VO>
where
    K: Clone + 'static,
    KT: Ord + Clone + 'static,
    VT: Clone + 'static,
    VO: Clone + 'static,
{
    fn process(
        &mut self,
        record: Record<K, V>,
        context: &mut ProcessorContext<'_, K, VO>,
    ) -> Result<()> {
        let table_key = (self.key_of)(&record.key, &record.value);
        let row = context
            .state_store::<DslStore<KT, VT>>(&self.table_store)?
            .get(&table_key)?;
        if row.is_none() && !self.left {
            return Ok(());
        }
        match (self.joiner)(&record.key, &record.value, row.as_ref().map(|r| &r.value)) {
            Some(value) => context.forward(record.with_value(value)),
            None => Ok(()),
        }
    }
}

/// What a table-table join processor does with an update of its side (Kafka's four
/// `KTableKTable*Join` processors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TableJoinKind {
    /// Both rows must exist (`KTableKTableInnerJoin`, both sides of an inner join).
    Inner,
    /// This side's row joins the other's or nothing (`KTableKTableLeftJoin`, the left side
    /// of a left join).
    Left,
    /// The other side's row must exist; this side's may be gone (`KTableKTableRightJoin`, the
    /// right side of a left join).
    RightOfLeft,
    /// Either row may be missing (`KTableKTableOuterJoin`, both sides of an outer join).
    Outer,
}

/// One side of a table-table join: an update of this side's row joins the other side's
/// current row (read from its store) and is forwarded as the result's change (`None` for a
/// deletion), at the larger of the two rows' timestamps; the old result is the old row
/// joined with the other's current row (Kafka's `sendOldValues`).
pub(crate) struct TableJoinSide<K, VT, VO, VR> {
    pub(crate) other_store: String,
    pub(crate) kind: TableJoinKind,
    /// The joiner in this side's order: this side's value, then the other's.
    pub(crate) joiner: TableJoiner<K, VT, VO, VR>,
}

impl<K, VT, VO, VR> TableJoinSide<K, VT, VO, VR> {
    /// The result of this side's value `this` (new or old) with the other's row `other`.
    fn result(&self, key: &K, this: Option<&VT>, other: Option<&VO>) -> Option<VR> {
        match self.kind {
            TableJoinKind::Inner | TableJoinKind::Left => {
                this.and_then(|v| (self.joiner)(key, Some(v), other))
            }
            TableJoinKind::RightOfLeft => (self.joiner)(key, this, other),
            TableJoinKind::Outer if this.is_none() && other.is_none() => None,
            TableJoinKind::Outer => (self.joiner)(key, this, other),
        }
    }
}

impl<K, VT, VO, VR> Processor<K, Change<VT>, K, Change<VR>> for TableJoinSide<K, VT, VO, VR>
where
    K: Ord + Clone + 'static,
    VT: Clone + 'static,
    VO: Clone + 'static,
    VR: Clone + 'static,
{
    fn process(
        &mut self,
        record: Record<K, Change<VT>>,
        context: &mut ProcessorContext<'_, K, Change<VR>>,
    ) -> Result<()> {
        let other = context
            .state_store::<DslStore<K, VO>>(&self.other_store)?
            .get(&record.key)?;
        let timestamp = match (&other, self.kind) {
            (None, TableJoinKind::Inner | TableJoinKind::RightOfLeft) => return Ok(()),
            (None, _) => {
                if record.value.new.is_none() && record.value.old.is_none() {
                    return Ok(());
                }
                record.timestamp
            }
            (Some(o), _) => record.timestamp.max(o.timestamp),
        };
        let other = other.map(|o| o.value);
        let new = self.result(&record.key, record.value.new.as_ref(), other.as_ref());
        let old = self.result(&record.key, record.value.old.as_ref(), other.as_ref());
        let Record { key, headers, .. } = record;
        context.forward(Record {
            key,
            value: Change { new, old },
            timestamp,
            headers,
        })
    }
}
