// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ICompliance} from "./interfaces/ICompliance.sol";
import {IIdentityRegistry} from "./interfaces/IIdentityRegistry.sol";
import {ReasonCodes} from "./ReasonCodes.sol";

/// @title SecurityToken
/// @notice Permissioned ERC-20 following the ERC-3643 model. Every transfer path
/// (transfer, transferFrom, batchTransfer, agentTransfer, batchAgentTransfer) and the
/// `canTransfer` view share `_transferCode`, so they can never disagree.
contract SecurityToken is ERC20, AccessControl {
    bytes32 public constant SUPPLY_ROLE = keccak256("SUPPLY_ROLE");
    bytes32 public constant FREEZE_ROLE = keccak256("FREEZE_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    bytes32 public constant TRANSFER_MANAGER_ROLE = keccak256("TRANSFER_MANAGER_ROLE");
    bytes32 public constant RECOVERY_ROLE = keccak256("RECOVERY_ROLE");

    uint8 private immutable _decimals;
    IIdentityRegistry public immutable identityRegistry;
    ICompliance public immutable compliance;

    bool public paused;
    mapping(address => bool) public isFrozen;
    mapping(address => uint256) public frozenTokens;

    event Paused(address indexed agent);
    event Unpaused(address indexed agent);
    event AddressFrozen(address indexed wallet, bool frozen, address indexed agent);
    event TokensFrozen(address indexed wallet, uint256 amount);
    event TokensUnfrozen(address indexed wallet, uint256 amount);
    event ForcedTransfer(address indexed from, address indexed to, uint256 amount, address indexed agent);
    event RecoverySuccess(address indexed lostWallet, address indexed newWallet, bytes32 indexed investorId);

    error TransferNotAllowed(uint8 reason);
    error LengthMismatch();
    error ZeroAddress();
    error AmountExceedsUnfrozen(address wallet, uint256 amount, uint256 unfrozen);
    error RecoveryNotSameInvestor(address lostWallet, address newWallet);

    constructor(
        string memory name_,
        string memory symbol_,
        uint8 decimals_,
        IIdentityRegistry registry,
        ICompliance compliance_,
        address admin
    ) ERC20(name_, symbol_) {
        if (address(registry) == address(0) || address(compliance_) == address(0) || admin == address(0)) {
            revert ZeroAddress();
        }
        _decimals = decimals_;
        identityRegistry = registry;
        compliance = compliance_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }

    // ---- the one check ----

    /// @notice Everything a transfer from `from` to `to` of `amount` checks, with one reason code per rule.
    function canTransfer(address from, address to, uint256 amount) external view returns (bool ok, uint8 reason) {
        reason = _transferCode(from, to, amount);
        ok = reason == ReasonCodes.OK;
    }

    function _transferCode(address from, address to, uint256 amount) internal view returns (uint8) {
        if (paused) return ReasonCodes.PAUSED;
        if (to == address(0)) return ReasonCodes.INVALID_RECEIVER;
        if (isFrozen[from]) return ReasonCodes.SENDER_FROZEN;
        if (isFrozen[to]) return ReasonCodes.RECEIVER_FROZEN;
        if (amount > balanceOf(from) - frozenTokens[from]) return ReasonCodes.INSUFFICIENT_UNFROZEN_BALANCE;
        uint8 code = _verificationCode(from, ReasonCodes.SENDER_NOT_VERIFIED, ReasonCodes.SENDER_VERIFICATION_EXPIRED);
        if (code != ReasonCodes.OK) return code;
        code = _verificationCode(to, ReasonCodes.RECEIVER_NOT_VERIFIED, ReasonCodes.RECEIVER_VERIFICATION_EXPIRED);
        if (code != ReasonCodes.OK) return code;
        return compliance.check(from, to, amount);
    }

    function _verificationCode(address wallet, uint8 notVerified, uint8 expired) private view returns (uint8) {
        (bytes32 investorId,, uint64 expiresAt) = identityRegistry.identity(wallet);
        if (investorId == bytes32(0)) return notVerified;
        if (expiresAt <= block.timestamp) return expired;
        return ReasonCodes.OK;
    }

    function _checkedTransfer(address from, address to, uint256 amount) private {
        uint8 code = _transferCode(from, to, amount);
        if (code != ReasonCodes.OK) revert TransferNotAllowed(code);
        _transfer(from, to, amount);
    }

    // ---- holder transfers ----

    function transfer(address to, uint256 amount) public override returns (bool) {
        _checkedTransfer(msg.sender, to, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) public override returns (bool) {
        _spendAllowance(from, msg.sender, amount);
        _checkedTransfer(from, to, amount);
        return true;
    }

    function batchTransfer(address[] calldata tos, uint256[] calldata amounts) external {
        if (tos.length != amounts.length) revert LengthMismatch();
        for (uint256 i = 0; i < tos.length; ++i) {
            _checkedTransfer(msg.sender, tos[i], amounts[i]);
        }
    }

    // ---- settlement by the transfer agent ----

    function agentTransfer(address from, address to, uint256 amount) external onlyRole(TRANSFER_MANAGER_ROLE) {
        _checkedTransfer(from, to, amount);
    }

    function batchAgentTransfer(address[] calldata froms, address[] calldata tos, uint256[] calldata amounts)
        external
        onlyRole(TRANSFER_MANAGER_ROLE)
    {
        uint256 n = froms.length;
        if (tos.length != n || amounts.length != n) revert LengthMismatch();
        for (uint256 i = 0; i < n; ++i) {
            _checkedTransfer(froms[i], tos[i], amounts[i]);
        }
    }

    // ---- supply ----

    /// @notice Mints to a verified wallet the compliance rules accept (pause does not stop minting).
    function mint(address to, uint256 amount) public onlyRole(SUPPLY_ROLE) {
        if (to == address(0)) revert TransferNotAllowed(ReasonCodes.INVALID_RECEIVER);
        if (isFrozen[to]) revert TransferNotAllowed(ReasonCodes.RECEIVER_FROZEN);
        uint8 code = _verificationCode(to, ReasonCodes.RECEIVER_NOT_VERIFIED, ReasonCodes.RECEIVER_VERIFICATION_EXPIRED);
        if (code == ReasonCodes.OK) code = compliance.check(address(0), to, amount);
        if (code != ReasonCodes.OK) revert TransferNotAllowed(code);
        _mint(to, amount);
    }

    /// @notice Burns; frozen tokens are unfrozen first when the free balance is not enough.
    function burn(address from, uint256 amount) public onlyRole(SUPPLY_ROLE) {
        _releaseFrozenFor(from, amount);
        _burn(from, amount);
    }

    function batchMint(address[] calldata tos, uint256[] calldata amounts) external {
        if (tos.length != amounts.length) revert LengthMismatch();
        for (uint256 i = 0; i < tos.length; ++i) {
            mint(tos[i], amounts[i]);
        }
    }

    function batchBurn(address[] calldata froms, uint256[] calldata amounts) external {
        if (froms.length != amounts.length) revert LengthMismatch();
        for (uint256 i = 0; i < froms.length; ++i) {
            burn(froms[i], amounts[i]);
        }
    }

    // ---- pause and freeze ----

    function pause() external onlyRole(PAUSER_ROLE) {
        paused = true;
        emit Paused(msg.sender);
    }

    function unpause() external onlyRole(PAUSER_ROLE) {
        paused = false;
        emit Unpaused(msg.sender);
    }

    function setAddressFrozen(address wallet, bool frozen) public onlyRole(FREEZE_ROLE) {
        isFrozen[wallet] = frozen;
        emit AddressFrozen(wallet, frozen, msg.sender);
    }

    function freezePartialTokens(address wallet, uint256 amount) public onlyRole(FREEZE_ROLE) {
        uint256 unfrozen = balanceOf(wallet) - frozenTokens[wallet];
        if (amount > unfrozen) revert AmountExceedsUnfrozen(wallet, amount, unfrozen);
        frozenTokens[wallet] += amount;
        emit TokensFrozen(wallet, amount);
    }

    function unfreezePartialTokens(address wallet, uint256 amount) public onlyRole(FREEZE_ROLE) {
        uint256 frozen = frozenTokens[wallet];
        if (amount > frozen) revert AmountExceedsUnfrozen(wallet, amount, frozen);
        frozenTokens[wallet] = frozen - amount;
        emit TokensUnfrozen(wallet, amount);
    }

    function batchSetAddressFrozen(address[] calldata wallets, bool[] calldata frozen) external {
        if (wallets.length != frozen.length) revert LengthMismatch();
        for (uint256 i = 0; i < wallets.length; ++i) {
            setAddressFrozen(wallets[i], frozen[i]);
        }
    }

    // ---- forced transfer and recovery ----

    /// @notice Moves tokens without the compliance rules, freezes or lockup; still stopped
    /// by pause, and the receiver must be a verified wallet.
    function forcedTransfer(address from, address to, uint256 amount) external onlyRole(RECOVERY_ROLE) {
        if (paused) revert TransferNotAllowed(ReasonCodes.PAUSED);
        if (to == address(0)) revert TransferNotAllowed(ReasonCodes.INVALID_RECEIVER);
        uint8 code = _verificationCode(to, ReasonCodes.RECEIVER_NOT_VERIFIED, ReasonCodes.RECEIVER_VERIFICATION_EXPIRED);
        if (code != ReasonCodes.OK) revert TransferNotAllowed(code);
        _releaseFrozenFor(from, amount);
        _transfer(from, to, amount);
        emit ForcedTransfer(from, to, amount, msg.sender);
    }

    /// @notice Moves the whole balance, frozen tokens, freeze flag and lockup of a lost
    /// wallet to a new wallet registered to the same investor.
    function recoveryAddress(address lostWallet, address newWallet) external onlyRole(RECOVERY_ROLE) {
        bytes32 investorId = identityRegistry.investorOf(lostWallet);
        if (investorId == bytes32(0) || identityRegistry.investorOf(newWallet) != investorId) {
            revert RecoveryNotSameInvestor(lostWallet, newWallet);
        }
        uint256 balance = balanceOf(lostWallet);
        uint256 frozen = frozenTokens[lostWallet];
        if (frozen != 0) {
            frozenTokens[lostWallet] = 0;
            emit TokensUnfrozen(lostWallet, frozen);
        }
        _transfer(lostWallet, newWallet, balance);
        if (frozen != 0) {
            frozenTokens[newWallet] += frozen;
            emit TokensFrozen(newWallet, frozen);
        }
        if (isFrozen[lostWallet]) {
            isFrozen[lostWallet] = false;
            emit AddressFrozen(lostWallet, false, msg.sender);
            isFrozen[newWallet] = true;
            emit AddressFrozen(newWallet, true, msg.sender);
        }
        compliance.recovered(lostWallet, newWallet);
        emit RecoverySuccess(lostWallet, newWallet, investorId);
    }

    function _releaseFrozenFor(address wallet, uint256 amount) private {
        uint256 balance = balanceOf(wallet);
        uint256 free = balance - frozenTokens[wallet];
        if (amount > free) {
            uint256 release = amount - free;
            if (release > frozenTokens[wallet]) release = frozenTokens[wallet];
            frozenTokens[wallet] -= release;
            emit TokensUnfrozen(wallet, release);
        }
    }

    /// @dev Every balance change is reported to compliance so its counters stay exact.
    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (from == address(0)) compliance.created(to, value);
        else if (to == address(0)) compliance.destroyed(from, value);
        else compliance.transferred(from, to, value);
    }
}
