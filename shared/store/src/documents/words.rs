//! The words the app and we store for statuses and kinds: each enum below is the one source of
//! its strings. [`words!`] gives every one the same face: `as_str` (the stored word), `ALL` (every
//! variant, for filters that name them all), `parse`, serde as the bare string (an unknown word
//! is refused by name, "unknown variant `x`, expected one of …"), and `Bson` for `doc!` filters
//! and updates — so no query, report or check spells a status by hand.
//!
//! What follows from a word (which entry types are reward entries, which credit a wallet, which
//! move the gifts pool; what a purchase's `rewardsStatus` is for its job's status) is decided in
//! one exhaustive `match` each: a new variant does not compile until it is placed.

use mongodb::bson::Bson;

/// Declares an enum of stored words: `Variant = "word"` for each.
macro_rules! words {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident = $word:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Every stored word, in declaration order.
            pub const WORDS: &'static [&'static str] = &[$($word),+];

            /// The word as stored.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            /// The variant a stored word names, if any.
            pub fn parse(word: &str) -> Option<Self> {
                match word {
                    $($word => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Word;
                impl serde::de::Visitor<'_> for Word {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "one of {:?}", $name::WORDS)
                    }
                    fn visit_str<E: serde::de::Error>(self, word: &str) -> Result<$name, E> {
                        $name::parse(word)
                            .ok_or_else(|| E::unknown_variant(word, $name::WORDS))
                    }
                }
                d.deserialize_str(Word)
            }
        }

        impl From<$name> for Bson {
            fn from(word: $name) -> Bson {
                Bson::String(word.as_str().to_owned())
            }
        }
    };
}

words! {
    /// `checkoutjobs.status`: the job's life (`queue`'s diagram).
    pub enum JobStatus {
        Pending = "pending",
        Processing = "processing",
        Completed = "completed",
        /// Dead: out of attempts, or a permanent error. Only an operator's re-drive revives it.
        Failed = "failed",
    }
}

words! {
    /// `transactions.rewardsStatus` of a purchase: its job's status, mirrored
    /// ([`RewardsStatus::mirroring`]).
    pub enum RewardsStatus {
        Processing = "processing",
        Completed = "completed",
        Failed = "failed",
    }
}

impl RewardsStatus {
    /// What a purchase's `rewardsStatus` is while its job is `job`: a job not yet settled
    /// (pending or processing) leaves its purchase `processing`. The queue writes the mirror
    /// by this, and the audit checks it by this.
    pub const fn mirroring(job: JobStatus) -> Self {
        match job {
            JobStatus::Pending | JobStatus::Processing => RewardsStatus::Processing,
            JobStatus::Completed => RewardsStatus::Completed,
            JobStatus::Failed => RewardsStatus::Failed,
        }
    }
}

words! {
    /// `transactions.type`.
    pub enum TransactionType {
        Purchase = "purchase",
        TreeReward = "tree_reward",
        TreeRewardShared = "tree_reward_shared",
        GiftsReward = "gifts_reward",
        AppReward = "app_reward",
        /// The app's current economy: D to the parent (first purchase) or the buyer (cashback).
        DirectReferralReward = "direct_referral_reward",
        /// The signup gift, from the gifts pool.
        SignupGiftsReward = "signup_gifts_reward",
        /// A level gift, from the gifts pool.
        LevelGiftReward = "level_gift_reward",
    }
}

/// What a transaction of each type is to the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryRole {
    /// The purchase itself (charged to the buyer's wallet).
    Purchase,
    /// A part of R credited to a customer's wallet (tree payouts, the direct referral).
    WalletFromR,
    /// A part of R credited to a pool; the gifts pool's is the pool's income.
    PoolFromR(Pool),
    /// A gift credited to a customer's wallet out of the gifts pool (outside R).
    GiftFromPool,
}

impl TransactionType {
    /// The one decision of what each type is (an exhaustive match: a new type must be placed).
    pub const fn role(self) -> EntryRole {
        match self {
            TransactionType::Purchase => EntryRole::Purchase,
            TransactionType::TreeReward
            | TransactionType::TreeRewardShared
            | TransactionType::DirectReferralReward => EntryRole::WalletFromR,
            TransactionType::GiftsReward => EntryRole::PoolFromR(Pool::Gifts),
            TransactionType::AppReward => EntryRole::PoolFromR(Pool::App),
            TransactionType::SignupGiftsReward | TransactionType::LevelGiftReward => {
                EntryRole::GiftFromPool
            }
        }
    }

    /// A reward entry: every type but the purchase.
    pub const fn is_reward_entry(self) -> bool {
        !matches!(self.role(), EntryRole::Purchase)
    }

    /// Credits a customer's wallet (not a pool).
    pub const fn credits_a_wallet(self) -> bool {
        matches!(
            self.role(),
            EntryRole::WalletFromR | EntryRole::GiftFromPool
        )
    }

    /// Paid out of the gifts pool (outside R).
    pub const fn spends_the_gifts_pool(self) -> bool {
        matches!(self.role(), EntryRole::GiftFromPool)
    }

    /// In the app's gifts pool formula: its income (`gifts_reward`) or a spend (the gifts).
    pub const fn moves_the_gifts_pool(self) -> bool {
        matches!(
            self.role(),
            EntryRole::PoolFromR(Pool::Gifts) | EntryRole::GiftFromPool
        )
    }

    /// The types `keep` picks, as stored words (for a `$in` filter).
    pub fn words_where(keep: fn(Self) -> bool) -> Vec<&'static str> {
        Self::ALL
            .iter()
            .copied()
            .filter(|t| keep(*t))
            .map(Self::as_str)
            .collect()
    }
}

words! {
    /// Which pool a pool entry credits (`transactions.pool`, ours).
    pub enum Pool {
        Gifts = "gifts",
        App = "app",
    }
}

words! {
    /// Whether retrying can fix an attempt's error (`checkoutjobs.errors[].kind`, ours).
    pub enum JobErrorKind {
        Retryable = "retryable",
        Permanent = "permanent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_word_round_trips_and_an_unknown_one_is_refused_by_name() {
        for status in JobStatus::ALL {
            let stored = mongodb::bson::to_bson(status).unwrap();
            assert_eq!(stored, Bson::String(status.as_str().to_owned()));
            assert_eq!(Bson::from(*status), stored);
            assert_eq!(
                mongodb::bson::from_bson::<JobStatus>(stored).unwrap(),
                *status
            );
        }
        assert_eq!(
            TransactionType::parse("level_gift_reward"),
            Some(TransactionType::LevelGiftReward)
        );
        let refused = mongodb::bson::from_bson::<JobStatus>(Bson::String("done".into()))
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("unknown variant `done`, expected one of `pending`"),
            "{refused}"
        );
        assert!(mongodb::bson::from_bson::<Pool>(Bson::Int32(1)).is_err());
    }

    #[test]
    fn the_words_are_the_apps() {
        assert_eq!(
            JobStatus::WORDS,
            ["pending", "processing", "completed", "failed"]
        );
        assert_eq!(
            TransactionType::words_where(TransactionType::moves_the_gifts_pool),
            ["gifts_reward", "signup_gifts_reward", "level_gift_reward"]
        );
        assert_eq!(
            TransactionType::words_where(TransactionType::is_reward_entry).len(),
            TransactionType::ALL.len() - 1
        );
        assert_eq!(serde_json::to_string(&Pool::Gifts).unwrap(), "\"gifts\"");
    }

    #[test]
    fn a_purchase_mirrors_its_jobs_status() {
        use JobStatus as J;
        use RewardsStatus as R;
        let mirrored: Vec<R> = J::ALL.iter().map(|j| R::mirroring(*j)).collect();
        assert_eq!(
            mirrored,
            [R::Processing, R::Processing, R::Completed, R::Failed]
        );
    }
}
