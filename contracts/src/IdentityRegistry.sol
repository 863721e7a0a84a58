// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title IdentityRegistry
/// @notice One per organization, shared by its tokens: wallet -> investor id
/// (keccak256 of the investor UUID), ISO 3166 numeric country, verification expiry.
contract IdentityRegistry is AccessControl {
    /// @notice Agents register, update and remove identities.
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");

    struct Identity {
        bytes32 investorId;
        uint16 country;
        uint64 expiresAt;
    }

    mapping(address => Identity) private _identities;

    event IdentityRegistered(address indexed wallet, bytes32 indexed investorId, uint16 country, uint64 expiresAt);
    event IdentityUpdated(address indexed wallet, bytes32 indexed investorId, uint16 country, uint64 expiresAt);
    event IdentityRemoved(address indexed wallet, bytes32 indexed investorId);

    error ZeroAddress();
    error ZeroInvestorId();
    error AlreadyRegistered(address wallet);
    error NotRegistered(address wallet);
    error LengthMismatch();

    constructor(address admin) {
        if (admin == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(REGISTRAR_ROLE, admin);
    }

    function registerIdentity(address wallet, bytes32 investorId, uint16 country, uint64 expiresAt)
        public
        onlyRole(REGISTRAR_ROLE)
    {
        if (wallet == address(0)) revert ZeroAddress();
        if (investorId == bytes32(0)) revert ZeroInvestorId();
        if (_identities[wallet].investorId != bytes32(0)) revert AlreadyRegistered(wallet);
        _identities[wallet] = Identity(investorId, country, expiresAt);
        emit IdentityRegistered(wallet, investorId, country, expiresAt);
    }

    /// @notice Updates country and expiry; the investor id of a wallet never changes
    /// (remove and register again to move a wallet to another investor).
    function updateIdentity(address wallet, uint16 country, uint64 expiresAt) public onlyRole(REGISTRAR_ROLE) {
        Identity storage id = _identities[wallet];
        if (id.investorId == bytes32(0)) revert NotRegistered(wallet);
        id.country = country;
        id.expiresAt = expiresAt;
        emit IdentityUpdated(wallet, id.investorId, country, expiresAt);
    }

    function removeIdentity(address wallet) public onlyRole(REGISTRAR_ROLE) {
        bytes32 investorId = _identities[wallet].investorId;
        if (investorId == bytes32(0)) revert NotRegistered(wallet);
        delete _identities[wallet];
        emit IdentityRemoved(wallet, investorId);
    }

    function batchRegisterIdentity(
        address[] calldata wallets,
        bytes32[] calldata investorIds,
        uint16[] calldata countries,
        uint64[] calldata expiries
    ) external {
        uint256 n = wallets.length;
        if (investorIds.length != n || countries.length != n || expiries.length != n) revert LengthMismatch();
        for (uint256 i = 0; i < n; ++i) {
            registerIdentity(wallets[i], investorIds[i], countries[i], expiries[i]);
        }
    }

    function batchUpdateIdentity(address[] calldata wallets, uint16[] calldata countries, uint64[] calldata expiries)
        external
    {
        uint256 n = wallets.length;
        if (countries.length != n || expiries.length != n) revert LengthMismatch();
        for (uint256 i = 0; i < n; ++i) {
            updateIdentity(wallets[i], countries[i], expiries[i]);
        }
    }

    function batchRemoveIdentity(address[] calldata wallets) external {
        for (uint256 i = 0; i < wallets.length; ++i) {
            removeIdentity(wallets[i]);
        }
    }

    function identity(address wallet) external view returns (bytes32 investorId, uint16 country, uint64 expiresAt) {
        Identity memory id = _identities[wallet];
        return (id.investorId, id.country, id.expiresAt);
    }

    function investorOf(address wallet) external view returns (bytes32) {
        return _identities[wallet].investorId;
    }

    function countryOf(address wallet) external view returns (uint16) {
        return _identities[wallet].country;
    }

    function isRegistered(address wallet) external view returns (bool) {
        return _identities[wallet].investorId != bytes32(0);
    }

    /// @notice Registered and not expired at the current block timestamp.
    function isVerified(address wallet) external view returns (bool) {
        Identity memory id = _identities[wallet];
        return id.investorId != bytes32(0) && id.expiresAt > block.timestamp;
    }
}
