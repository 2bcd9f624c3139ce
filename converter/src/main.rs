//! The `lopper` command line: prune, fine-tune, compact and export neural networks.

mod cli;

fn main() {
    quit_quietly_on_closed_pipe();
    if let Err(err) = cli::run() {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

/// `lopper inspect model.lopper | head` should end as quietly as `ls | head`: Rust ignores
/// SIGPIPE, so a write to a closed pipe would make `println!` panic; with the default
/// disposition the process just ends.
fn quit_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists, with the
    // default disposition, which is always a valid handler for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
