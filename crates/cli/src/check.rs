//! `blastwall check`: validate a config and explain every error, or print the config's JSON
//! Schema.

use std::path::PathBuf;
use std::process::ExitCode;

use blastwall_proxy::Config;
use clap::Args;

/// Flags of `blastwall check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The config file to check.
    #[arg(required_unless_present = "schema")]
    config: Option<PathBuf>,
    /// Print the JSON Schema of the config file instead.
    #[arg(long, conflicts_with = "config")]
    schema: bool,
}

/// Prints what is wrong, or a one-line summary of what the config defines.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    if args.schema {
        println!("{}", serde_json::to_string_pretty(&Config::json_schema())?);
        return Ok(ExitCode::SUCCESS);
    }
    let path = args.config.expect("clap requires a config unless --schema");
    match Config::load(&path) {
        Ok(config) => {
            println!(
                "{}: ok ({} listener(s), {} route(s), {} cluster(s), {} endpoint(s); hash {})",
                path.display(),
                config.listeners.len(),
                config.routes.len(),
                config.clusters.len(),
                config
                    .clusters
                    .iter()
                    .map(|cluster| cluster.endpoints.len())
                    .sum::<usize>(),
                config.source.hash
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}
