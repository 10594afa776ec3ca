//! `Var`: a tensor plus, when an op made it, that op and its inputs (the graph's edges).
//! Also the `no_grad` switch that decides whether ops record anything.

use crate::op::Op;
use deltaw_tensor::{Shape, Tensor};
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// A stable identity for a [`Var`]: gradients and optimizer state are keyed by it. Clones of a
/// `Var` share it; [`Var::detach`] makes a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct VarId(pub u64);

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// A node of the graph. Only a leaf's value may change (an optimizer step replaces it).
pub(crate) struct Node {
    pub(crate) id: VarId,
    pub(crate) value: RwLock<Tensor>,
    /// `None` for leaves (parameters, inputs, constants, anything made under `no_grad`).
    pub(crate) op: Option<Op>,
    /// Settable on leaves only ([`Var::set_requires_grad`]), to freeze or unfreeze parameters.
    pub(crate) requires_grad: AtomicBool,
    pub(crate) name: OnceLock<String>,
    /// How many recorded ops hold this node as an input (the graph's own handles).
    edges: AtomicUsize,
    /// Whether some backward rule reads this value: its own op's (`exp` reads its output) or
    /// a consumer's (`matmul` reads its lhs to form `dB`). See [`Var::drop`](#impl-Drop-for-Var).
    read_by_backward: AtomicBool,
}

impl Node {
    fn new(value: Tensor, op: Option<Op>, requires_grad: bool, read_by_backward: bool) -> Node {
        Node {
            id: VarId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            value: RwLock::new(value),
            op,
            requires_grad: AtomicBool::new(requires_grad),
            name: OnceLock::new(),
            edges: AtomicUsize::new(0),
            read_by_backward: AtomicBool::new(read_by_backward),
        }
    }
}

/// A tensor that remembers how it was made, so gradients can flow back to the leaves that
/// require them. Cloning is cheap (an `Arc` bump) and keeps the identity.
///
/// Ops on `Var`s mirror the ops on [`Tensor`]s: `x.matmul(&w).gelu().mean_all()`. An op records
/// itself only when grad mode is on (see [`no_grad`]) and some input requires grad; otherwise
/// its result is a plain leaf and nothing is kept alive for backward.
#[derive(Clone)]
pub struct Var(pub(crate) Arc<Node>);

impl Var {
    fn leaf(value: Tensor, requires_grad: bool) -> Var {
        Var(Arc::new(Node::new(value, None, requires_grad, false)))
    }

    /// A trainable leaf: backward computes its gradient and optimizers update its value.
    pub fn parameter(value: Tensor) -> Var {
        Var::leaf(value, true)
    }

    /// A leaf that needs no gradient (inputs, targets, masks, frozen weights).
    pub fn constant(value: Tensor) -> Var {
        Var::leaf(value, false)
    }

    /// A leaf with the given `requires_grad` flag.
    pub fn new(value: Tensor, requires_grad: bool) -> Var {
        Var::leaf(value, requires_grad)
    }

    /// The result of `op`, recorded when grad mode is on and some input requires grad;
    /// otherwise a constant leaf (the op and its inputs are dropped at once).
    pub(crate) fn from_op(value: Tensor, op: Op) -> Var {
        let record = is_grad_enabled() && op.inputs().iter().any(|v| v.requires_grad());
        Var::from_op_if(value, op, record)
    }

    /// The result of `op`, recorded when `record` says (a checkpoint decides it otherwise than
    /// by its inputs' flags), else a constant leaf.
    pub(crate) fn from_op_if(value: Tensor, op: Op, record: bool) -> Var {
        if !record {
            return Var::constant(value);
        }
        // What the backward rule will read, told apart by buffer: an input whose value it
        // reads must keep it; one read for its shape only need not.
        let saved = op.saved(&value);
        let reads = |t: &Tensor| saved.iter().any(|s| s.shares_storage_with(t));
        for input in op.inputs() {
            input.0.edges.fetch_add(1, Ordering::Relaxed);
            if reads(&input.value()) {
                input.0.read_by_backward.store(true, Ordering::Relaxed);
            }
        }
        let reads_output = reads(&value);
        Var(Arc::new(Node::new(value, Some(op), true, reads_output)))
    }

    /// Names this var in graph dumps (`fc1.weight`); the first name set wins.
    pub fn named(self, name: impl Into<String>) -> Var {
        let _ = self.0.name.set(name.into());
        self
    }

    pub fn name(&self) -> Option<&str> {
        self.0.name.get().map(String::as_str)
    }

    pub fn id(&self) -> VarId {
        self.0.id
    }

    /// The current value (a cheap clone of the tensor handle).
    pub fn value(&self) -> Tensor {
        self.0.value.read().expect("a Var's value lock is never poisoned").clone()
    }

    /// Replaces a leaf's value, as an optimizer step does. Ops already recorded keep the
    /// tensors they used (tensors are immutable), so a graph built before the update still
    /// differentiates what it computed.
    ///
    /// # Panics
    /// If `self` is not a leaf or the new value has another shape.
    #[track_caller]
    pub fn set_value(&self, value: Tensor) {
        assert!(self.is_leaf(), "set_value: var {:?} was made by {} and is not a leaf", self.id(), self.op_name());
        let mut slot = self.0.value.write().expect("a Var's value lock is never poisoned");
        assert_eq!(
            slot.shape(),
            value.shape(),
            "set_value: cannot replace a {:?} value by a {:?} one",
            slot.shape(),
            value.shape()
        );
        *slot = value;
    }

    /// Runs `f` on a leaf's value for an update in place (an optimizer step that writes into
    /// the parameter's buffer through [`Tensor::values_mut`], which refuses while a recorded
    /// graph still holds the tensor, so what a graph computed never changes under it).
    ///
    /// # Panics
    /// If `self` is not a leaf, or `f` changes the value's shape.
    #[track_caller]
    pub fn update_value<R>(&self, f: impl FnOnce(&mut Tensor) -> R) -> R {
        assert!(self.is_leaf(), "update_value: var {:?} was made by {} and is not a leaf", self.id(), self.op_name());
        let mut slot = self.0.value.write().expect("a Var's value lock is never poisoned");
        let before = slot.shape().clone();
        let out = f(&mut slot);
        assert_eq!(
            &before,
            slot.shape(),
            "update_value: the update changed the shape {before:?} to {:?}",
            slot.shape()
        );
        out
    }

    pub fn shape(&self) -> Shape {
        self.value().shape().clone()
    }

    pub fn dims(&self) -> Vec<usize> {
        self.value().dims().to_vec()
    }

    pub fn rank(&self) -> usize {
        self.value().rank()
    }

    /// True for parameters and for every recorded op result.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }

    /// Freezes (`false`) or unfreezes a leaf, as PyTorch's `requires_grad_`: every clone of this
    /// var sees the change. Graphs recorded later skip a frozen leaf entirely (no gradient, no
    /// `dW` GEMM in backward), which is what makes adapter training cheap.
    ///
    /// # Panics
    /// If `self` is not a leaf: an op result's flag follows from its inputs.
    #[track_caller]
    pub fn set_requires_grad(&self, requires_grad: bool) {
        assert!(self.is_leaf(), "set_requires_grad: var {:?} was made by {}, not a leaf", self.id(), self.op_name());
        self.0.requires_grad.store(requires_grad, Ordering::Relaxed);
    }

    /// True when no recorded op made this var.
    pub fn is_leaf(&self) -> bool {
        self.0.op.is_none()
    }

    /// A new constant leaf sharing this value: gradients stop here.
    pub fn detach(&self) -> Var {
        Var::constant(self.value())
    }

    pub(crate) fn op(&self) -> Option<&Op> {
        self.0.op.as_ref()
    }

    /// The op's name (`"matmul"`), or `"leaf"`.
    pub fn op_name(&self) -> String {
        self.op().map_or_else(|| "leaf".to_string(), Op::name)
    }
}

impl fmt::Debug for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Var({}, {}, {:?}", self.0.id.0, self.op_name(), self.value().shape())?;
        if let Some(name) = self.name() {
            write!(f, ", {name}")?;
        }
        write!(f, ")")
    }
}

/// Drops a long chain of nodes without recursing once per node (which could overflow the
/// stack on a deep graph): inputs that this node owned alone are unlinked into a work list.
impl Drop for Node {
    fn drop(&mut self) {
        let mut work: Vec<Op> = self.op.take().into_iter().collect();
        while let Some(op) = work.pop() {
            for mut input in op.into_inputs() {
                input.0.edges.fetch_sub(1, Ordering::Relaxed);
                if let Some(node) = Arc::get_mut(&mut input.0) {
                    work.extend(node.op.take());
                }
            }
        }
    }
}

/// Values below this many bytes stay with their node: freeing them saves nothing worth a
/// placeholder.
const RELEASE_MIN_BYTES: usize = 64 << 10;

/// Frees an op result's buffer as soon as nothing can read it any more, instead of when the
/// whole graph goes. Once the last handle outside the graph drops, only recorded ops hold the
/// node; if none of their backward rules reads its value (a matmul's output feeding an add,
/// the three intermediates of a LoRA path), keeping it would only raise the step's peak
/// memory. The node keeps a stride-0 view of one zero in its place: backward rules still see
/// the shape, device and dtype, which is all they ask of it.
impl Drop for Var {
    fn drop(&mut self) {
        let node = &*self.0;
        if node.op.is_none() || node.read_by_backward.load(Ordering::Relaxed) {
            return;
        }
        let edges = node.edges.load(Ordering::Relaxed);
        if edges == 0 || Arc::strong_count(&self.0) != edges + 1 {
            return;
        }
        let Ok(mut slot) = node.value.write() else { return };
        if slot.dtype() == deltaw_tensor::DType::F32 && slot.storage_bytes() >= RELEASE_MIN_BYTES {
            let ones = vec![1; slot.rank()];
            *slot = Tensor::zeros(ones, &slot.device()).expand(slot.shape());
        }
    }
}

/// Whether ops on this thread record themselves for backward.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(Cell::get)
}

/// Runs `f` with recording on (a checkpoint's block, run again inside backward), then puts
/// the previous mode back.
pub(crate) fn with_grad<R>(f: impl FnOnce() -> R) -> R {
    let previous = GRAD_ENABLED.with(|g| g.replace(true));
    let _restore = NoGradGuard { previous };
    f()
}

/// Runs `f` with recording off on this thread (evaluation, optimizer updates): results are
/// constant leaves and no graph is kept. Restores the previous mode afterwards, even on panic.
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = NoGradGuard::new();
    f()
}

/// Turns recording off on this thread until dropped (the RAII form of [`no_grad`]).
pub struct NoGradGuard {
    previous: bool,
}

impl NoGradGuard {
    #[allow(clippy::new_without_default)]
    pub fn new() -> NoGradGuard {
        let previous = GRAD_ENABLED.with(|g| g.replace(false));
        NoGradGuard { previous }
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}
