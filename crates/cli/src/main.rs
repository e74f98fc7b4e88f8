//! `blastwall`: the one binary.

use clap::{Parser, Subcommand};

/// Blastwall keeps services answering while their dependencies fail, and proves it.
#[derive(Debug, Parser)]
#[command(name = "blastwall", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the fault-tolerance mechanisms surviving a failure, with nothing to configure.
    Demo,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo => {
            println!("demo: being built");
            Ok(())
        }
    }
}
