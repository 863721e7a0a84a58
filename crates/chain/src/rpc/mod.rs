//! The JSON-RPC adapter (in progress).
