//! The graph scheduler: gradients against f64 finite differences, training trajectories
//! against f64 optimizers, linear regression against its closed form, plan size.

#[path = "../common/mod.rs"]
mod common;

mod attention;
mod custom;
mod dag;
mod gradients;
mod image;
mod json;
mod plan;
mod regression;
mod trajectory;
