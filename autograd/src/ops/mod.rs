//! The differentiable ops, one file per family, each with its forward methods on [`Var`] and
//! its backward rule side by side.
//!
//! [`Var`]: crate::Var

pub(crate) mod binary;
pub(crate) mod index;
pub(crate) mod matmul;
pub(crate) mod nn;
pub(crate) mod reduce;
pub(crate) mod unary;
pub(crate) mod views;
