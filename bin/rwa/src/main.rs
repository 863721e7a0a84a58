//! The `rwa` command: parses arguments, loads and validates configuration
//! (exit 2 with one line per problem), starts telemetry, runs the command.

use clap::Parser;
use rwa::cli::{
    AuditCommand, AuthCommand, Cli, Command, ConfigCommand, DataArgs, IndexerCommand, JobsCommand,
    KeysCommand, OrgCommand, SanctionsCommand, SecretsCommand, VerifyArgs,
};
use rwa::commands::{self, EXIT_USAGE};
use rwa::config::{Config, Overrides};

fn main() {
    let cli = Cli::parse();
    let overrides = match &cli.command {
        Command::Serve(a) => Overrides {
            addr: a.addr.clone(),
            data_dir: a.data_dir.clone(),
            role: a.role,
        },
        Command::Migrate(d)
        | Command::Config(ConfigCommand::Check(d))
        | Command::Org(OrgCommand::Create { data: d, .. } | OrgCommand::SetTier { data: d, .. })
        | Command::Keys(KeysCommand::Create { data: d, .. })
        | Command::Audit(AuditCommand::Verify(d))
        | Command::Auth(AuthCommand::RotateKey(d))
        | Command::Secrets(SecretsCommand::Rotate(d))
        | Command::Sanctions(SanctionsCommand::Load { data: d, .. } | SanctionsCommand::List(d))
        | Command::Indexer(IndexerCommand::Verify(VerifyArgs { data: d, .. }))
        | Command::Jobs(
            JobsCommand::List { data: d, .. }
            | JobsCommand::Retry { data: d, .. }
            | JobsCommand::Cancel { data: d, .. },
        ) => data_overrides(d),
    };
    let config = match Config::load(cli.config.as_deref(), overrides) {
        Ok(c) => c,
        Err(errors) => {
            for line in &errors.0 {
                eprintln!("config error: {line}");
            }
            std::process::exit(EXIT_USAGE);
        }
    };
    if let Command::Config(ConfigCommand::Check(_)) = cli.command {
        std::process::exit(commands::config_check(&config));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(async move {
        let _telemetry =
            match rwa::telemetry::init(config.log_format, config.otlp_endpoint.as_deref()) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("telemetry: {e:#}");
                    return EXIT_USAGE;
                }
            };
        let result = match cli.command {
            Command::Serve(_) => commands::serve(config).await,
            Command::Migrate(_) => commands::migrate(config).await,
            Command::Config(_) => unreachable!("handled above"),
            Command::Org(OrgCommand::Create { name, .. }) => {
                commands::org_create(config, &name).await
            }
            Command::Org(OrgCommand::SetTier { org, tier, .. }) => {
                commands::org_set_tier(config, &org, &tier).await
            }
            Command::Keys(KeysCommand::Create {
                org, role, label, ..
            }) => commands::keys_create(config, &org, &role, label.as_deref()).await,
            Command::Audit(AuditCommand::Verify(_)) => commands::audit_verify(config).await,
            Command::Auth(AuthCommand::RotateKey(_)) => commands::auth_rotate_key(config).await,
            Command::Secrets(SecretsCommand::Rotate(_)) => commands::secrets_rotate(config).await,
            Command::Sanctions(SanctionsCommand::Load {
                list,
                format,
                file,
                alt,
                comments,
                ..
            }) => {
                let files = commands::ListFiles {
                    file,
                    alt,
                    comments,
                };
                commands::sanctions_load(config, &list, &format, &files).await
            }
            Command::Sanctions(SanctionsCommand::List(_)) => commands::sanctions_list(config).await,
            Command::Indexer(IndexerCommand::Verify(args)) => {
                rwa::indexer_verify::run(config, &args).await
            }
            Command::Jobs(JobsCommand::List {
                queue,
                state,
                limit,
                ..
            }) => commands::jobs_list(config, queue.as_deref(), state.as_deref(), limit).await,
            Command::Jobs(JobsCommand::Retry { id, .. }) => {
                commands::jobs_steer(config, &id, commands::Steer::Retry).await
            }
            Command::Jobs(JobsCommand::Cancel { id, .. }) => {
                commands::jobs_steer(config, &id, commands::Steer::Cancel).await
            }
        };
        result.unwrap_or_else(|e| {
            tracing::error!(error = format!("{e:#}"), "command failed");
            eprintln!("error: {e:#}");
            1
        })
    });
    std::process::exit(code);
}

fn data_overrides(d: &DataArgs) -> Overrides {
    Overrides {
        data_dir: d.data_dir.clone(),
        ..Overrides::default()
    }
}
