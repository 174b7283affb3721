//! Referral levels `A < B < … < J` and the promotion rule (SPEC §6.3).
//!
//! [`LevelCounts`] is how many directs a customer has at each letter. Ten counters are all the
//! promotion rule needs, and they are what one `$group` returns for a whole referral chain.
//! [`LevelGifts`] is what a customer is given on reaching each letter.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::money::MilliPoints;

/// A referral level letter. The derived order is the level order.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Level {
    #[default]
    A,
    B,
    C,
    D,
    E,
    F,
    G,
    H,
    I,
    J,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("level {0:?} is not one of the letters A to J")]
pub struct ParseLevelError(pub String);

impl Level {
    pub const ALL: [Level; 10] = [
        Level::A,
        Level::B,
        Level::C,
        Level::D,
        Level::E,
        Level::F,
        Level::G,
        Level::H,
        Level::I,
        Level::J,
    ];

    /// 0 for A … 9 for J.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The next letter, staying at J.
    pub fn next(self) -> Level {
        Level::ALL
            .get(self.index() + 1)
            .copied()
            .unwrap_or(Level::J)
    }

    pub const fn letter(self) -> char {
        // `index` is 0..=9 so this stays within 'A'..='J'.
        (b'A' + self as u8) as char
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter())
    }
}

impl FromStr for Level {
    type Err = ParseLevelError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|level| {
                let mut buf = [0u8; 4];
                level.letter().encode_utf8(&mut buf) == text
            })
            .ok_or_else(|| ParseLevelError(text.to_owned()))
    }
}

/// How many of a customer's direct referrals are at each level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LevelCounts([u64; 10]);

impl LevelCounts {
    pub fn from_levels<I: IntoIterator<Item = Level>>(levels: I) -> Self {
        let mut counts = LevelCounts::default();
        for level in levels {
            counts.add(level, 1);
        }
        counts
    }

    pub fn add(&mut self, level: Level, how_many: u64) {
        let slot = &mut self.0[level.index()];
        *slot = slot.saturating_add(how_many);
    }

    /// Moves one direct from `from` to `to` (a direct was promoted). `false`, and nothing changes,
    /// when no direct is at `from`.
    pub fn move_one(&mut self, from: Level, to: Level) -> bool {
        if self.0[from.index()] == 0 {
            return false;
        }
        self.0[from.index()] -= 1;
        self.add(to, 1);
        true
    }

    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |sum, n| sum.saturating_add(*n))
    }

    pub fn count(&self, level: Level) -> u64 {
        self.0[level.index()]
    }

    /// The k-th highest letter (1-based), counting equal letters separately; `None` when there are
    /// fewer than `k` directs or `k` is 0.
    pub fn kth_highest(&self, k: u32) -> Option<Level> {
        let k = u64::from(k);
        if k == 0 {
            return None;
        }
        let mut seen = 0u64;
        for level in Level::ALL.into_iter().rev() {
            seen = seen.saturating_add(self.count(level));
            if seen >= k {
                return Some(level);
            }
        }
        None
    }
}

/// The promotion rule: with `L` the k-th highest letter among the directs, the level becomes
/// `max(current, min(J, next(L)))`; with fewer than `k` directs it stays. Levels never go down.
pub fn promoted_level(current: Level, directs: &LevelCounts, promotion_directs: u32) -> Level {
    match directs.kth_highest(promotion_directs) {
        Some(kth) => current.max(kth.next()),
        None => current,
    }
}

/// The points a customer is given on reaching each letter (`levelGifts`), from the gifts pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LevelGifts([MilliPoints; 10]);

impl LevelGifts {
    pub fn of(&self, level: Level) -> MilliPoints {
        self.0[level.index()]
    }

    pub fn set(&mut self, level: Level, amount: MilliPoints) {
        self.0[level.index()] = amount;
    }

    /// The app's defaults: B 10, D 20, F 30, H 40, J 50.
    pub fn app_defaults() -> Self {
        let mut gifts = LevelGifts::default();
        for (level, points) in [
            (Level::B, 10),
            (Level::D, 20),
            (Level::F, 30),
            (Level::H, 40),
            (Level::J, 50),
        ] {
            gifts.set(level, MilliPoints::from_milli(points * 1000));
        }
        gifts
    }

    /// The letters with a gift, and the gift.
    pub fn iter(&self) -> impl Iterator<Item = (Level, MilliPoints)> + '_ {
        Level::ALL
            .iter()
            .map(|&level| (level, self.of(level)))
            .filter(|(_, amount)| !amount.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_parse_and_print() {
        for (i, text) in ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"]
            .iter()
            .enumerate()
        {
            let level: Level = text.parse().unwrap();
            assert_eq!(level.index(), i);
            assert_eq!(level.to_string(), *text);
        }
        for bad in ["", "K", "a", "AA", " A", "Z"] {
            assert!(bad.parse::<Level>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn next_stops_at_j() {
        assert_eq!(Level::A.next(), Level::B);
        assert_eq!(Level::I.next(), Level::J);
        assert_eq!(Level::J.next(), Level::J);
    }

    #[test]
    fn kth_highest_counts_equal_letters_separately() {
        let counts = LevelCounts::from_levels([Level::C, Level::C, Level::B]);
        assert_eq!(counts.kth_highest(1), Some(Level::C));
        assert_eq!(counts.kth_highest(2), Some(Level::C));
        assert_eq!(counts.kth_highest(3), Some(Level::B));
        assert_eq!(counts.kth_highest(4), None);
        assert_eq!(counts.kth_highest(0), None);
    }

    #[test]
    fn promotion_follows_the_kth_direct() {
        let two_at_c = LevelCounts::from_levels([Level::C, Level::C, Level::A]);
        assert_eq!(promoted_level(Level::B, &two_at_c, 2), Level::D);
        assert_eq!(
            promoted_level(Level::F, &two_at_c, 2),
            Level::F,
            "never down"
        );
        let one = LevelCounts::from_levels([Level::I]);
        assert_eq!(
            promoted_level(Level::A, &one, 2),
            Level::A,
            "too few directs"
        );
        let two_j = LevelCounts::from_levels([Level::J, Level::J]);
        assert_eq!(promoted_level(Level::A, &two_j, 2), Level::J, "capped at J");
    }

    #[test]
    fn moving_a_direct_needs_one_there() {
        let mut counts = LevelCounts::from_levels([Level::B]);
        assert!(!counts.move_one(Level::A, Level::C));
        assert!(counts.move_one(Level::B, Level::D));
        assert_eq!(counts, LevelCounts::from_levels([Level::D]));
    }
}
