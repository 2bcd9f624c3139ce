//! Progress bars for long loops (training epochs, evaluation, sensitivity sweeps).
//!
//! Bars draw on stderr and only when it is a terminal, so scripts and logs stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over `len` items labelled `what`, with rate and time left; hidden when `show` is
/// false or stderr is not a terminal.
pub fn bar(len: u64, what: &str, show: bool) -> ProgressBar {
    let target = if show {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {pos}/{len} {per_sec:>10} ETA {eta:>4} {prefix}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}
