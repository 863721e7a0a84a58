//! Ranged `eth_getLogs` for backfill: ranges issued ahead (`pipeline` in
//! flight, so the node is never idle while a batch is written) and handed
//! back in order; the range adapts, halved when the node refuses it or
//! answers more logs than `max_logs`, widened after answers well below it.

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use rwa_domain::chain::{Address, BlockTag, ChainError, ChainPort, Log, LogFilter};
use rwa_domain::onchain::BlockRef;

/// Sizes of the ranged fetch.
#[derive(Clone, Copy, Debug)]
pub struct RangeConfig {
    /// First range, in blocks.
    pub initial: u64,
    /// Never wider.
    pub max: u64,
    /// Ranges in flight at once.
    pub pipeline: usize,
    /// Answers larger than this halve the next range.
    pub max_logs: usize,
}

impl Default for RangeConfig {
    fn default() -> Self {
        Self {
            initial: 500,
            max: 5_000,
            pipeline: 4,
            max_logs: 10_000,
        }
    }
}

/// One fetched range: its logs and its last block.
#[derive(Debug)]
pub struct Fetched {
    /// First height.
    pub from: u64,
    /// The last block of the range.
    pub to: BlockRef,
    /// Its logs, in chain order.
    pub logs: Vec<Log>,
}

type Pending = BoxFuture<'static, (u64, u64, Result<Fetched, ChainError>)>;

/// Fetches `from..=until` for `addresses`, range by range, in order.
pub struct RangeFetcher {
    chain: Arc<dyn ChainPort>,
    addresses: Arc<Vec<Address>>,
    config: RangeConfig,
    size: u64,
    next: u64,
    until: u64,
    in_flight: VecDeque<Pending>,
}

impl RangeFetcher {
    /// A fetch of `from..=until`; `size` is the range to start with (the
    /// last one that worked, carried between calls).
    pub fn new(
        chain: Arc<dyn ChainPort>,
        addresses: Vec<Address>,
        from: u64,
        until: u64,
        size: u64,
        config: RangeConfig,
    ) -> Self {
        Self {
            chain,
            addresses: Arc::new(addresses),
            config,
            size: size.clamp(1, config.max),
            next: from,
            until,
            in_flight: VecDeque::new(),
        }
    }

    /// The range size now (to carry into the next fetch).
    pub fn size(&self) -> u64 {
        self.size
    }

    fn issue(&mut self) {
        while self.in_flight.len() < self.config.pipeline && self.next <= self.until {
            let from = self.next;
            let to = from.saturating_add(self.size - 1).min(self.until);
            self.next = to + 1;
            self.in_flight
                .push_back(fetch(self.chain.clone(), self.addresses.clone(), from, to));
        }
    }

    /// The next range in order; `None` once `until` is reached. A range the
    /// node refuses is split and fetched again (down to one block, whose
    /// error is returned).
    pub async fn next(&mut self) -> Option<Result<Fetched, ChainError>> {
        self.issue();
        let pending = self.in_flight.pop_front()?;
        let (from, to, result) = pending.await;
        let result = match result {
            Ok(f) => Ok(f),
            Err(e) if to > from && splittable(&e) => {
                self.narrow();
                self.split(from, to).await
            }
            Err(e) => Err(e),
        };
        if let Ok(f) = &result {
            if f.logs.len() > self.config.max_logs {
                self.narrow();
            } else if f.logs.len() < self.config.max_logs / 4 && to - from + 1 >= self.size {
                self.size = (self.size + self.size / 2).clamp(1, self.config.max);
            }
        }
        Some(result)
    }

    fn narrow(&mut self) {
        self.size = (self.size / 2).max(1);
    }

    /// Fetches `from..=to` in halves (recursively), joining the answers.
    async fn split(&mut self, from: u64, to: u64) -> Result<Fetched, ChainError> {
        let mut logs = Vec::new();
        let mut start = from;
        let mut last = None;
        while start <= to {
            let end = start.saturating_add(self.size - 1).min(to);
            let (_, _, result) =
                fetch(self.chain.clone(), self.addresses.clone(), start, end).await;
            match result {
                Ok(f) => {
                    logs.extend(f.logs);
                    last = Some(f.to);
                    start = end + 1;
                }
                Err(e) if end > start && splittable(&e) => self.narrow(),
                Err(e) => return Err(e),
            }
        }
        Ok(Fetched {
            from,
            to: last.expect("a non-empty range"),
            logs,
        })
    }
}

/// Errors a smaller range may avoid: the node's range or size limits, and
/// answers it could not produce in time.
fn splittable(e: &ChainError) -> bool {
    matches!(
        e,
        ChainError::RangeTooLarge(_) | ChainError::Unavailable(_) | ChainError::Other(_)
    )
}

fn fetch(chain: Arc<dyn ChainPort>, addresses: Arc<Vec<Address>>, from: u64, to: u64) -> Pending {
    Box::pin(async move {
        let result = async {
            // No contract to follow: only the block is needed (an empty
            // address list would match every contract).
            let logs = if addresses.is_empty() {
                Vec::new()
            } else {
                chain
                    .logs(&LogFilter::blocks(from, to).address(addresses.iter().copied()))
                    .await?
            };
            let header = chain
                .header(BlockTag::Number(to))
                .await?
                .ok_or_else(|| ChainError::Other(format!("block {to} not found")))?;
            Ok(Fetched {
                from,
                to: BlockRef {
                    number: header.number,
                    hash: header.hash,
                    parent_hash: header.parent_hash,
                },
                logs,
            })
        }
        .await;
        (from, to, result)
    })
}
