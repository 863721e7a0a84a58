//! Logs into events. `Transfer(address,address,uint256)` has one signature
//! for ERC-20 and ERC-721: the value is data (three topics) for ERC-20, the
//! token id a topic (four) for ERC-721, so the topic count tells them apart.
//! A log that matches no known event, or whose topics or data do not fit
//! the event, is [`EventKind::Undecodable`] with the reason: the caller
//! records and counts it, never drops it.

use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::SolEvent;
use rwa_chain::contracts::{Compliance, IdentityRegistry, SecurityToken};
use rwa_domain::chain::Log;
use rwa_domain::onchain::{EventKind, OnchainEvent};

alloy::sol! {
    /// ERC-1155 single transfer.
    event TransferSingle(address indexed operator, address indexed from, address indexed to, uint256 id, uint256 value);
    /// ERC-1155 batch transfer.
    event TransferBatch(address indexed operator, address indexed from, address indexed to, uint256[] ids, uint256[] values);
    /// ERC-721 and ERC-1155 operator approval.
    event ApprovalForAll(address indexed owner, address indexed operator, bool approved);
}

/// Decodes a log found on `chain_id`.
pub fn decode(chain_id: u64, log: &Log) -> OnchainEvent {
    OnchainEvent {
        chain_id,
        block_number: log.block_number,
        block_hash: log.block_hash,
        tx_hash: log.transaction_hash,
        log_index: log.log_index,
        contract: log.address,
        kind: kind(log),
    }
}

fn undecodable(reason: impl Into<String>) -> EventKind {
    EventKind::Undecodable {
        reason: reason.into(),
    }
}

/// Decodes with `E`, or says why not.
fn with<E: SolEvent>(log: &Log, f: impl FnOnce(E) -> EventKind) -> EventKind {
    match E::decode_raw_log(log.topics.iter().copied(), &log.data) {
        Ok(event) => f(event),
        Err(e) => undecodable(format!("{}: {e}", E::SIGNATURE)),
    }
}

fn word_address(topic: &B256) -> Option<Address> {
    // An address topic is left-padded with twelve zero bytes.
    topic[..12]
        .iter()
        .all(|b| *b == 0)
        .then(|| Address::from_slice(&topic[12..]))
}

/// `Transfer` told apart by its topic count.
fn transfer(log: &Log) -> EventKind {
    match log.topics.len() {
        3 => with::<SecurityToken::Transfer>(log, |e| EventKind::Erc20Transfer {
            from: e.from,
            to: e.to,
            value: e.value,
        }),
        4 => {
            if !log.data.is_empty() {
                return undecodable(format!(
                    "ERC-721 Transfer with {} bytes of data (expected none)",
                    log.data.len()
                ));
            }
            match (word_address(&log.topics[1]), word_address(&log.topics[2])) {
                (Some(from), Some(to)) => EventKind::Erc721Transfer {
                    from,
                    to,
                    token_id: U256::from_be_bytes(log.topics[3].0),
                },
                _ => undecodable("ERC-721 Transfer whose from or to topic is not an address"),
            }
        }
        n => undecodable(format!(
            "Transfer with {n} topics (ERC-20 has 3, ERC-721 4)"
        )),
    }
}

fn kind(log: &Log) -> EventKind {
    let Some(topic0) = log.topics.first() else {
        return undecodable("anonymous log (no topics)");
    };
    match *topic0 {
        SecurityToken::Transfer::SIGNATURE_HASH => transfer(log),
        TransferSingle::SIGNATURE_HASH => {
            with::<TransferSingle>(log, |e| EventKind::Erc1155Transfer {
                operator: e.operator,
                from: e.from,
                to: e.to,
                ids: vec![e.id],
                values: vec![e.value],
            })
        }
        TransferBatch::SIGNATURE_HASH => with::<TransferBatch>(log, |e| {
            if e.ids.len() != e.values.len() {
                return undecodable(format!(
                    "TransferBatch with {} ids and {} values",
                    e.ids.len(),
                    e.values.len()
                ));
            }
            EventKind::Erc1155Transfer {
                operator: e.operator,
                from: e.from,
                to: e.to,
                ids: e.ids,
                values: e.values,
            }
        }),
        SecurityToken::AddressFrozen::SIGNATURE_HASH => {
            with::<SecurityToken::AddressFrozen>(log, |e| EventKind::AddressFrozen {
                wallet: e.wallet,
                frozen: e.frozen,
            })
        }
        SecurityToken::TokensFrozen::SIGNATURE_HASH => {
            with::<SecurityToken::TokensFrozen>(log, |e| EventKind::TokensFrozen {
                wallet: e.wallet,
                amount: e.amount,
            })
        }
        SecurityToken::TokensUnfrozen::SIGNATURE_HASH => {
            with::<SecurityToken::TokensUnfrozen>(log, |e| EventKind::TokensUnfrozen {
                wallet: e.wallet,
                amount: e.amount,
            })
        }
        SecurityToken::Paused::SIGNATURE_HASH => {
            with::<SecurityToken::Paused>(log, |_| EventKind::Paused)
        }
        SecurityToken::Unpaused::SIGNATURE_HASH => {
            with::<SecurityToken::Unpaused>(log, |_| EventKind::Unpaused)
        }
        SecurityToken::ForcedTransfer::SIGNATURE_HASH => {
            with::<SecurityToken::ForcedTransfer>(log, |e| EventKind::ForcedTransfer {
                from: e.from,
                to: e.to,
                amount: e.amount,
            })
        }
        SecurityToken::RecoverySuccess::SIGNATURE_HASH => {
            with::<SecurityToken::RecoverySuccess>(log, |e| EventKind::Recovery {
                lost: e.lostWallet,
                new: e.newWallet,
                investor: e.investorId,
            })
        }
        IdentityRegistry::IdentityRegistered::SIGNATURE_HASH => {
            with::<IdentityRegistry::IdentityRegistered>(log, |e| EventKind::IdentityRegistered {
                wallet: e.wallet,
                investor: e.investorId,
                country: e.country,
                expires_at: e.expiresAt,
                update: false,
            })
        }
        IdentityRegistry::IdentityUpdated::SIGNATURE_HASH => {
            with::<IdentityRegistry::IdentityUpdated>(log, |e| EventKind::IdentityRegistered {
                wallet: e.wallet,
                investor: e.investorId,
                country: e.country,
                expires_at: e.expiresAt,
                update: true,
            })
        }
        IdentityRegistry::IdentityRemoved::SIGNATURE_HASH => {
            with::<IdentityRegistry::IdentityRemoved>(log, |e| EventKind::IdentityRemoved {
                wallet: e.wallet,
                investor: e.investorId,
            })
        }
        other => compliance(log, other).unwrap_or_else(|| ignored(other)),
    }
}

fn changed(name: &str, fields: &[(&str, String)]) -> EventKind {
    EventKind::ComplianceChanged {
        name: name.to_owned(),
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    }
}

/// The compliance contract's rule changes and lockups.
fn compliance(log: &Log, topic0: B256) -> Option<EventKind> {
    use Compliance as C;
    Some(match topic0 {
        C::LockupSet::SIGNATURE_HASH => with::<C::LockupSet>(log, |e| {
            changed(
                "LockupSet",
                &[
                    ("wallet", e.wallet.to_string()),
                    ("unlock_at", e.unlockAt.to_string()),
                ],
            )
        }),
        C::CountryAllowed::SIGNATURE_HASH => with::<C::CountryAllowed>(log, |e| {
            changed(
                "CountryAllowed",
                &[
                    ("country", e.country.to_string()),
                    ("allowed", e.allowed.to_string()),
                ],
            )
        }),
        C::CountryBlocked::SIGNATURE_HASH => with::<C::CountryBlocked>(log, |e| {
            changed(
                "CountryBlocked",
                &[
                    ("country", e.country.to_string()),
                    ("blocked", e.blocked.to_string()),
                ],
            )
        }),
        C::MaxBalancePerInvestorSet::SIGNATURE_HASH => {
            with::<C::MaxBalancePerInvestorSet>(log, |e| {
                changed(
                    "MaxBalancePerInvestorSet",
                    &[("max_balance", e.maxBalance.to_string())],
                )
            })
        }
        C::MaxHoldersSet::SIGNATURE_HASH => with::<C::MaxHoldersSet>(log, |e| {
            changed(
                "MaxHoldersSet",
                &[("max_holders", e.maxHolders.to_string())],
            )
        }),
        C::LockupSecondsSet::SIGNATURE_HASH => with::<C::LockupSecondsSet>(log, |e| {
            changed(
                "LockupSecondsSet",
                &[("lockup_seconds", e.lockupSeconds.to_string())],
            )
        }),
        _ => return None,
    })
}

/// Events the platform does not act on, by name; anything else is unknown.
fn ignored(topic0: B256) -> EventKind {
    let known = [
        (SecurityToken::Approval::SIGNATURE_HASH, "Approval"),
        (SecurityToken::RoleGranted::SIGNATURE_HASH, "RoleGranted"),
        (SecurityToken::RoleRevoked::SIGNATURE_HASH, "RoleRevoked"),
        (
            SecurityToken::RoleAdminChanged::SIGNATURE_HASH,
            "RoleAdminChanged",
        ),
        (
            Compliance::OwnershipTransferred::SIGNATURE_HASH,
            "OwnershipTransferred",
        ),
        (Compliance::TokenBound::SIGNATURE_HASH, "TokenBound"),
        (ApprovalForAll::SIGNATURE_HASH, "ApprovalForAll"),
    ];
    match known.iter().find(|(hash, _)| *hash == topic0) {
        Some((_, name)) => EventKind::Ignored {
            name: (*name).to_owned(),
        },
        None => undecodable(format!("unknown event {topic0}")),
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Bytes, LogData};

    use super::*;

    fn log(data: LogData) -> Log {
        Log {
            address: Address::repeat_byte(0xcc),
            topics: data.topics().to_vec(),
            data: data.data.clone(),
            block_hash: B256::repeat_byte(0xbb),
            block_number: 7,
            transaction_hash: B256::repeat_byte(0xaa),
            transaction_index: 0,
            log_index: 3,
            removed: false,
        }
    }

    fn a(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    #[test]
    fn erc20_and_erc721_transfers_are_told_apart_by_topic_count() {
        let erc20 = SecurityToken::Transfer {
            from: a(1),
            to: a(2),
            value: U256::from(5),
        };
        let e = decode(31337, &log(erc20.encode_log_data()));
        assert_eq!(
            e.kind,
            EventKind::Erc20Transfer {
                from: a(1),
                to: a(2),
                value: U256::from(5)
            }
        );
        assert_eq!(
            (e.chain_id, e.block_number, e.log_index, e.contract),
            (31337, 7, 3, a(0xcc))
        );

        let mut nft = log(erc20.encode_log_data());
        nft.topics.push(B256::from(U256::from(42)));
        nft.data = Bytes::new();
        assert_eq!(
            decode(1, &nft).kind,
            EventKind::Erc721Transfer {
                from: a(1),
                to: a(2),
                token_id: U256::from(42)
            }
        );
        let mut odd = nft.clone();
        odd.topics.push(B256::ZERO);
        assert!(
            matches!(decode(1, &odd).kind, EventKind::Undecodable { reason } if reason.contains("5 topics"))
        );
        let mut truncated = log(erc20.encode_log_data());
        truncated.data = Bytes::from(vec![0u8; 7]);
        assert!(matches!(
            decode(1, &truncated).kind,
            EventKind::Undecodable { .. }
        ));
    }

    #[test]
    fn erc1155_transfers_carry_their_real_ids_and_values() {
        let single = TransferSingle {
            operator: a(9),
            from: a(1),
            to: a(2),
            id: U256::from(77),
            value: U256::from(3),
        };
        assert_eq!(
            decode(1, &log(single.encode_log_data())).kind,
            EventKind::Erc1155Transfer {
                operator: a(9),
                from: a(1),
                to: a(2),
                ids: vec![U256::from(77)],
                values: vec![U256::from(3)],
            }
        );
        let batch = TransferBatch {
            operator: a(9),
            from: Address::ZERO,
            to: a(2),
            ids: vec![U256::from(1), U256::from(2)],
            values: vec![U256::from(10), U256::from(20)],
        };
        assert_eq!(
            decode(1, &log(batch.encode_log_data())).kind,
            EventKind::Erc1155Transfer {
                operator: a(9),
                from: Address::ZERO,
                to: a(2),
                ids: vec![U256::from(1), U256::from(2)],
                values: vec![U256::from(10), U256::from(20)],
            }
        );
        let uneven = TransferBatch {
            operator: a(9),
            from: a(1),
            to: a(2),
            ids: vec![U256::from(1), U256::from(2)],
            values: vec![U256::from(10)],
        };
        match decode(1, &log(uneven.encode_log_data())).kind {
            EventKind::Undecodable { reason } => {
                assert!(reason.contains("2 ids and 1 values"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_platforms_own_events_are_decoded() {
        let cases: Vec<(LogData, EventKind)> = vec![
            (
                SecurityToken::AddressFrozen {
                    wallet: a(1),
                    frozen: true,
                    agent: a(5),
                }
                .encode_log_data(),
                EventKind::AddressFrozen {
                    wallet: a(1),
                    frozen: true,
                },
            ),
            (
                SecurityToken::TokensFrozen {
                    wallet: a(1),
                    amount: U256::from(4),
                }
                .encode_log_data(),
                EventKind::TokensFrozen {
                    wallet: a(1),
                    amount: U256::from(4),
                },
            ),
            (
                SecurityToken::TokensUnfrozen {
                    wallet: a(1),
                    amount: U256::from(4),
                }
                .encode_log_data(),
                EventKind::TokensUnfrozen {
                    wallet: a(1),
                    amount: U256::from(4),
                },
            ),
            (
                SecurityToken::Paused { agent: a(5) }.encode_log_data(),
                EventKind::Paused,
            ),
            (
                SecurityToken::Unpaused { agent: a(5) }.encode_log_data(),
                EventKind::Unpaused,
            ),
            (
                SecurityToken::ForcedTransfer {
                    from: a(1),
                    to: a(2),
                    amount: U256::from(9),
                    agent: a(5),
                }
                .encode_log_data(),
                EventKind::ForcedTransfer {
                    from: a(1),
                    to: a(2),
                    amount: U256::from(9),
                },
            ),
            (
                SecurityToken::RecoverySuccess {
                    lostWallet: a(1),
                    newWallet: a(2),
                    investorId: B256::repeat_byte(7),
                }
                .encode_log_data(),
                EventKind::Recovery {
                    lost: a(1),
                    new: a(2),
                    investor: B256::repeat_byte(7),
                },
            ),
            (
                IdentityRegistry::IdentityRegistered {
                    wallet: a(1),
                    investorId: B256::repeat_byte(7),
                    country: 250,
                    expiresAt: 99,
                }
                .encode_log_data(),
                EventKind::IdentityRegistered {
                    wallet: a(1),
                    investor: B256::repeat_byte(7),
                    country: 250,
                    expires_at: 99,
                    update: false,
                },
            ),
            (
                IdentityRegistry::IdentityUpdated {
                    wallet: a(1),
                    investorId: B256::repeat_byte(7),
                    country: 276,
                    expiresAt: 98,
                }
                .encode_log_data(),
                EventKind::IdentityRegistered {
                    wallet: a(1),
                    investor: B256::repeat_byte(7),
                    country: 276,
                    expires_at: 98,
                    update: true,
                },
            ),
            (
                IdentityRegistry::IdentityRemoved {
                    wallet: a(1),
                    investorId: B256::repeat_byte(7),
                }
                .encode_log_data(),
                EventKind::IdentityRemoved {
                    wallet: a(1),
                    investor: B256::repeat_byte(7),
                },
            ),
            (
                Compliance::MaxHoldersSet {
                    maxHolders: U256::from(99),
                }
                .encode_log_data(),
                EventKind::ComplianceChanged {
                    name: "MaxHoldersSet".into(),
                    fields: vec![("max_holders".into(), "99".into())],
                },
            ),
            (
                SecurityToken::RoleGranted {
                    role: B256::ZERO,
                    account: a(1),
                    sender: a(2),
                }
                .encode_log_data(),
                EventKind::Ignored {
                    name: "RoleGranted".into(),
                },
            ),
        ];
        for (data, expected) in cases {
            assert_eq!(decode(1, &log(data)).kind, expected);
        }
    }

    #[test]
    fn nothing_unknown_is_dropped() {
        let mut anonymous = log(SecurityToken::Paused { agent: a(5) }.encode_log_data());
        anonymous.topics.clear();
        assert!(
            matches!(decode(1, &anonymous).kind, EventKind::Undecodable { reason } if reason.contains("anonymous"))
        );
        let mut unknown = anonymous.clone();
        unknown.topics.push(B256::repeat_byte(0x42));
        assert!(
            matches!(decode(1, &unknown).kind, EventKind::Undecodable { reason } if reason.contains("unknown event"))
        );
        let mut bad_frozen = log(SecurityToken::AddressFrozen {
            wallet: a(1),
            frozen: true,
            agent: a(5),
        }
        .encode_log_data());
        bad_frozen.topics.pop();
        assert!(matches!(
            decode(1, &bad_frozen).kind,
            EventKind::Undecodable { .. }
        ));
    }
}
