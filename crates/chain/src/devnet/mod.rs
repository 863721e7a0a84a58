//! The embedded revm devnet (in progress).
