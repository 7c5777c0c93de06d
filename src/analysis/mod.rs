//! Analyses of networks: the input-output Jacobian spectrum (dynamical isometry).

pub mod isometry;
