//! Activation checkpointing: a block of ops recorded as one node that keeps only its inputs,
//! and runs the block again in backward to get what its rules read.
//!
//! Training memory is dominated by activations: every op output a backward rule reads stays
//! alive from the forward until backward reaches it. A decoder layer of the Qwen2.5-0.5B
//! shape keeps about 40 MiB at B·T = 256 (its MLP's 4864-wide tensors), 24 layers about a
//! gigabyte. [`checkpoint`] runs the block without recording (its activations are freed as
//! they go) and records one op whose backward
//! 1. re-runs the block with recording on, from detached copies of the saved inputs and with
//!    the dropout masks of the first run (the train-mode call count is replayed);
//! 2. back-propagates the output's gradient through that fresh graph;
//! 3. hands the inputs' gradients to the outer graph, and the gradients of the parameters the
//!    block read (its own weights, the LoRA adapters on them) to the engine, which adds them
//!    to the result like any leaf's.
//!
//! The cost is one more forward of the block per step (about a third more compute); the
//! gain is that only one block's activations are alive at a time. Gradients are the same
//! bits as without checkpointing: the same ops run on the same values in the same order.

use crate::dropout;
use crate::grads::Grads;
use crate::op::{Family, Op};
use crate::var::{is_grad_enabled, Var};
use deltaw_tensor::Tensor;
use std::sync::Arc;

/// The block a [`checkpoint`] runs: its inputs in, its output out.
pub type Block = Arc<dyn Fn(&[Var]) -> Var + Send + Sync>;

pub(crate) struct Checkpoint {
    inputs: Vec<Var>,
    block: Block,
    /// The train-mode state (seed, dropout calls so far) when the block first ran.
    train: Option<(u64, u64)>,
}

/// Runs `block` on `inputs` keeping none of its activations: in backward it runs again.
///
/// `block` must be a pure function of `inputs` and of the parameters it captures (cheap `Var`
/// clones): the second run has to compute what the first did. Dropout inside it is fine: the
/// masks are replayed. Outside grad mode, or when no input and no parameter the block reads
/// requires grad, this is just `block(inputs)`.
///
/// ```
/// use deltaw_autograd::{checkpoint, Var};
/// use deltaw_tensor::{Device, Tensor};
/// use std::sync::Arc;
///
/// let w = Var::parameter(Tensor::from_vec(vec![0.5f32, -1.0, 2.0, 0.25], (2, 2), &Device::Cpu).unwrap());
/// let x = Var::constant(Tensor::from_vec(vec![1.0f32, 2.0], (1, 2), &Device::Cpu).unwrap());
/// let layer = { let w = w.clone(); move |x: &Var| x.matmul(&w).tanh().matmul(&w) };
/// let plain = layer(&x).sum_all().backward().unwrap();
/// let block: deltaw_autograd::Block = Arc::new(move |xs: &[Var]| layer(&xs[0]));
/// let saved = checkpoint(&[x], block).sum_all().backward().unwrap();
/// assert_eq!(plain.get(&w).unwrap().to_vec(), saved.get(&w).unwrap().to_vec());
/// ```
pub fn checkpoint(inputs: &[Var], block: Block) -> Var {
    if !is_grad_enabled() {
        return block(inputs);
    }
    let train = dropout::state();
    // With an input that requires grad the op records whatever the block reads. Over constants
    // (the first layer above a frozen embedding) only the block knows whether a parameter of
    // its trains, so it runs recorded once and its graph is dropped at once.
    let (value, record) = if inputs.iter().any(Var::requires_grad) {
        (crate::no_grad(|| block(inputs)).value(), true)
    } else {
        let out = block(inputs);
        (out.value(), out.requires_grad())
    };
    let op = Checkpoint { inputs: inputs.to_vec(), block, train };
    Var::from_op_if(value, Op::Checkpoint(op), record)
}

impl Family for Checkpoint {
    fn name(&self) -> String {
        "checkpoint".into()
    }

    fn inputs(&self) -> Vec<&Var> {
        self.inputs.iter().collect()
    }

    fn saved(&self, _out: &Tensor) -> Vec<Tensor> {
        self.inputs.iter().map(Var::value).collect()
    }

    fn backward(&self, _out: &Tensor, dout: &Tensor, grads: &mut Grads) {
        let leaves: Vec<Var> = self.inputs.iter().map(|v| Var::new(v.value(), v.requires_grad())).collect();
        let out = crate::var::with_grad(|| dropout::scoped(self.train, || (self.block)(&leaves)));
        // An error here can only be that nothing in the block requires grad any more (every
        // parameter it reads was frozen since the forward): then there is nothing to hand on.
        let Ok(mut inner) = out.backward_with(dout) else { return };
        drop(out); // the block's second graph goes before the outer sweep goes on
        for (leaf, input) in leaves.iter().zip(&self.inputs) {
            if let Some(g) = inner.remove(leaf) {
                grads.accumulate(input, g);
            }
        }
        // What is left are the parameters the block captured: the engine adds them to the
        // result when its sweep ends (they are no input of any outer op).
        inner.move_into(grads);
    }
}
