//! Pending calls of one connection, per direction: UniqueId -> (action, time seen).
//!
//! A CALLRESULT or CALLERROR carries no action name; the call it answers, found here by
//! UniqueId in the opposite direction, says which response schema applies.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use crate::schema::ActionId;
use crate::version::Direction;

/// Most calls awaiting an answer in one direction. OCPP-J allows one outstanding CALL per
/// direction; this bound only keeps memory finite when a peer never answers.
pub const MAX_PENDING: usize = 1024;

/// A call awaiting its answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PendingCall {
    pub action: ActionId,
    /// Time (seconds, caller's clock) the call was forwarded.
    pub seen: f64,
}

/// Why a call could not be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddError {
    /// A call with this UniqueId from the same side is still pending.
    Duplicate,
    /// [`MAX_PENDING`] calls are already pending in this direction.
    Full,
}

/// A UniqueId as a map key, kept inline (no allocation) when it fits in 40 bytes, which every
/// valid one of ASCII characters does. Hashes and compares as its bytes, like `[u8]`.
#[derive(Debug, Clone)]
enum Key {
    Inline { len: u8, buf: [u8; 40] },
    Heap(Box<[u8]>),
}

impl Key {
    fn new(id: &str) -> Self {
        let b = id.as_bytes();
        if b.len() <= 40 {
            let mut buf = [0u8; 40];
            buf[..b.len()].copy_from_slice(b);
            Key::Inline {
                len: b.len() as u8,
                buf,
            }
        } else {
            Key::Heap(b.into())
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, buf } => &buf[..usize::from(*len)],
            Key::Heap(b) => b,
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Key {}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes().hash(state);
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.bytes()
    }
}

/// Calls awaiting answers, both directions.
#[derive(Debug, Default, Clone)]
pub struct Correlation {
    pending: [HashMap<Key, PendingCall>; 2],
}

impl Correlation {
    /// Check that a call could be recorded, without recording it.
    pub fn check(&self, direction: Direction, unique_id: &str) -> Result<(), AddError> {
        let map = &self.pending[direction as usize];
        if map.contains_key(unique_id.as_bytes()) {
            return Err(AddError::Duplicate);
        }
        if map.len() >= MAX_PENDING {
            return Err(AddError::Full);
        }
        Ok(())
    }

    /// Record a call sent in direction `direction`.
    pub fn add(
        &mut self,
        direction: Direction,
        unique_id: &str,
        call: PendingCall,
    ) -> Result<(), AddError> {
        self.check(direction, unique_id)?;
        self.pending[direction as usize].insert(Key::new(unique_id), call);
        Ok(())
    }

    /// Set the time of a pending call to `now` (a retransmission); false when none is pending.
    pub fn refresh(&mut self, direction: Direction, unique_id: &str, now: f64) -> bool {
        match self.pending[direction as usize].get_mut(unique_id.as_bytes()) {
            Some(call) => {
                call.seen = now;
                true
            }
            None => false,
        }
    }

    /// Take the call with this UniqueId sent in direction `direction`, if pending.
    pub fn take(&mut self, direction: Direction, unique_id: &str) -> Option<PendingCall> {
        self.pending[direction as usize].remove(unique_id.as_bytes())
    }

    /// Look at a pending call without removing it.
    pub fn get(&self, direction: Direction, unique_id: &str) -> Option<PendingCall> {
        self.pending[direction as usize]
            .get(unique_id.as_bytes())
            .copied()
    }

    /// Remove calls seen more than `timeout` seconds before `now`; returns them.
    ///
    /// A direction left with no pending call also gives its table's memory back (a map keeps
    /// its capacity after its last entry is taken: about 300 bytes per connection that is idle
    /// after one call). This runs from the caller's timer, off the per-frame path.
    pub fn expire(&mut self, now: f64, timeout: f64) -> Vec<(Direction, String, PendingCall)> {
        let mut gone = Vec::new();
        for direction in [Direction::CpToCsms, Direction::CsmsToCp] {
            let map = &mut self.pending[direction as usize];
            map.retain(|id, call| {
                if now - call.seen >= timeout {
                    gone.push((
                        direction,
                        String::from_utf8_lossy(id.bytes()).into_owned(),
                        *call,
                    ));
                    false
                } else {
                    true
                }
            });
            if map.is_empty() && map.capacity() > 0 {
                map.shrink_to_fit();
            }
        }
        gone.sort_by(|a, b| a.2.seen.total_cmp(&b.2.seen));
        gone
    }

    /// Number of pending calls, both directions.
    pub fn len(&self) -> usize {
        self.pending[0].len() + self.pending[1].len()
    }

    /// True when no call is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_take_expire() {
        let mut c = Correlation::default();
        let call = |seen| PendingCall { action: 1, seen };
        c.add(Direction::CpToCsms, "a", call(0.0)).unwrap();
        assert_eq!(
            c.add(Direction::CpToCsms, "a", call(1.0)),
            Err(AddError::Duplicate)
        );
        c.add(Direction::CsmsToCp, "a", call(5.0)).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.take(Direction::CsmsToCp, "b"), None);
        assert!(!c.refresh(Direction::CpToCsms, "b", 9.0));
        assert!(c.refresh(Direction::CsmsToCp, "a", 6.0));
        assert_eq!(c.get(Direction::CsmsToCp, "a"), Some(call(6.0)));
        let gone = c.expire(30.0, 30.0);
        assert_eq!(gone.len(), 1);
        assert_eq!((gone[0].0, gone[0].1.as_str()), (Direction::CpToCsms, "a"));
        assert_eq!(c.take(Direction::CsmsToCp, "a"), Some(call(6.0)));
        assert!(c.is_empty());
    }

    #[test]
    fn expire_gives_back_the_memory_of_an_empty_direction() {
        let mut c = Correlation::default();
        let call = PendingCall {
            action: 1,
            seen: 0.0,
        };
        c.add(Direction::CpToCsms, "a", call).unwrap();
        c.add(Direction::CsmsToCp, "b", call).unwrap();
        assert!(c.take(Direction::CpToCsms, "a").is_some());
        assert!(c.pending[0].capacity() > 0);
        assert!(c.expire(1.0, 30.0).is_empty());
        assert_eq!(c.pending[0].capacity(), 0);
        assert!(
            c.pending[1].capacity() > 0,
            "a direction with a pending call keeps its table"
        );
        assert_eq!(c.get(Direction::CsmsToCp, "b"), Some(call));
        c.add(Direction::CpToCsms, "a", call).unwrap();
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn long_ids_are_kept_whole() {
        let mut c = Correlation::default();
        let long = "é".repeat(36); // 72 bytes: stored on the heap
        let short = "x".repeat(36);
        let call = PendingCall {
            action: 2,
            seen: 1.0,
        };
        c.add(Direction::CsmsToCp, &long, call).unwrap();
        c.add(Direction::CsmsToCp, &short, call).unwrap();
        assert_eq!(
            c.add(Direction::CsmsToCp, &long, call),
            Err(AddError::Duplicate)
        );
        assert_eq!(c.get(Direction::CsmsToCp, &"é".repeat(35)), None);
        let gone = c.expire(100.0, 1.0);
        let ids: Vec<&str> = gone.iter().map(|g| g.1.as_str()).collect();
        assert!(ids.contains(&long.as_str()) && ids.contains(&short.as_str()));
    }

    #[test]
    fn bounded() {
        let mut c = Correlation::default();
        for i in 0..MAX_PENDING {
            c.add(
                Direction::CpToCsms,
                &i.to_string(),
                PendingCall {
                    action: 0,
                    seen: 0.0,
                },
            )
            .unwrap();
        }
        let r = c.add(
            Direction::CpToCsms,
            "x",
            PendingCall {
                action: 0,
                seen: 0.0,
            },
        );
        assert_eq!(r, Err(AddError::Full));
    }
}
