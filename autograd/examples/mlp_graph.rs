//! Builds a small MLP's loss, prints its graph as Graphviz DOT and a memory summary.
//!
//! ```sh
//! cargo run -p deltaw-autograd --example mlp_graph > mlp.dot   # summary goes to stderr
//! dot -Tsvg mlp.dot > mlp.svg
//! ```

use deltaw_autograd::{Sgd, SgdConfig, Var};
use deltaw_tensor::{Device, Seed, Tensor};

fn main() {
    let dev = Device::Cpu;
    let (n, c_in, hidden, classes) = (8, 16, 32, 4);
    let param = |name: &str, shape: (usize, usize), seed: u64| {
        Var::parameter(Tensor::randn(shape, Seed(seed), &dev).mul_scalar(1.0 / (shape.1 as f32).sqrt())).named(name)
    };
    let bias = |name: &str, len: usize| Var::parameter(Tensor::zeros(len, &dev)).named(name);
    let (w1, b1) = (param("fc1.weight", (hidden, c_in), 1), bias("fc1.bias", hidden));
    let (w2, b2) = (param("fc2.weight", (classes, hidden), 2), bias("fc2.bias", classes));

    let x = Var::constant(Tensor::randn((n, c_in), Seed(3), &dev)).named("x"); // (N, C_in)
    let targets = Tensor::from_vec(vec![0i32, 1, 2, 3, 0, 1, 2, -100], n, &dev).expect("8 targets"); // (N,)
    let h = (&x.matmul(&w1.t()) + &b1).gelu(); // (N, hidden)
    let logits = &h.matmul(&w2.t()) + &b2; // (N, classes)
    let loss = logits.cross_entropy(&targets, -100); // ()

    let graph = loss.graph();
    println!("{}", graph.to_dot());
    eprintln!("loss {:.4}", loss.value().to_scalar());
    eprint!("{}", graph.memory_report());

    let grads = loss.backward().expect("the loss is a scalar with parameters behind it");
    eprintln!("gradients {} ({} tensors)", deltaw_autograd::human_bytes(grads.bytes()), grads.len());
    let mut opt = Sgd::new(vec![w1, b1, w2, b2], SgdConfig { lr: 0.1, ..Default::default() });
    opt.step(&grads);
}
