//! Loading: from a slice in place, from owned bytes, from a file through mmap; shared
//! models across threads; inputs, outputs and metadata; load errors that name the problem.

mod common;

use std::sync::Arc;

use common::tiny_cnn;
use lopper_runtime::format::{ModelWriter, FORMAT_VERSION};
use lopper_runtime::graph::{Activation, Op};
use lopper_runtime::{LoadError, Location, Model, RunError, Session};

fn assert_send_sync<T: Send + Sync>() {}

/// Runs the tiny CNN on a fixed input and returns its output.
fn outputs(model: &Model) -> Vec<f32> {
    let mut session = Session::new(model).unwrap();
    let x: Vec<f32> = (0..192).map(|i| (i as f32 * 0.37).sin()).collect();
    session.set_input(0, &x).unwrap();
    session.run();
    session.output(0).unwrap().to_vec()
}

#[test]
fn model_is_send_and_sync() {
    assert_send_sync::<Model<'static>>();
    assert_send_sync::<Session<'static>>();
}

#[cfg(feature = "std")]
#[test]
fn slice_owned_and_mapped_models_agree_and_slices_are_read_in_place() {
    let bytes = tiny_cnn();
    // u64 words give the 8-byte alignment `from_slice` needs.
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
    let aligned = &bytemuck::cast_slice::<u64, u8>(&words)[..bytes.len()];
    let borrowed = Model::from_slice(aligned).unwrap();
    assert_eq!(borrowed.bytes().as_ptr(), aligned.as_ptr(), "zero copy");
    let owned = Model::from_vec(bytes.clone()).unwrap();

    let dir = std::env::temp_dir().join(format!("lopper-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny.lopper");
    std::fs::write(&path, &bytes).unwrap();
    let mapped = Model::open(&path).unwrap();

    let expected = outputs(&owned);
    assert_eq!(outputs(&borrowed), expected);
    assert_eq!(outputs(&mapped), expected);
    drop(mapped);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn misaligned_slice_is_refused() {
    let bytes = tiny_cnn();
    let mut words = vec![0u64; bytes.len().div_ceil(8) + 1];
    let shifted = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[1..=bytes.len()];
    shifted.copy_from_slice(&bytes);
    let err = Model::from_slice(shifted).err().unwrap();
    assert!(matches!(err, LoadError::Misaligned { align: 8 }), "{err}");
}

#[cfg(feature = "std")]
#[test]
fn missing_file_names_the_path() {
    let err = Model::open("/nonexistent/model.lopper").err().unwrap();
    assert!(
        err.to_string().contains("/nonexistent/model.lopper"),
        "{err}"
    );
}

#[test]
fn sessions_share_one_model_across_threads() {
    let model = Arc::new(Model::from_vec(tiny_cnn()).unwrap());
    let expected = outputs(&model);
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let model = Arc::clone(&model);
            std::thread::spawn(move || {
                let mut session = Session::shared(model).unwrap();
                let x: Vec<f32> = (0..192).map(|i| (i as f32 * 0.37).sin()).collect();
                session.set_input(0, &x).unwrap();
                session.run();
                session.output(0).unwrap().to_vec()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), expected);
    }
}

#[test]
fn inputs_outputs_and_metadata_are_described() {
    let model = Model::from_vec(tiny_cnn()).unwrap();
    let inputs = model.inputs();
    assert_eq!(inputs.len(), 1);
    assert_eq!(
        (inputs[0].name, inputs[0].shape, inputs[0].dtype),
        ("x", &[1, 3, 8, 8][..], "f32")
    );
    assert_eq!(model.outputs()[0].name, "probs");
    assert_eq!(model.outputs()[0].shape, &[1, 10]);
    assert_eq!(model.metadata("purpose"), Some("tests"));
    assert_eq!(model.graph().producer, "lopper tests");

    let mut session = Session::new(&model).unwrap();
    assert_eq!(session.input_index("x"), Ok(0));
    assert_eq!(session.output_index("probs"), Ok(0));
    assert!(matches!(
        session.input_index("y"),
        Err(RunError::UnknownName { .. })
    ));
    assert!(matches!(
        session.output(3),
        Err(RunError::IndexOutOfRange { .. })
    ));
    let err = session.set_input(0, &[1.0; 5]).unwrap_err();
    assert_eq!(err.to_string(), "input 'x' needs 192 values, got 5");
    assert!(session.arena_bytes() > 0);
}

#[cfg(feature = "std")]
#[test]
fn profiling_reports_every_node() {
    let model = Model::from_vec(tiny_cnn()).unwrap();
    let mut session = Session::new(&model).unwrap();
    let mut seen = Vec::new();
    session.run_profiled(|t| seen.push((t.index, t.name.to_string(), t.op)));
    assert_eq!(seen.len(), model.graph().nodes.len());
    assert_eq!(seen[0], (0, "c1".to_string(), "Conv2d"));
    assert_eq!(seen.last().unwrap().2, "Softmax");
}

/// Writes a one-node Add model whose output is declared with `out_shape`.
fn add_model(out_shape: &[usize]) -> Vec<u8> {
    let mut w = ModelWriter::new("test");
    let a = w.input("a", &[2, 3]);
    let b = w.constant("b", &[3], &[1.0, 2.0, 3.0]).unwrap();
    let y = w.tensor("sum", out_shape);
    w.node(
        "add_node",
        Op::Binary(lopper_runtime::graph::BinaryKind::Add),
        &[a, b],
        &[y],
        Activation::None,
    );
    w.output(y);
    w.finish().unwrap()
}

#[test]
fn semantic_errors_name_node_and_problem() {
    let err = Model::from_vec(add_model(&[2, 4])).err().unwrap();
    match &err {
        LoadError::Invalid {
            at: Location::Node(0, name),
            reason,
        } => {
            assert_eq!(name, "add_node");
            assert!(
                reason.contains("[2, 4]") && reason.contains("[2, 3]"),
                "{reason}"
            );
        }
        other => panic!("unexpected {other}"),
    }
    assert!(
        err.to_string().starts_with("node 0 'add_node': (Binary)"),
        "{err}"
    );
    assert_eq!(FORMAT_VERSION, 1);
}

#[test]
fn a_node_reading_an_unwritten_tensor_is_refused() {
    let mut w = ModelWriter::new("test");
    let a = w.input("a", &[4]);
    let ghost = w.tensor("ghost", &[4]);
    let y = w.tensor("y", &[4]);
    w.node(
        "add",
        Op::Binary(lopper_runtime::graph::BinaryKind::Add),
        &[a, ghost],
        &[y],
        Activation::None,
    );
    w.output(y);
    let err = Model::from_vec(w.finish().unwrap()).err().unwrap();
    assert!(
        err.to_string()
            .contains("reads tensor 1 'ghost' before any node writes it"),
        "{err}"
    );
}

/// Writes a one-node model reading graph input `x` and dense constants, and returns the
/// load error's message.
fn refusal(op: Op, x: &[usize], consts: &[(&[usize], &[f32])], out: &[usize]) -> String {
    let mut w = ModelWriter::new("test");
    let mut inputs = vec![w.input("x", x)];
    for (i, (shape, values)) in consts.iter().enumerate() {
        inputs.push(w.constant(&format!("c{i}"), shape, values).unwrap());
    }
    let y = w.tensor("y", out);
    w.node("n", op, &inputs, &[y], Activation::None);
    w.output(y);
    match Model::from_vec(w.finish().unwrap()) {
        Ok(_) => panic!("loaded"),
        Err(e) => e.to_string(),
    }
}

#[track_caller]
fn assert_refused(message: String, fragment: &str) {
    assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
}

#[test]
fn new_ops_are_checked_on_load() {
    use lopper_runtime::graph::{
        ConvTranspose2d, CoordinateTransform, Gather, LayerNorm, Lrn, NearestMode, Reduce,
        ReduceKind, Resize, ResizeMode, Slice,
    };
    let slice = |starts: Vec<i64>, ends: Vec<i64>, steps: Vec<i64>| {
        Op::Slice(Slice {
            starts,
            ends,
            steps,
        })
    };
    // 1, 3 of [0, 5): two elements, not three.
    assert_refused(
        refusal(slice(vec![1], vec![4], vec![2]), &[5], &[], &[3]),
        "has shape [3], but the op computes [2]",
    );
    assert_refused(
        refusal(slice(vec![1], vec![4], vec![0]), &[5], &[], &[3]),
        "step of axis 0 is 0",
    );
    assert_refused(
        refusal(slice(vec![0, 0], vec![1, 1], vec![1, 1]), &[5], &[], &[1]),
        "one entry per axis",
    );

    let gather = |indices: Vec<usize>, indices_shape: Vec<usize>| {
        Op::Gather(Gather {
            axis: 0,
            indices,
            indices_shape,
        })
    };
    assert_refused(
        refusal(gather(vec![3], vec![]), &[3, 2], &[], &[2]),
        "index 3 is out of range for axis 0 of size 3",
    );
    assert_refused(
        refusal(gather(vec![0, 1], vec![3]), &[3, 2], &[], &[3, 2]),
        "do not fill",
    );

    let k = [1.0; 4];
    let padded = ConvTranspose2d {
        pads: [2, 0, 1, 0],
        ..ConvTranspose2d::default()
    };
    // Output height 1 + 1 = 2, minus pads of 3.
    assert_refused(
        refusal(
            Op::ConvTranspose2d(padded),
            &[1, 1, 1, 2],
            &[(&[1, 1, 2, 2], &k)],
            &[1, 1, 1, 3],
        ),
        "leave no output",
    );
    assert_refused(
        refusal(
            Op::ConvTranspose2d(ConvTranspose2d::default()),
            &[1, 2, 2, 2],
            &[(&[1, 1, 2, 2], &k)],
            &[1, 1, 3, 3],
        ),
        "does not fit 2 input channels",
    );

    let resize = |scales: [f32; 2]| {
        Op::Resize(Resize {
            mode: ResizeMode::Linear,
            coordinate_transform: CoordinateTransform::HalfPixel,
            nearest_mode: NearestMode::Floor,
            scales,
        })
    };
    for bad in [0.0, -2.0, f32::NAN, f32::INFINITY] {
        assert_refused(
            refusal(resize([2.0, bad]), &[1, 1, 2, 2], &[], &[1, 1, 4, 4]),
            "must be finite and positive",
        );
    }
    assert_refused(
        refusal(resize([2.0, 2.0]), &[1, 1, 2, 2], &[], &[1, 2, 4, 4]),
        "has shape [1, 2, 4, 4], but the op computes [1, 1, 4, 4]",
    );

    let reduce = Op::Reduce(Reduce {
        kind: ReduceKind::Sum,
        axes: vec![1, 1],
        keepdims: true,
    });
    assert_refused(refusal(reduce, &[2, 3], &[], &[2, 1]), "must be distinct");

    let ln = |axis| {
        Op::LayerNorm(LayerNorm {
            axis,
            epsilon: 1e-5,
        })
    };
    assert_refused(
        refusal(ln(1), &[2, 4], &[(&[3], &[1.0; 3])], &[2, 4]),
        "scale has shape [3], expected [4]",
    );
    assert_refused(
        refusal(ln(2), &[2, 4], &[(&[4], &[1.0; 4])], &[2, 4]),
        "axis 2 is out of range",
    );

    let lrn = Op::Lrn(Lrn {
        size: 0,
        alpha: 1e-4,
        beta: 0.75,
        bias: 1.0,
    });
    assert_refused(refusal(lrn, &[1, 2, 2, 2], &[], &[1, 2, 2, 2]), "size");
}

#[test]
fn weights_computed_at_run_time_are_shape_checked() {
    let mut w = ModelWriter::new("test");
    let x = w.input("x", &[1, 3]);
    let weight = w.input("w", &[2, 4]);
    let y = w.tensor("y", &[1, 2]);
    w.node("fc", Op::Linear, &[x, weight], &[y], Activation::None);
    w.output(y);
    let err = Model::from_vec(w.finish().unwrap()).err().unwrap();
    assert!(
        err.to_string()
            .contains("weight [2, 4] does not match input [1, 3]"),
        "{err}"
    );
}
