//! Training: the data sets models are trained and evaluated on.

pub mod data;
