//! Bindings of the lopper runtime for Kotlin, Swift, Python (UniFFI) and Java (JNI).
//!
//! A placeholder until the bindings issue: it re-exports the runtime so that the
//! `cdylib`/`staticlib` targets already build for every platform in CI.

pub use lopper_runtime as runtime;
