//! A hierarchical timing wheel: O(1) insertion and expiry for the near future.
//!
//! Three levels of slots (256 × 1 tick, 64 × 256 ticks, 64 × 16,384 ticks; about 2.9 hours at
//! 10 ms ticks) plus an overflow list for anything further out. An entry sits in the level of the
//! most significant "digit" in which its due tick differs from the current tick; when the current
//! tick reaches the start of a higher-level slot, that slot's entries cascade down. So each entry
//! moves at most three times, and advancing touches only the slots that come due.
//!
//! To ensure correctness: an entry is returned by [`TimingWheel::advance`] only once the wheel's
//! time has reached its due time (its due tick is rounded up), never before.

/// Slots per level; each a power of two.
const LEVEL_BITS: [u32; 3] = [8, 6, 6];

/// The wheel, holding items of type `T` (timer keys).
pub struct TimingWheel<T> {
    /// Milliseconds per tick.
    tick_ms: i64,
    /// The last tick processed.
    current: i64,
    /// `levels[l][slot]`: entries with their due tick.
    levels: Vec<Vec<Vec<(i64, T)>>>,
    /// Entries beyond the last level's range.
    overflow: Vec<(i64, T)>,
    /// Entries already due when inserted, returned by the next advance.
    overdue: Vec<T>,
    /// Number of entries held.
    len: usize,
}

fn shift(level: usize) -> u32 {
    LEVEL_BITS[..level].iter().sum()
}

impl<T> TimingWheel<T> {
    /// An empty wheel whose time starts at `now_ms`.
    pub fn new(tick_ms: i64, now_ms: i64) -> Self {
        let tick_ms = tick_ms.max(1);
        TimingWheel {
            tick_ms,
            current: now_ms.div_euclid(tick_ms),
            levels: LEVEL_BITS
                .iter()
                .map(|bits| (0..1usize << bits).map(|_| Vec::new()).collect())
                .collect(),
            overflow: Vec::new(),
            overdue: Vec::new(),
            len: 0,
        }
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the wheel holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `item`, due at `due_ms`.
    pub fn insert(&mut self, due_ms: i64, item: T) {
        // Rounded up: an entry due within a tick fires at the tick's end, never before.
        let due_tick =
            due_ms.div_euclid(self.tick_ms) + i64::from(due_ms.rem_euclid(self.tick_ms) != 0);
        self.len += 1;
        self.place(due_tick, item);
    }

    fn place(&mut self, due_tick: i64, item: T) {
        if due_tick <= self.current {
            self.overdue.push(item);
            return;
        }
        let differing = (self.current ^ due_tick) as u64;
        for (level, bits) in LEVEL_BITS.iter().enumerate() {
            if differing >> shift(level + 1) == 0 {
                let slot = ((due_tick >> shift(level)) as usize) & ((1usize << bits) - 1);
                self.levels[level][slot].push((due_tick, item));
                return;
            }
        }
        self.overflow.push((due_tick, item));
    }

    /// Moves the wheel's time to `now_ms` and returns every entry now due.
    pub fn advance(&mut self, now_ms: i64) -> Vec<T> {
        let target = now_ms.div_euclid(self.tick_ms);
        let mut due = std::mem::take(&mut self.overdue);
        while self.current < target {
            self.current += 1;
            self.cascade();
            let slot = (self.current as usize) & ((1usize << LEVEL_BITS[0]) - 1);
            for (_, item) in self.levels[0][slot].drain(..) {
                due.push(item);
            }
        }
        // Entries that cascaded to a due tick at or before now land in `overdue`.
        due.append(&mut self.overdue);
        self.len -= due.len();
        due
    }

    /// At the start of a higher-level slot, re-places its entries nearer.
    fn cascade(&mut self) {
        let total_bits = shift(LEVEL_BITS.len());
        if self.current & ((1i64 << total_bits) - 1) == 0 {
            for (due_tick, item) in std::mem::take(&mut self.overflow) {
                self.place(due_tick, item);
            }
        }
        for level in (1..LEVEL_BITS.len()).rev() {
            if self.current & ((1i64 << shift(level)) - 1) == 0 {
                let slot =
                    ((self.current >> shift(level)) as usize) & ((1usize << LEVEL_BITS[level]) - 1);
                for (due_tick, item) in std::mem::take(&mut self.levels[level][slot]) {
                    self.place(due_tick, item);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts timers at many distances and checks each fires at the first advance at or after
    /// its due time, never before.
    #[test]
    fn entries_fire_on_time_never_early() {
        let start = 1_000_000_007;
        let mut wheel = TimingWheel::new(10, start);
        let offsets: Vec<i64> = vec![
            -50,
            0,
            1,
            9,
            10,
            11,
            2_559,
            2_560,
            2_561,
            99_999,
            163_840,
            163_841,
            5_000_000,
            11_000_000,
            20_000_000,
            200_000_000,
        ];
        for (i, off) in offsets.iter().enumerate() {
            wheel.insert(start + off, i);
        }
        assert_eq!(wheel.len(), offsets.len());
        let mut fired_at = vec![None; offsets.len()];
        let mut now = start;
        let end = start + 200_000_100;
        while now < end {
            // Uneven steps, as a real driver's ticks are.
            now += if now - start < 200_000 { 7 } else { 9_973 };
            for i in wheel.advance(now) {
                assert!(fired_at[i].is_none(), "entry {i} fired twice");
                fired_at[i] = Some(now);
            }
        }
        for (i, off) in offsets.iter().enumerate() {
            let due = start + off;
            let at = fired_at[i].unwrap_or_else(|| panic!("entry {i} (offset {off}) never fired"));
            assert!(at >= due, "entry {i} fired early: due {due}, fired {at}");
        }
        assert!(wheel.is_empty());
    }

    #[test]
    fn fine_steps_fire_within_a_tick() {
        let mut wheel = TimingWheel::new(10, 0);
        for due in (0..30_000).step_by(37) {
            wheel.insert(due, due);
        }
        let mut now = 0;
        while now < 30_100 {
            now += 10;
            for due in wheel.advance(now) {
                assert!(due <= now && now - due < 20, "due {due} fired at {now}");
            }
        }
        assert!(wheel.is_empty());
    }
}
