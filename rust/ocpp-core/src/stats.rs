//! Per-frame counters of one OCPP version, kept beside the verdicts so the relay does not count.
//!
//! A [`Stats`] is shared by every Session of a version (the binding holds it behind the GIL, the
//! core takes `&mut`). Each judged frame adds its size to a histogram per direction; a forwarded
//! frame counts one message per (direction, message type, action); a result that matched a
//! pending call adds its duration to a histogram per (direction of the call, action). Whoever
//! exports metrics drains the counters with [`Stats::take`], about once a second.

use crate::session::Verdict;
use crate::version::Direction;

/// Message types counted: CALL (2) to SEND (6).
const TYPES: usize = 5;

/// One drained batch of counters; only non-zero entries are listed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshot {
    /// (direction, message type, action id or None, count) of forwarded frames.
    pub messages: Vec<(Direction, u8, Option<u16>, u64)>,
    /// (direction of the call, action id or None, count per bucket, sum of seconds).
    pub durations: Vec<(Direction, Option<u16>, Vec<u64>, f64)>,
    /// (direction, count per bucket, sum of bytes) of every judged frame.
    pub sizes: Vec<(Direction, Vec<u64>, f64)>,
}

/// Counters of the frames of one version.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Slots per direction and type: the table's actions, then one for "no action".
    actions: usize,
    duration_bounds: Vec<f64>,
    size_bounds: Vec<f64>,
    messages: Vec<u64>,
    durations: Vec<u64>,
    duration_sums: Vec<f64>,
    sizes: Vec<u64>,
    size_sums: [f64; 2],
    dirty: bool,
}

fn index(direction: Direction) -> usize {
    match direction {
        Direction::CpToCsms => 0,
        Direction::CsmsToCp => 1,
    }
}

const DIRECTIONS: [Direction; 2] = [Direction::CpToCsms, Direction::CsmsToCp];

/// The bucket of `value` among upper bounds (value <= bound), the last one being +Inf.
fn bucket(bounds: &[f64], value: f64) -> usize {
    bounds.partition_point(|&bound| bound < value)
}

impl Stats {
    /// Counters for a version with `actions` table actions and the given histogram upper
    /// bounds (ascending, without +Inf, which is added).
    pub fn new(actions: usize, duration_bounds: Vec<f64>, size_bounds: Vec<f64>) -> Self {
        let slots = actions + 1;
        let duration_buckets = duration_bounds.len() + 1;
        let size_buckets = size_bounds.len() + 1;
        Stats {
            actions: slots,
            messages: vec![0; 2 * TYPES * slots],
            durations: vec![0; 2 * slots * duration_buckets],
            duration_sums: vec![0.0; 2 * slots],
            sizes: vec![0; 2 * size_buckets],
            size_sums: [0.0; 2],
            duration_bounds,
            size_bounds,
            dirty: false,
        }
    }

    fn slot(&self, action: Option<u16>) -> usize {
        match action {
            Some(id) if (id as usize) < self.actions - 1 => id as usize,
            _ => self.actions - 1,
        }
    }

    /// Count one judged frame.
    ///
    /// `direction` is the way the frame travels and `size` its length in bytes.
    pub fn record(&mut self, direction: Direction, size: usize, verdict: &Verdict<'_>) {
        self.dirty = true;
        let d = index(direction);
        let size_buckets = self.size_bounds.len() + 1;
        self.sizes[d * size_buckets + bucket(&self.size_bounds, size as f64)] += 1;
        self.size_sums[d] += size as f64;
        if !verdict.forward || !(2..=6).contains(&verdict.message_type) {
            return;
        }
        let slot = self.slot(verdict.action);
        let t = usize::from(verdict.message_type - 2);
        self.messages[(d * TYPES + t) * self.actions + slot] += 1;
        if let Some(seconds) = verdict.call_duration {
            // A result travelling one way answers a call that travelled the other way.
            let call = index(direction.reverse()) * self.actions + slot;
            let buckets = self.duration_bounds.len() + 1;
            self.durations[call * buckets + bucket(&self.duration_bounds, seconds)] += 1;
            self.duration_sums[call] += seconds;
        }
    }

    /// Drain the counters: everything counted since the last call, then zero.
    pub fn take(&mut self) -> Snapshot {
        let mut out = Snapshot::default();
        if !self.dirty {
            return out;
        }
        self.dirty = false;
        let slots = self.actions;
        let action = |slot: usize| (slot < slots - 1).then_some(slot as u16);
        for (d, direction) in DIRECTIONS.into_iter().enumerate() {
            for t in 0..TYPES {
                for slot in 0..slots {
                    let cell = &mut self.messages[(d * TYPES + t) * slots + slot];
                    if *cell > 0 {
                        out.messages
                            .push((direction, t as u8 + 2, action(slot), *cell));
                        *cell = 0;
                    }
                }
            }
            let buckets = self.duration_bounds.len() + 1;
            for slot in 0..slots {
                let call = d * slots + slot;
                let counts = &mut self.durations[call * buckets..(call + 1) * buckets];
                if counts.iter().any(|&c| c > 0) {
                    out.durations.push((
                        direction,
                        action(slot),
                        counts.to_vec(),
                        self.duration_sums[call],
                    ));
                    counts.fill(0);
                    self.duration_sums[call] = 0.0;
                }
            }
            let size_buckets = self.size_bounds.len() + 1;
            let counts = &mut self.sizes[d * size_buckets..(d + 1) * size_buckets];
            if counts.iter().any(|&c| c > 0) {
                out.sizes
                    .push((direction, counts.to_vec(), self.size_sums[d]));
                counts.fill(0);
                self.size_sums[d] = 0.0;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Policy, Session};

    fn session() -> Session {
        let set = crate::testing::schemas(crate::OcppVersion::V16);
        Session::new(set, Policy::default(), 60.0)
    }

    #[test]
    fn counts_sizes_messages_and_durations() {
        let mut s = session();
        let heartbeat = s.schemas().action_id("Heartbeat");
        let mut stats = Stats::new(40, vec![0.001, 0.01], vec![16.0, 64.0]);
        let call: &[u8] = br#"[2,"1","Heartbeat",{}]"#;
        let v = s.from_charge_point(call, 0.0);
        stats.record(Direction::CpToCsms, call.len(), &v);
        let result: &[u8] = br#"[3,"1",{"currentTime":"2025-01-01T00:00:00Z"}]"#;
        let v = s.from_csms(result, 0.005);
        stats.record(Direction::CsmsToCp, result.len(), &v);
        let bad: &[u8] = b"[2,";
        let v = s.from_charge_point(bad, 0.0);
        stats.record(Direction::CpToCsms, bad.len(), &v);
        let snap = stats.take();
        assert_eq!(
            snap.messages,
            vec![
                (Direction::CpToCsms, 2, heartbeat, 1),
                (Direction::CsmsToCp, 3, heartbeat, 1)
            ]
        );
        // The result's duration belongs to the call's direction, in the 1-10 ms bucket.
        assert_eq!(snap.durations.len(), 1);
        let (direction, action, counts, sum) = &snap.durations[0];
        assert_eq!((*direction, *action), (Direction::CpToCsms, heartbeat));
        assert_eq!(counts, &vec![0, 1, 0]);
        assert!((sum - 0.005).abs() < 1e-12);
        // Every judged frame has its size counted, forwarded or not: 22 and 3 bytes <= 64/16.
        assert_eq!(
            snap.sizes,
            vec![
                (Direction::CpToCsms, vec![1, 1, 0], 25.0),
                (Direction::CsmsToCp, vec![0, 1, 0], result.len() as f64)
            ]
        );
        assert_eq!(stats.take(), Snapshot::default());
    }
}
