//! Where a GPT-2 124M full fine-tuning step spends its time: forward, backward, optimizer.
//! `cargo run --release -p deltaw-benches --example sft_phases -- full|lora`
use deltaw_benches::sft::{setup, Mode};
use deltaw_transformer::causal_lm_loss;
use std::time::Instant;

fn main() {
    let mode = std::env::args().nth(1).and_then(|m| Mode::parse(&m)).unwrap_or(Mode::Full);
    let mut s = setup(mode);
    for i in 0..3 {
        let t = Instant::now();
        let logits = s.model.forward(&s.ids, None).logits;
        let loss = causal_lm_loss(&logits, &s.ids);
        let t_fwd = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let grads = loss.backward().expect("backward");
        let t_bwd = t.elapsed().as_secs_f64();
        let t = Instant::now();
        s.opt.step(&grads);
        let t_opt = t.elapsed().as_secs_f64();
        println!("step {i}: forward {t_fwd:.3} s, backward {t_bwd:.3} s, optimizer {t_opt:.3} s");
    }
}
