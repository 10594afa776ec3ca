//! # deltaw-autograd
//!
//! Reverse-mode automatic differentiation over deltaw tensors, and the optimizers that use it.
//!
//! ```
//! use deltaw_autograd::{AdamW, AdamWConfig, Var};
//! use deltaw_tensor::{Device, Seed, Tensor};
//! let dev = Device::Cpu;
//! let x = Var::constant(Tensor::randn((3, 4), Seed(0), &dev));
//! let w = Var::parameter(Tensor::randn((4, 2), Seed(1), &dev)).named("w");
//! let loss = x.matmul(&w).gelu().mean_all();               // Var ops mirror Tensor ops
//! let grads = loss.backward()?;                            // gradients keyed by var id
//! assert_eq!(grads.get(&w).unwrap().dims(), &[4, 2]);
//! let mut opt = AdamW::new(vec![w.clone()], AdamWConfig { lr: 1e-3, ..Default::default() });
//! opt.step(&grads);
//! assert!(loss.graph().to_dot().contains("matmul"));       // the inspectable graph
//! # Ok::<(), deltaw_autograd::Error>(())
//! ```
//!
//! ## Design
//! - A [`Var`] is a tensor plus, when an op made it, an `Op` enum holding its inputs (the
//!   graph). Ops record only in grad mode ([`no_grad`]) and when an input requires grad.
//! - `backward` sorts the graph topologically without recursion and sweeps it once in reverse,
//!   freeing each intermediate gradient as soon as its op has consumed it. Gradients land in
//!   [`Grads`], keyed by [`VarId`], and accumulate across calls until `zero_grad`.
//! - Each op family (`ops/`) keeps its forward methods and backward rule side by side.
//!   Backward computes with plain tensor ops and fused backward kernels, so it records nothing
//!   and runs on whatever device the values live on.
//! - Broadcasting is an explicit `expand` node whose backward is a sum.
//! - [`Var::graph`] exports the graph to DOT or JSON with the bytes each node saves for
//!   backward and a ledger of what a step holds.

#![forbid(unsafe_code)]

mod backward;
mod checkpoint;
mod dropout;
mod error;
mod grads;
mod graph;
mod op;
mod ops;
pub mod optim;
mod var;

pub use checkpoint::{checkpoint, Block};
pub use dropout::{eval_mode, is_training, train_mode};
pub use error::{Error, Result};
pub use grads::Grads;
pub use graph::{human_bytes, Graph, GraphNode, MemorySummary};
pub use optim::{AdamW, AdamWConfig, LrSchedule, Optimizer, ParamGroup, Sgd, SgdConfig};
pub use var::{is_grad_enabled, no_grad, NoGradGuard, Var, VarId};

/// The README's examples, compiled and run as doc tests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
