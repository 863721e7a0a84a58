//! Command-line interface. Every command reads the same configuration
//! (defaults → `--config` file → `RWA_*` environment → flags).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::ServeRole;

/// rwa: a digital transfer agent for tokenized real-world assets.
#[derive(Debug, Parser)]
#[command(name = "rwa", version, about, propagate_version = true)]
pub struct Cli {
    /// TOML configuration file; `RWA_*` variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: HTTP API, job workers (roles all and worker).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(DataArgs),
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Organization commands.
    #[command(subcommand)]
    Org(OrgCommand),
    /// API key commands.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Audit trail commands.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Users' sessions.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Background job commands (every organization's jobs and the platform's own).
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Server secret commands.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Sanctions lists (platform-wide).
    #[command(subcommand)]
    Sanctions(SanctionsCommand),
    /// The chain indexer.
    #[command(subcommand)]
    Indexer(IndexerCommand),
}

/// `rwa indexer …`
#[derive(Debug, Subcommand)]
pub enum IndexerCommand {
    /// Compare every indexed holding of a token (or a watched contract) with
    /// the chain's own `balanceOf`/`ownerOf`/`balanceOf(id)` at the indexed
    /// block, and the sum with `totalSupply`: prints every difference, then
    /// `{"block_number","checked","differences"}`; exit 1 on any difference.
    /// Reads the chain at `RWA_CHAIN_RPC_URL`; on the embedded devnet (no
    /// URL) it asks the running server (`--server`, key in `RWA_API_KEY`).
    Verify(VerifyArgs),
}

/// Flags of `rwa indexer verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The token's id.
    #[arg(
        long,
        required_unless_present = "contract",
        conflicts_with = "contract"
    )]
    pub token: Option<String>,
    /// A watched contract's (or a token's) address.
    #[arg(long, value_name = "ADDRESS")]
    pub contract: Option<String>,
    /// Compare at this block (at most the last indexed one); without it,
    /// waits (up to a minute) for the index to be within the confirmation
    /// depth of the head and compares at the last indexed block.
    #[arg(long, value_name = "N")]
    pub at_block: Option<u64>,
    /// The running server to ask on the embedded devnet.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Data directory flag.
    #[command(flatten)]
    pub data: DataArgs,
}

/// `rwa sanctions …`
#[derive(Debug, Subcommand)]
pub enum SanctionsCommand {
    /// Load a new version of a list, atomically: a malformed file changes
    /// nothing and the command names the file and line (exit 2). Loading the
    /// same content again changes nothing. A new version has every approved
    /// investor screened again (a job). Prints `{"list","version",
    /// "content_hash","entries","loaded_at","new"}`.
    Load {
        /// The list's name (1 to 40 of letters, digits, `-`, `_`, `.`).
        #[arg(long)]
        list: String,
        /// `ofac-sdn` (sdn.csv with --alt and --comments) or `csv` (the
        /// generic format, header `name,aliases,addresses,list,reference`).
        #[arg(long, value_parser = ["ofac-sdn", "csv"])]
        format: String,
        /// The list file (`sdn.csv` for ofac-sdn).
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// ofac-sdn: the aliases file (`alt.csv`).
        #[arg(long, value_name = "FILE")]
        alt: Option<PathBuf>,
        /// ofac-sdn: the continued remarks (`sdn_comments.csv`).
        #[arg(long, value_name = "FILE")]
        comments: Option<PathBuf>,
        /// Data directory flag.
        #[command(flatten)]
        data: DataArgs,
    },
    /// Print every list's current version, one JSON line each.
    List(DataArgs),
}

/// `rwa secrets …`
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// After `RWA_SECRET_KEY` changed: re-seal the personal data sealed under
    /// the previous secret (given in `RWA_PREVIOUS_SECRET_KEY`) under the
    /// current one and re-key its search hashes; prints `{"resealed","key_id"}`.
    /// Safe to interrupt and run again.
    Rotate(DataArgs),
}

/// Flags of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Bind address; port 0 picks a free port (logged as `listening addr=…`).
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: Option<String>,
    /// Data directory (SQLite file, generated development secret).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Which parts to run in this process.
    #[arg(long, value_enum, value_name = "ROLE")]
    pub role: Option<ServeRole>,
}

/// Flags of commands that only need the data directory.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// Data directory (SQLite file, generated development secret).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `rwa config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print it with secrets redacted; exit 2 on problems.
    Check(DataArgs),
}

/// `rwa org …`
#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization and its first admin API key; prints `{"org_id","api_key"}`.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Data directory flag.
        #[command(flatten)]
        data: DataArgs,
    },
    /// Set an organization's rate-limit tier (a name under
    /// `[rate_limits.tiers]`, or `default`); every process applies it within
    /// 10 seconds. Prints the organization's id and tier.
    SetTier {
        /// Organization id.
        #[arg(long, value_name = "ID")]
        org: String,
        /// Tier name, or `default` for the configured default tier.
        #[arg(long)]
        tier: String,
        /// Data directory flag.
        #[command(flatten)]
        data: DataArgs,
    },
}

/// `rwa keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key for an organization; prints the key once.
    Create {
        /// Organization id.
        #[arg(long, value_name = "ID")]
        org: String,
        /// admin, operator, compliance or auditor.
        #[arg(long)]
        role: String,
        /// Optional label.
        #[arg(long)]
        label: Option<String>,
        /// Data directory flag.
        #[command(flatten)]
        data: DataArgs,
    },
}

/// `rwa audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash-chained audit trail; exit 1 if any entry fails verification.
    Verify(DataArgs),
}

/// `rwa auth …`
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Start a new access-token signing key now; the previous one verifies
    /// the tokens it signed until they expire. Prints the new key id.
    RotateKey(DataArgs),
}

/// `rwa jobs …`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, oldest first, as JSON lines.
    List {
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Only this state (scheduled, available, running, retryable, completed, discarded, cancelled).
        #[arg(long)]
        state: Option<String>,
        /// At most this many (default 100).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Data directory flag.
        #[command(flatten)]
        data: DataArgs,
    },
    /// Make a job runnable now; a discarded job gets one more attempt.
    Retry {
        /// Job id.
        id: String,
        /// Data directory flag.
        #[command(flatten)]
        data: DataArgs,
    },
    /// Cancel a job that has not finished.
    Cancel {
        /// Job id.
        id: String,
        /// Data directory flag.
        #[command(flatten)]
        data: DataArgs,
    },
}
