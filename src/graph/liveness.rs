//! Buffer sharing from value lifetimes. Each value lives from the first task that writes it to
//! the last task that reads it; two values may share a buffer when their lifetimes do not
//! overlap and they have the same size. A value that ends at task t never shares with one
//! that starts at t: a dispatch must not read and write the same buffer.

use std::collections::{BTreeMap, HashMap};

use crate::graph::ops::{Uses, Value};

/// For each value, the index of the shared buffer it gets; and the buffers' sizes.
pub(crate) struct Assignment {
    pub slot_of: HashMap<Value, usize>,
    pub slot_len: Vec<usize>,
}

/// `tasks` in execution order; `len` gives each value's element count; `pinned` values live
/// for the whole plan (inputs the host writes, outputs the host reads).
pub(crate) fn assign(tasks: &[Uses], len: impl Fn(Value) -> usize, pinned: &[Value]) -> Assignment {
    let mut span: BTreeMap<Value, (usize, usize)> = BTreeMap::new();
    for (t, task) in tasks.iter().enumerate() {
        for &v in task.reads.iter().chain(&task.writes) {
            let entry = span.entry(v).or_insert((t, t));
            entry.0 = entry.0.min(t);
            entry.1 = entry.1.max(t);
        }
    }
    for v in pinned {
        span.insert(*v, (0, usize::MAX));
    }
    let mut order: Vec<(Value, (usize, usize))> = span.into_iter().collect();
    order.sort_by_key(|&(v, (start, _))| (start, v));

    let mut slot_of = HashMap::new();
    let mut slot_len: Vec<usize> = vec![];
    let mut busy_until: Vec<usize> = vec![];
    for (value, (start, end)) in order {
        let n = len(value);
        let reuse = (0..slot_len.len()).find(|&s| slot_len[s] == n && busy_until[s] < start);
        let slot = reuse.unwrap_or_else(|| {
            slot_len.push(n);
            busy_until.push(0);
            slot_len.len() - 1
        });
        busy_until[slot] = end;
        slot_of.insert(value, slot);
    }
    Assignment { slot_of, slot_len }
}
