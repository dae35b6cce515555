//! `interlock`: serve the mesh, run the demo, operate it.

use clap::{Parser, Subcommand};
use interlock::config::ServeConfig;
use interlock::serve::Mesh;

#[derive(Parser)]
#[command(name = "interlock", version, about = "Inter-agency record sharing and deconfliction mesh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the mesh (all four services, or one with --service).
    Serve(Box<ServeConfig>),
    /// Start the whole mesh on a fresh temporary store and walk the article's scenario.
    Demo(Box<ServeConfig>),
    /// Write synthetic records for many agencies as record files (NDJSON).
    Generate(interlock::generate::GenerateArgs),
    #[command(flatten)]
    Operator(Box<interlock::cli::OperatorCommand>),
    /// Verify or export the audit log, or check its latest checkpoint as an agency.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the tree from the audit database and check it against every signed checkpoint.
    Verify(interlock::audit_cli::VerifyArgs),
    /// Stream the events the caller may see as NDJSON or CSV (for compliance reviews).
    Export(interlock::audit_cli::ExportArgs),
    /// Fetch the latest signed checkpoint, verify its signature and its consistency with the one
    /// kept in --state, then keep it: a rewritten history fails with a non-zero exit.
    Checkpoint(interlock::audit_cli::CheckpointArgs),
    /// List the audit events of a service's outbox that the audit service rejected for good.
    DeadLetters(interlock::audit_cli::DeadLettersArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(config) => {
            let telemetry = interlock_telemetry::init(
                &format!("interlock-{}", config.service.name()),
                config.log_format,
            )?;
            tracing::info!("configuration:\n{config}");
            let mesh = Mesh::start(*config).await?;
            let outcome = mesh.run_until_signalled().await;
            telemetry.shutdown();
            outcome
        }
        Command::Generate(args) => interlock::generate::run(args),
        Command::Audit(AuditCommand::Verify(args)) => interlock::audit_cli::verify(args).await,
        Command::Audit(AuditCommand::Export(args)) => interlock::audit_cli::export(args).await,
        Command::Audit(AuditCommand::DeadLetters(args)) => interlock::audit_cli::dead_letters(args).await,
        Command::Audit(AuditCommand::Checkpoint(args)) => {
            interlock::audit_cli::checkpoint(args).await.map(drop)
        }
        Command::Demo(config) => {
            // The demo talks to the user on standard output; only warnings go to the log.
            if std::env::var_os("RUST_LOG").is_none() {
                // SAFETY: set before any other thread exists.
                unsafe { std::env::set_var("RUST_LOG", "warn") };
            }
            let telemetry = interlock_telemetry::init("interlock-demo", config.log_format)?;
            let outcome = interlock::demo::run(*config).await;
            telemetry.shutdown();
            outcome
        }
        Command::Operator(command) => {
            if let Err(error) = interlock::cli::run(*command).await {
                interlock::cli::report(&error);
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
