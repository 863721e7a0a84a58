// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @notice The compliance contract as the bound token sees it.
interface ICompliance {
    /// @return reason 0 when the rules allow `from` (address(0) for a mint) to send `amount` to `to`.
    function check(address from, address to, uint256 amount) external view returns (uint8 reason);
    function transferred(address from, address to, uint256 amount) external;
    function created(address to, uint256 amount) external;
    function destroyed(address from, uint256 amount) external;
    function recovered(address lostWallet, address newWallet) external;
}
