// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @notice What the token and compliance read from the organization's identity registry.
interface IIdentityRegistry {
    function identity(address wallet) external view returns (bytes32 investorId, uint16 country, uint64 expiresAt);
    function investorOf(address wallet) external view returns (bytes32);
}
