// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @notice One code per transfer rule, shared by `canTransfer` and the
/// `TransferNotAllowed(uint8)` revert. Never renumber: the platform decodes them.
library ReasonCodes {
    uint8 internal constant OK = 0;
    uint8 internal constant PAUSED = 1;
    uint8 internal constant SENDER_FROZEN = 2;
    uint8 internal constant RECEIVER_FROZEN = 3;
    uint8 internal constant INSUFFICIENT_UNFROZEN_BALANCE = 4;
    uint8 internal constant SENDER_NOT_VERIFIED = 5;
    uint8 internal constant RECEIVER_NOT_VERIFIED = 6;
    uint8 internal constant SENDER_VERIFICATION_EXPIRED = 7;
    uint8 internal constant RECEIVER_VERIFICATION_EXPIRED = 8;
    uint8 internal constant LOCKUP_ACTIVE = 9;
    uint8 internal constant COUNTRY_NOT_ALLOWED = 10;
    uint8 internal constant COUNTRY_BLOCKED = 11;
    uint8 internal constant MAX_BALANCE_EXCEEDED = 12;
    uint8 internal constant MAX_HOLDERS_EXCEEDED = 13;
    uint8 internal constant INVALID_RECEIVER = 14;
}
