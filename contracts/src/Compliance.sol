// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ICompliance} from "./interfaces/ICompliance.sol";
import {IIdentityRegistry} from "./interfaces/IIdentityRegistry.sol";
import {ReasonCodes} from "./ReasonCodes.sol";

/// @title Compliance
/// @notice Rules of one token: country allow-list and block-list, max balance per
/// investor (summed over the investor's wallets), max number of holders (investors,
/// not wallets), lockup after each mint per wallet. The bound token reports every
/// balance change so the counters stay exact (forced transfers and recovery included).
contract Compliance is Ownable, ICompliance {
    IIdentityRegistry public immutable identityRegistry;
    address public token;

    mapping(uint16 => bool) public countryAllowed;
    uint256 public allowedCountryCount;
    mapping(uint16 => bool) public countryBlocked;
    uint256 public maxBalancePerInvestor; // 0: no limit
    uint256 public maxHolders; // 0: no limit
    uint64 public lockupSeconds;

    mapping(address => uint64) public unlockAt;
    /// @notice The investor key a wallet's balance is accounted under (fixed while it holds tokens).
    mapping(address => bytes32) public accountedInvestor;
    mapping(address => uint256) public walletBalance;
    mapping(bytes32 => uint256) public investorBalance;
    uint256 public holderCount;

    event TokenBound(address indexed token);
    event CountryAllowed(uint16 indexed country, bool allowed);
    event CountryBlocked(uint16 indexed country, bool blocked);
    event MaxBalancePerInvestorSet(uint256 maxBalance);
    event MaxHoldersSet(uint256 maxHolders);
    event LockupSecondsSet(uint64 lockupSeconds);
    event LockupSet(address indexed wallet, uint64 unlockAt);

    error OnlyToken();
    error TokenAlreadyBound();
    error ZeroAddress();

    modifier onlyToken() {
        if (msg.sender != token) revert OnlyToken();
        _;
    }

    constructor(
        address owner_,
        IIdentityRegistry registry,
        uint16[] memory allowCountries,
        uint16[] memory blockCountries,
        uint256 maxBalance,
        uint256 maxHolders_,
        uint64 lockup
    ) Ownable(owner_) {
        if (address(registry) == address(0)) revert ZeroAddress();
        identityRegistry = registry;
        for (uint256 i = 0; i < allowCountries.length; ++i) {
            _setAllowed(allowCountries[i], true);
        }
        for (uint256 i = 0; i < blockCountries.length; ++i) {
            _setBlocked(blockCountries[i], true);
        }
        maxBalancePerInvestor = maxBalance;
        emit MaxBalancePerInvestorSet(maxBalance);
        maxHolders = maxHolders_;
        emit MaxHoldersSet(maxHolders_);
        lockupSeconds = lockup;
        emit LockupSecondsSet(lockup);
    }

    /// @notice Binds the token once; only it may report balance changes afterwards.
    function bindToken(address token_) external onlyOwner {
        if (token != address(0)) revert TokenAlreadyBound();
        if (token_ == address(0)) revert ZeroAddress();
        token = token_;
        emit TokenBound(token_);
    }

    // ---- rules (owner) ----

    function setCountryAllowed(uint16 country, bool allowed) external onlyOwner {
        _setAllowed(country, allowed);
    }

    function setCountryBlocked(uint16 country, bool blocked) external onlyOwner {
        _setBlocked(country, blocked);
    }

    function setMaxBalancePerInvestor(uint256 maxBalance) external onlyOwner {
        maxBalancePerInvestor = maxBalance;
        emit MaxBalancePerInvestorSet(maxBalance);
    }

    function setMaxHolders(uint256 maxHolders_) external onlyOwner {
        maxHolders = maxHolders_;
        emit MaxHoldersSet(maxHolders_);
    }

    function setLockupSeconds(uint64 lockup) external onlyOwner {
        lockupSeconds = lockup;
        emit LockupSecondsSet(lockup);
    }

    /// @notice Changes several rules in one transaction, so a new rule set takes
    /// effect whole or not at all: countries added to and removed from each list,
    /// then the three limits (0: no limit; lockup 0: none).
    function setRules(
        uint16[] calldata allowAdd,
        uint16[] calldata allowRemove,
        uint16[] calldata blockAdd,
        uint16[] calldata blockRemove,
        uint256 maxBalance,
        uint256 maxHolders_,
        uint64 lockup
    ) external onlyOwner {
        for (uint256 i = 0; i < allowRemove.length; ++i) {
            _setAllowed(allowRemove[i], false);
        }
        for (uint256 i = 0; i < allowAdd.length; ++i) {
            _setAllowed(allowAdd[i], true);
        }
        for (uint256 i = 0; i < blockRemove.length; ++i) {
            _setBlocked(blockRemove[i], false);
        }
        for (uint256 i = 0; i < blockAdd.length; ++i) {
            _setBlocked(blockAdd[i], true);
        }
        if (maxBalancePerInvestor != maxBalance) {
            maxBalancePerInvestor = maxBalance;
            emit MaxBalancePerInvestorSet(maxBalance);
        }
        if (maxHolders != maxHolders_) {
            maxHolders = maxHolders_;
            emit MaxHoldersSet(maxHolders_);
        }
        if (lockupSeconds != lockup) {
            lockupSeconds = lockup;
            emit LockupSecondsSet(lockup);
        }
    }

    function _setAllowed(uint16 country, bool allowed) private {
        if (countryAllowed[country] != allowed) {
            countryAllowed[country] = allowed;
            if (allowed) ++allowedCountryCount;
            else --allowedCountryCount;
        }
        emit CountryAllowed(country, allowed);
    }

    function _setBlocked(uint16 country, bool blocked) private {
        countryBlocked[country] = blocked;
        emit CountryBlocked(country, blocked);
    }

    // ---- checks ----

    /// @notice The investor key a wallet is (or would be) accounted under.
    function investorKeyOf(address wallet) public view returns (bytes32) {
        if (walletBalance[wallet] != 0) return accountedInvestor[wallet];
        bytes32 id = identityRegistry.investorOf(wallet);
        return id != bytes32(0) ? id : bytes32(uint256(uint160(wallet)));
    }

    /// @inheritdoc ICompliance
    function check(address from, address to, uint256 amount) external view returns (uint8) {
        if (from != address(0) && unlockAt[from] > block.timestamp) return ReasonCodes.LOCKUP_ACTIVE;
        uint16 country = identityRegistry.investorOf(to) == bytes32(0) ? 0 : _countryOf(to);
        if (allowedCountryCount != 0 && !countryAllowed[country]) return ReasonCodes.COUNTRY_NOT_ALLOWED;
        if (countryBlocked[country]) return ReasonCodes.COUNTRY_BLOCKED;
        bytes32 toKey = investorKeyOf(to);
        bytes32 fromKey = from == address(0) ? bytes32(0) : investorKeyOf(from);
        if (toKey == fromKey) return ReasonCodes.OK; // same investor: totals unchanged
        uint256 toBalance = investorBalance[toKey];
        if (maxBalancePerInvestor != 0 && toBalance + amount > maxBalancePerInvestor) {
            return ReasonCodes.MAX_BALANCE_EXCEEDED;
        }
        if (maxHolders != 0 && toBalance == 0 && amount != 0) {
            bool senderLeaves = from != address(0) && investorBalance[fromKey] == amount;
            if (!senderLeaves && holderCount >= maxHolders) return ReasonCodes.MAX_HOLDERS_EXCEEDED;
        }
        return ReasonCodes.OK;
    }

    function _countryOf(address wallet) private view returns (uint16 country) {
        (, country,) = identityRegistry.identity(wallet);
    }

    // ---- hooks (bound token only) ----

    /// @inheritdoc ICompliance
    function transferred(address from, address to, uint256 amount) external onlyToken {
        _debit(from, amount);
        _credit(to, amount);
    }

    /// @inheritdoc ICompliance
    function created(address to, uint256 amount) external onlyToken {
        _credit(to, amount);
        uint64 until = uint64(block.timestamp) + lockupSeconds;
        unlockAt[to] = until;
        emit LockupSet(to, until);
    }

    /// @inheritdoc ICompliance
    function destroyed(address from, uint256 amount) external onlyToken {
        _debit(from, amount);
    }

    /// @inheritdoc ICompliance
    function recovered(address lostWallet, address newWallet) external onlyToken {
        uint64 until = unlockAt[lostWallet];
        if (until > unlockAt[newWallet]) {
            unlockAt[newWallet] = until;
            emit LockupSet(newWallet, until);
        }
        if (until != 0) {
            delete unlockAt[lostWallet];
            emit LockupSet(lostWallet, 0);
        }
    }

    function _credit(address wallet, uint256 amount) private {
        if (amount == 0) return;
        bytes32 key = investorKeyOf(wallet);
        if (walletBalance[wallet] == 0) accountedInvestor[wallet] = key;
        walletBalance[wallet] += amount;
        if (investorBalance[key] == 0) ++holderCount;
        investorBalance[key] += amount;
    }

    function _debit(address wallet, uint256 amount) private {
        if (amount == 0) return;
        bytes32 key = accountedInvestor[wallet];
        walletBalance[wallet] -= amount;
        investorBalance[key] -= amount;
        if (investorBalance[key] == 0) --holderCount;
        if (walletBalance[wallet] == 0) delete accountedInvestor[wallet];
    }
}
