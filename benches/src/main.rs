//! `tract-bench MODEL.onnx [--shape D0,D1,...] [--iters N] [--warmup N]`: single-thread
//! latency of tract on an ONNX model with random input, printed as `p50_ms` (one number),
//! for scripts/bench-models.sh.

use std::time::Instant;

use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: tract-bench MODEL.onnx [--shape ..] [--iters N]");
    let (mut shape, mut iters, mut warmup) = (None, 100usize, 10usize);
    while let Some(flag) = args.next() {
        let value = args.next().expect("a value after each option");
        match flag.as_str() {
            "--shape" => {
                shape = Some(
                    value
                        .split(',')
                        .map(|d| d.parse::<usize>())
                        .collect::<Result<Vec<_>, _>>()?,
                )
            }
            "--iters" => iters = value.parse()?,
            "--warmup" => warmup = value.parse()?,
            other => panic!("unknown option {other}"),
        }
    }
    let mut model = tract_onnx::onnx().model_for_path(&path)?;
    if let Some(shape) = &shape {
        model.set_input_fact(0, f32::fact(shape).into())?;
    }
    let model = model.into_optimized()?.into_runnable()?;
    let fact = model.model().input_fact(0)?.clone();
    let dims: Vec<usize> = fact
        .shape
        .as_concrete()
        .expect("a fixed input shape (give --shape)")
        .to_vec();
    let len: usize = dims.iter().product();
    let data: Vec<f32> = (0..len)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let input: Tensor = tract_ndarray::ArrayD::from_shape_vec(dims, data)?.into();
    let input = tvec!(input.into_tvalue());
    for _ in 0..warmup {
        model.run(input.clone())?;
    }
    let mut times: Vec<f64> = (0..iters)
        .map(|_| {
            let start = Instant::now();
            model.run(input.clone()).expect("tract runs the model");
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("{:.4}", times[times.len() / 2]);
    Ok(())
}
