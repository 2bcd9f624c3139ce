//! The `lopper` command line: prune, fine-tune, compact and export neural networks.

mod cli;

fn main() {
    if let Err(err) = cli::run() {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
