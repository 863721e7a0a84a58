// Compiles BenchToken.sol with the repository's pinned solc for the devnet's
// EVM version and writes the creation bytecode to BenchToken.bin.
// Usage: node bench/devnet/compile.js
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const dir = __dirname;
const input = {
  language: 'Solidity',
  sources: { 'BenchToken.sol': { content: fs.readFileSync(path.join(dir, 'BenchToken.sol'), 'utf8') } },
  settings: {
    evmVersion: 'prague',
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { '*': { '*': ['evm.bytecode.object'] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === 'error');
if (errors.length) {
  console.error(errors.map((e) => e.formattedMessage).join('\n'));
  process.exit(1);
}
const bin = out.contracts['BenchToken.sol'].BenchToken.evm.bytecode.object;
fs.writeFileSync(path.join(dir, 'BenchToken.bin'), bin);
console.log(`BenchToken.bin: ${bin.length / 2} bytes (solc ${solc.version()})`);
