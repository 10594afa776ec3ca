//! Peak memory of loading GPT-2 124M in f32, against the size of its weights (target ≤ 1.3×):
//!
//! ```text
//! cargo run --release -p deltaw-benches --example load_rss -- save /tmp/gpt2-124m
//! cargo run --release -p deltaw-benches --example load_rss -- load /tmp/gpt2-124m
//! cargo run --release -p deltaw-benches --example load_rss -- stream /tmp/gpt2-124m
//! ```
//!
//! `save` writes a randomly initialised GPT-2 124M with `save_dir` once. `load` (in a fresh
//! process, so nothing of the save counts) runs `Gpt2::from_dir` and prints one JSON line:
//! the safetensors file size, the peak RSS (VmHWM of /proc/self/status), the RSS before and
//! after, and peak / file size. `stream` reads the same file tensor by tensor straight into f32
//! buffers (a 1 MiB staging buffer, no whole-file copy): the floor a loader can reach.
//! `benches/compare_load_rss.sh` runs all three.

use deltaw_benches::generation::model;
use deltaw_tensor::{Device, Tensor};
use deltaw_transformer::{Gpt2, Model};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// A `/proc/self/status` field in bytes (`VmHWM` peak, `VmRSS` now).
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':'));
    kib.and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()).unwrap_or(0) * 1024
}

/// Every tensor of an all-F32 safetensors file, each read from the file into its own buffer.
fn stream_load(path: &Path) -> std::io::Result<Vec<(String, Tensor)>> {
    let mut file = File::open(path)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)?;
    let header_len = u64::from_le_bytes(len);
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)?;
    let mut staging = vec![0u8; 1 << 20];
    let mut tensors = Vec::new();
    for (name, info) in header.iter().filter(|(k, _)| *k != "__metadata__") {
        assert_eq!(info["dtype"], "F32", "{name}: the stream prototype reads F32 only");
        let shape: Vec<usize> =
            info["shape"].as_array().expect("shape").iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let offsets = info["data_offsets"].as_array().expect("data_offsets");
        let (start, end) = (offsets[0].as_u64().unwrap(), offsets[1].as_u64().unwrap());
        file.seek(SeekFrom::Start(8 + header_len + start))?;
        let mut data: Vec<f32> = Vec::with_capacity(((end - start) / 4) as usize);
        let mut left = (end - start) as usize;
        while left > 0 {
            let chunk = &mut staging[..left.min(1 << 20)];
            file.read_exact(chunk)?;
            data.extend(chunk.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
            left -= chunk.len();
        }
        tensors.push((name.clone(), Tensor::from_vec(data, shape, &Device::Cpu).expect("shape matches")));
    }
    Ok(tensors)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(dir)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: load_rss save|load|stream DIR");
        std::process::exit(2)
    };
    let dir = Path::new(dir);
    let weights = dir.join("model.safetensors");
    if mode == "save" {
        model().save_dir(dir).expect("save GPT-2 124M");
        println!("saved {} ({} bytes)", weights.display(), std::fs::metadata(&weights).map_or(0, |m| m.len()));
        return;
    }
    let weight_bytes = std::fs::metadata(&weights).expect("run `load_rss save DIR` first").len();
    let before = status_bytes("VmRSS");
    // Both stay alive until the RSS after loading is read.
    let (count, _model, _tensors) = match mode.as_str() {
        "load" => {
            let model = Gpt2::from_dir(dir, &Device::Cpu).expect("load GPT-2 124M");
            (model.parameters().len(), Some(model), Vec::new())
        }
        "stream" => {
            let tensors = stream_load(&weights).expect("stream the safetensors file");
            (tensors.len(), None, tensors)
        }
        _ => {
            eprintln!("usage: load_rss save|load|stream DIR");
            std::process::exit(2)
        }
    };
    let (peak, after, mib) = (status_bytes("VmHWM"), status_bytes("VmRSS"), 1024.0 * 1024.0);
    println!(
        "{{\"impl\": \"deltaw\", \"mode\": \"{mode}\", \"tensors\": {count}, \"weight_bytes\": {weight_bytes}, \"rss_before_mib\": {:.0}, \"peak_rss_mib\": {:.0}, \"rss_after_mib\": {:.0}, \"ratio\": {:.2}}}",
        before as f64 / mib,
        peak as f64 / mib,
        after as f64 / mib,
        peak as f64 / weight_bytes as f64
    );
}
