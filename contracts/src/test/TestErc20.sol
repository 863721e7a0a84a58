// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestErc20
/// @notice Test and benchmark fixture only, never deployed by the platform: a
/// plain ERC-20 anyone can mint, with `scatter` to emit many transfers in one
/// transaction (the indexer's tests and backfill benchmark).
contract TestErc20 is ERC20 {
    constructor() ERC20("Test", "TST") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Sends `amount` from the caller to each of `to`.
    function scatter(address[] calldata to, uint256 amount) external {
        for (uint256 i = 0; i < to.length; i++) {
            _transfer(msg.sender, to[i], amount);
        }
    }
}
