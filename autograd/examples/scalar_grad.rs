//! Reverse-mode autodiff on one scalar expression, checked three ways.
//!
//! `f = (a·b + c)²` at a = 2, b = -3, c = 10, so `u = a·b + c = 4` and `f = 16`. By hand
//! (the chain rule, from the output back):
//!
//! ```text
//! df/du = 2u = 8          (f = u·u reads u twice: 4 + 4, two contributions that add up)
//! df/da = df/du · b = -24
//! df/db = df/du · a =  16
//! df/dc = df/du · 1 =   8
//! ```
//!
//! The example prints the recorded graph in the order `backward` sorts it (inputs before the
//! ops that read them; the sweep runs it in reverse), then compares `backward()` with the
//! hand-derived gradients and with central finite differences. Guide: docs/guide/07-backward.md.
//!
//! ```sh
//! cargo run -p deltaw-autograd --example scalar_grad
//! ```

use deltaw_autograd::Var;
use deltaw_tensor::{Device, Tensor};

/// `f = (a·b + c)²`, written as `u·u` so that `u` feeds one op twice.
fn f(a: &Var, b: &Var, c: &Var) -> Var {
    let u = a.mul(b).add(c).named("u"); // u = a·b + c, a 0-d var
    u.mul(&u).named("f")
}

fn main() {
    let dev = Device::Cpu;
    let scalar = |v: f32, name: &str| Var::parameter(Tensor::scalar(v, &dev)).named(name);
    let (a, b, c) = (scalar(2.0, "a"), scalar(-3.0, "b"), scalar(10.0, "c"));
    let out = f(&a, &b, &c);
    println!("f = (a·b + c)² at a = 2, b = -3, c = 10: f = {}", out.value().to_scalar());
    assert_eq!(out.value().to_scalar(), 16.0);

    println!("\nthe recorded graph, inputs before the ops that read them (backward walks it bottom-up):");
    let graph = out.graph();
    for node in &graph.nodes {
        let name = node.name.as_deref().unwrap_or("");
        println!("  node {:>3}  {:<6} {:<4} inputs {:?}", node.id, node.op, name, node.inputs);
    }

    let grads = out.backward().expect("f is a scalar with parameters behind it");
    let (av, bv, cv) = (2.0f32, -3.0f32, 10.0f32);
    let u = av * bv + cv;
    let by_hand = [("a", &a, 2.0 * u * bv), ("b", &b, 2.0 * u * av), ("c", &c, 2.0 * u)];

    // Central differences: (f(x + h) - f(x - h)) / 2h, exact for a quadratic up to rounding.
    let h = 1e-2f32;
    let at = |da: f32, db: f32, dc: f32| {
        let x = |v: f32| Var::constant(Tensor::scalar(v, &dev));
        f(&x(av + da), &x(bv + db), &x(cv + dc)).value().to_scalar()
    };
    let numeric = [
        (at(h, 0.0, 0.0) - at(-h, 0.0, 0.0)) / (2.0 * h),
        (at(0.0, h, 0.0) - at(0.0, -h, 0.0)) / (2.0 * h),
        (at(0.0, 0.0, h) - at(0.0, 0.0, -h)) / (2.0 * h),
    ];

    println!("\n        backward()   by hand   finite diff");
    for ((name, var, hand), num) in by_hand.iter().zip(numeric) {
        let got = grads.get(var).expect("every parameter gets a gradient").to_scalar();
        println!("  df/d{name}  {got:>9}  {hand:>8}  {num:>12.4}");
        assert_eq!(got, *hand, "df/d{name}: backward {got}, by hand {hand}");
        assert!((got - num).abs() < 1e-2, "df/d{name}: backward {got}, finite difference {num}");
    }
    // Only leaves end up in `Grads`: u's gradient (8) was consumed on the way and freed.
    assert_eq!(grads.len(), 3);
    println!("\nok: backward() equals the chain rule by hand and the finite differences");
}
