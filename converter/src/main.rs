//! The `lopper` command line.
fn main() {
    println!("lopper {}", env!("CARGO_PKG_VERSION"));
}
