//! Low-level math shared by ops.
