//! The `lopper` command line: prune, fine-tune, compact and export neural networks.

use clap::{Parser, Subcommand};

/// Prunes neural networks and ships them to phones and small boards.
#[derive(Parser)]
#[command(name = "lopper", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train, prune, fine-tune and benchmark a small CNN end to end (not built yet).
    Demo,
}

fn main() {
    match Cli::parse().command {
        Command::Demo => {
            println!(
                "lopper demo is not built yet.\n\
                 It will train a small CNN on the embedded UCI digits, prune it to 90% sparsity\n\
                 with polynomial decay, fine-tune it, export .lopper files and compare accuracy,\n\
                 size and latency in the runtime. Today the runtime and the file format exist:\n\
                 run scripts/test-all.sh to see them tested."
            );
        }
    }
}
