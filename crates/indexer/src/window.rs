//! The unfinalized window: the `(number, hash, parent_hash)` of every indexed
//! block above the finalized one, and what the node's answers mean against
//! it. Pure: the follower fetches blocks and hashes, this decides.
//!
//! - The node's next block extends the tip when its parent hash is the
//!   tip's hash; otherwise the tip was reorged out.
//! - After a reorg, the common ancestor is the highest stored block whose
//!   hash the node still has at that height; everything above it is undone.
//!   When no stored block matches, the reorg reaches below the window: if
//!   the window starts at the finalized block, finality was broken and the
//!   indexer must halt.
//! - A node whose head is below the tip but still has the tip's hash is
//!   lagging (another replica, a load balancer): wait, never rewind.

use alloy::primitives::B256;

pub use rwa_domain::onchain::BlockRef;

/// What the node's next block means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// It builds on the tip: index it.
    Extends,
    /// Its parent is not the tip: the tip was reorged out.
    Reorged,
    /// It is not the block after the tip (a caller's mistake).
    NotNext,
}

/// Where a reorg's common ancestor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ancestor {
    /// This stored block is still canonical: undo everything above it.
    At(BlockRef),
    /// No stored block is canonical any more and the window starts at a
    /// finalized block: finality was broken, halt.
    BelowFinality,
    /// No stored block is canonical, but the window does not reach down to
    /// the finalized block: look further down (from the store's older
    /// blocks or the finalized block itself).
    BelowWindow,
}

/// How the node's head relates to our tip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    /// The node is ahead: follow it.
    Ahead,
    /// The node is at our tip, with our hash.
    AtTip,
    /// The node is behind our tip but has our tip's hash: it is lagging,
    /// wait for it.
    Lagging,
    /// The node does not have our tip's hash at its height: reorged.
    Reorged,
}

/// The indexed blocks above the finalized one, oldest first, contiguous.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Window {
    blocks: Vec<BlockRef>,
    /// Whether the oldest block is the finalized one (nothing below it can
    /// change without breaking finality).
    starts_final: bool,
}

impl Window {
    /// A window of `blocks` (oldest first, contiguous); `starts_final` when
    /// the oldest is the finalized block.
    pub fn new(blocks: Vec<BlockRef>, starts_final: bool) -> Self {
        debug_assert!(
            blocks
                .windows(2)
                .all(|w| w[1].number == w[0].number + 1 && w[1].parent_hash == w[0].hash),
            "a window is a chain"
        );
        Self {
            blocks,
            starts_final,
        }
    }

    /// The latest indexed block.
    pub fn tip(&self) -> Option<&BlockRef> {
        self.blocks.last()
    }

    /// The stored blocks, oldest first.
    pub fn blocks(&self) -> &[BlockRef] {
        &self.blocks
    }

    /// What the node's block after the tip means.
    pub fn next(&self, block: &BlockRef) -> Next {
        match self.tip() {
            None => Next::Extends,
            Some(tip) if block.number != tip.number + 1 => Next::NotNext,
            Some(tip) if block.parent_hash == tip.hash => Next::Extends,
            Some(_) => Next::Reorged,
        }
    }

    /// Adds a block that [`Self::next`] said extends the tip.
    pub fn push(&mut self, block: BlockRef) {
        self.blocks.push(block);
    }

    /// The common ancestor, given the node's hash at each stored height
    /// (`None`: the node has no block there, e.g. a shorter fork).
    pub fn ancestor(&self, node_hash: impl Fn(u64) -> Option<B256>) -> Ancestor {
        for block in self.blocks.iter().rev() {
            if node_hash(block.number) == Some(block.hash) {
                return Ancestor::At(*block);
            }
        }
        if self.starts_final {
            Ancestor::BelowFinality
        } else {
            Ancestor::BelowWindow
        }
    }

    /// Undoes the blocks above `ancestor` (after their events were deleted).
    pub fn rewind_to(&mut self, ancestor: u64) {
        self.blocks.retain(|b| b.number <= ancestor);
    }

    /// Forgets the blocks below `finalized`, keeping the finalized one as
    /// the window's floor.
    pub fn finalize(&mut self, finalized: u64) {
        if self.blocks.first().is_some_and(|b| b.number <= finalized) {
            self.blocks.retain(|b| b.number >= finalized);
            self.starts_final = self.blocks.first().is_some_and(|b| b.number == finalized);
        }
    }

    /// How the node's head (`node_head`, and its hash at our tip's height,
    /// if it has a block there) relates to our tip.
    pub fn head(&self, node_head: u64, node_hash_at_tip: Option<B256>) -> Head {
        let Some(tip) = self.tip() else {
            return Head::Ahead;
        };
        if node_hash_at_tip != Some(tip.hash) {
            // Below our tip with no block at its height is lagging only if
            // its own head is still on our chain; the follower asks again at
            // the node's head before rewinding.
            return if node_head < tip.number && node_hash_at_tip.is_none() {
                Head::Lagging
            } else {
                Head::Reorged
            };
        }
        match node_head.cmp(&tip.number) {
            std::cmp::Ordering::Greater => Head::Ahead,
            std::cmp::Ordering::Equal => Head::AtTip,
            std::cmp::Ordering::Less => Head::Lagging,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of `n` blocks from `from`, on fork `fork` (hashes differ by
    /// fork), whose first block's parent is `parent`.
    fn chain(from: u64, n: u64, fork: u8, parent: B256) -> Vec<BlockRef> {
        let mut out = Vec::new();
        let mut parent = parent;
        for number in from..from + n {
            let mut h = [fork; 32];
            h[..8].copy_from_slice(&number.to_be_bytes());
            let b = BlockRef {
                number,
                hash: B256::from(h),
                parent_hash: parent,
            };
            parent = b.hash;
            out.push(b);
        }
        out
    }

    #[test]
    fn a_block_on_the_tip_extends_and_another_is_a_reorg() {
        let main = chain(100, 5, 1, B256::ZERO);
        let w = Window::new(main.clone(), true);
        let next = chain(105, 1, 1, main[4].hash)[0];
        assert_eq!(w.next(&next), Next::Extends);
        let fork = chain(105, 1, 2, B256::repeat_byte(9))[0];
        assert_eq!(w.next(&fork), Next::Reorged);
        assert_eq!(w.next(&chain(107, 1, 1, B256::ZERO)[0]), Next::NotNext);
    }

    #[test]
    fn the_ancestor_is_the_highest_block_the_node_still_has() {
        let main = chain(100, 6, 1, B256::ZERO);
        let mut w = Window::new(main.clone(), true);
        // The node replaced 103.. with another fork.
        let node = |n: u64| {
            (n <= 102)
                .then(|| main[(n - 100) as usize].hash)
                .or(Some(B256::repeat_byte(0xee)))
        };
        assert_eq!(w.ancestor(node), Ancestor::At(main[2]));
        w.rewind_to(102);
        assert_eq!(w.tip(), Some(&main[2]));
        // A shorter fork: the node has no block above 101.
        let w = Window::new(main.clone(), true);
        let shorter = |n: u64| (n <= 101).then(|| main[(n - 100) as usize].hash);
        assert_eq!(w.ancestor(shorter), Ancestor::At(main[1]));
    }

    #[test]
    fn a_reorg_past_the_finalized_block_halts() {
        let main = chain(100, 4, 1, B256::ZERO);
        let other = |_: u64| Some(B256::repeat_byte(0xee));
        assert_eq!(
            Window::new(main.clone(), true).ancestor(other),
            Ancestor::BelowFinality
        );
        assert_eq!(
            Window::new(main, false).ancestor(other),
            Ancestor::BelowWindow
        );
    }

    #[test]
    fn finalizing_keeps_the_finalized_block_as_the_floor() {
        let main = chain(100, 6, 1, B256::ZERO);
        let mut w = Window::new(main.clone(), false);
        w.finalize(103);
        assert_eq!(w.blocks().first(), Some(&main[3]));
        assert_eq!(w.blocks().len(), 3);
        let other = |_: u64| Some(B256::repeat_byte(0xee));
        assert_eq!(w.ancestor(other), Ancestor::BelowFinality);
    }

    #[test]
    fn a_lagging_node_is_waited_for_not_followed_back() {
        let main = chain(100, 6, 1, B256::ZERO);
        let w = Window::new(main.clone(), true);
        let tip = main[5];
        assert_eq!(w.head(110, Some(tip.hash)), Head::Ahead);
        assert_eq!(w.head(105, Some(tip.hash)), Head::AtTip);
        // Behind us, still serving our tip's hash (an archive replica).
        assert_eq!(w.head(103, Some(tip.hash)), Head::Lagging);
        // Behind us, without a block at our height.
        assert_eq!(w.head(103, None), Head::Lagging);
        // Another hash at our height: reorged.
        assert_eq!(w.head(105, Some(B256::repeat_byte(0xee))), Head::Reorged);
        assert_eq!(w.head(110, None), Head::Reorged);
    }
}
