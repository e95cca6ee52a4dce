//! Every kernel against its f64 reference at awkward shapes, on whatever adapter is present.

#[path = "../common/mod.rs"]
mod common;

mod conv;
mod data;
mod elementwise;
mod loss;
mod matmul;
mod norm;
mod optim;
mod pool;
mod random;
mod reduce;
mod tensor;
mod text;
