//! Test helpers for the end-to-end CLI tests: a tiny ONNX model builder (prost messages,
//! opset 13, raw f32 initializers), deterministic pseudo-random weights, a temporary folder
//! that removes itself, and a runner for the real `lopper` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use lopper_converter::onnx::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use prost::Message;

// ---------------------------------------------------------------------------------------
// Deterministic weights
// ---------------------------------------------------------------------------------------

/// xorshift32: the same numbers on every machine and every run.
pub struct Rng(u32);

impl Rng {
    /// A generator from a nonzero seed.
    pub fn new(seed: u32) -> Self {
        Rng(seed.max(1))
    }

    /// The next raw value.
    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
        lo + (hi - lo) * unit
    }

    /// `n` values uniform in [lo, hi).
    pub fn values(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

// ---------------------------------------------------------------------------------------
// ONNX messages
// ---------------------------------------------------------------------------------------

/// One dimension of a graph input or output: fixed or symbolic.
#[derive(Clone, Copy)]
pub enum Dim {
    Fixed(i64),
    Symbolic(&'static str),
}

/// A float tensor with its values as little-endian `raw_data`.
pub fn tensor_f32(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    assert_eq!(
        dims.iter().product::<i64>() as usize,
        values.len(),
        "tensor '{name}': dims {dims:?} do not match {} values",
        values.len()
    );
    TensorProto {
        name: Some(name.to_string()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// A float tensor value description (graph input or output).
pub fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match *d {
                Dim::Fixed(v) => tensor_shape_proto::dimension::Value::DimValue(v),
                Dim::Symbolic(s) => tensor_shape_proto::dimension::Value::DimParam(s.to_string()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn attr_int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..Default::default()
    }
}

/// A float attribute.
pub fn attr_float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(value),
        ..Default::default()
    }
}

/// A list-of-integers attribute.
pub fn attr_ints(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Ints as i32),
        ints: values.to_vec(),
        ..Default::default()
    }
}

/// A named node of the default domain.
pub fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        name: Some(name.to_string()),
        op_type: Some(op.to_string()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attributes,
        ..Default::default()
    }
}

/// A model of opset 13 around `graph`.
pub fn model(graph: GraphProto) -> ModelProto {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        producer_name: Some("lopper-cli-tests".into()),
        graph: Some(graph),
        ..Default::default()
    }
}

/// Writes `model` as a binary protobuf.
pub fn write_model(model: &ModelProto, path: &Path) {
    std::fs::write(path, model.encode_to_vec())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

// ---------------------------------------------------------------------------------------
// The test models
// ---------------------------------------------------------------------------------------

/// Channels, size and classes of [`small_cnn`].
pub const IN_CHANNELS: usize = 3;
pub const HEIGHT: usize = 8;
pub const WIDTH: usize = 8;
pub const CHANNELS: usize = 4;
pub const KERNEL: usize = 3;
pub const CLASSES: usize = 3;

/// Node names of [`small_cnn`].
pub const CONV1: &str = "conv1";
pub const BN: &str = "bn1";
pub const RELU: &str = "relu1";
pub const POOL: &str = "pool1";
pub const CONV2: &str = "conv2";
pub const ADD: &str = "residual_add";
pub const GAP: &str = "gap";
pub const FLATTEN: &str = "flatten";
pub const FC: &str = "fc";
pub const SOFTMAX: &str = "softmax";

/// Input and output names of [`small_cnn`].
pub const INPUT: &str = "x";
pub const OUTPUT: &str = "probs";

/// `x[N,3,8,8] -> Conv(4, 3x3, pads 1) -> BatchNormalization -> Relu -> MaxPool 2x2 ->
/// Conv 1x1 -> Add(residual, the pool output) -> GlobalAveragePool -> Flatten ->
/// Gemm(transB=1) -> Softmax`, with a symbolic batch `N` and pseudo-random weights.
pub fn small_cnn() -> ModelProto {
    let mut rng = Rng::new(0x1ead_beef);
    let (c_in, c, k, classes) = (
        IN_CHANNELS as i64,
        CHANNELS as i64,
        KERNEL as i64,
        CLASSES as i64,
    );
    let initializer = vec![
        tensor_f32(
            "conv1.w",
            &[c, c_in, k, k],
            &rng.values((c * c_in * k * k) as usize, -0.5, 0.5),
        ),
        tensor_f32("conv1.b", &[c], &rng.values(CHANNELS, -0.1, 0.1)),
        tensor_f32("bn1.scale", &[c], &rng.values(CHANNELS, 0.5, 1.5)),
        tensor_f32("bn1.bias", &[c], &rng.values(CHANNELS, -0.2, 0.2)),
        tensor_f32("bn1.mean", &[c], &rng.values(CHANNELS, -0.1, 0.1)),
        tensor_f32("bn1.var", &[c], &rng.values(CHANNELS, 0.5, 1.5)),
        tensor_f32(
            "conv2.w",
            &[c, c, 1, 1],
            &rng.values(CHANNELS * CHANNELS, -0.5, 0.5),
        ),
        tensor_f32("conv2.b", &[c], &rng.values(CHANNELS, -0.1, 0.1)),
        tensor_f32(
            "fc.w",
            &[classes, c],
            &rng.values(CLASSES * CHANNELS, -1.0, 1.0),
        ),
        tensor_f32("fc.b", &[classes], &rng.values(CLASSES, -0.1, 0.1)),
    ];
    let nodes = vec![
        node(
            "Conv",
            CONV1,
            &[INPUT, "conv1.w", "conv1.b"],
            &["c1"],
            vec![
                attr_ints("kernel_shape", &[k, k]),
                attr_ints("pads", &[1, 1, 1, 1]),
                attr_ints("strides", &[1, 1]),
            ],
        ),
        node(
            "BatchNormalization",
            BN,
            &["c1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"],
            &["b1"],
            vec![attr_float("epsilon", 1e-5)],
        ),
        node("Relu", RELU, &["b1"], &["r1"], vec![]),
        node(
            "MaxPool",
            POOL,
            &["r1"],
            &["p1"],
            vec![
                attr_ints("kernel_shape", &[2, 2]),
                attr_ints("strides", &[2, 2]),
            ],
        ),
        node(
            "Conv",
            CONV2,
            &["p1", "conv2.w", "conv2.b"],
            &["c2"],
            vec![attr_ints("kernel_shape", &[1, 1])],
        ),
        node("Add", ADD, &["c2", "p1"], &["s1"], vec![]),
        node("GlobalAveragePool", GAP, &["s1"], &["g1"], vec![]),
        node(
            "Flatten",
            FLATTEN,
            &["g1"],
            &["f1"],
            vec![attr_int("axis", 1)],
        ),
        node(
            "Gemm",
            FC,
            &["f1", "fc.w", "fc.b"],
            &["logits"],
            vec![attr_int("transB", 1)],
        ),
        node(
            "Softmax",
            SOFTMAX,
            &["logits"],
            &[OUTPUT],
            vec![attr_int("axis", 1)],
        ),
    ];
    model(GraphProto {
        name: Some("small_cnn".into()),
        node: nodes,
        initializer,
        input: vec![value_info(
            INPUT,
            &[
                Dim::Symbolic("N"),
                Dim::Fixed(c_in),
                Dim::Fixed(HEIGHT as i64),
                Dim::Fixed(WIDTH as i64),
            ],
        )],
        output: vec![value_info(
            OUTPUT,
            &[Dim::Symbolic("N"), Dim::Fixed(classes)],
        )],
        ..Default::default()
    })
}

/// Node names and op types of the two unsupported nodes of [`unsupported_ops`].
pub const UNSUPPORTED: [(&str, &str); 2] = [("mystery_foo", "Foo"), ("mystery_bar", "Bar")];

/// `x[1,4]` into two branches, `Relu -> Foo` and `Relu -> Bar`, joined by an `Add`: two
/// different ops nobody supports, on two nodes that do not depend on each other, so an
/// importer that reports every problem at once must name both.
pub fn unsupported_ops() -> ModelProto {
    model(GraphProto {
        name: Some("unsupported".into()),
        node: vec![
            node("Relu", "ok_relu", &["x"], &["a"], vec![]),
            node(UNSUPPORTED[0].1, UNSUPPORTED[0].0, &["a"], &["b"], vec![]),
            node("Relu", "ok_relu2", &["x"], &["c"], vec![]),
            node(UNSUPPORTED[1].1, UNSUPPORTED[1].0, &["c"], &["d"], vec![]),
            node("Add", "join", &["b", "d"], &["y"], vec![]),
        ],
        input: vec![value_info("x", &[Dim::Fixed(1), Dim::Fixed(4)])],
        output: vec![value_info("y", &[Dim::Fixed(1), Dim::Fixed(4)])],
        ..Default::default()
    })
}

// ---------------------------------------------------------------------------------------
// Files and the binary
// ---------------------------------------------------------------------------------------

/// A fresh folder under the system temporary folder, removed when dropped (kept when
/// `LOPPER_TEST_KEEP_FILES` is set, to look at the files by hand).
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty folder whose name contains `label`, the process id and a counter.
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "lopper-cli-test-{label}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside the folder.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("LOPPER_TEST_KEEP_FILES").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// What one run of the binary did.
pub struct Run {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub args: Vec<String>,
}

impl Run {
    fn from(args: Vec<String>, out: Output) -> Self {
        Run {
            success: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            args,
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert!(
            self.success,
            "`lopper {}` failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Asserts a clean failure: exit code 1, an `error:` line, no panic and no backtrace
    /// hint; returns stderr.
    #[track_caller]
    pub fn fails(&self) -> &str {
        assert!(
            !self.success,
            "`lopper {}` succeeded but should fail:\nstdout:\n{}\nstderr:\n{}",
            self.args.join(" "),
            self.stdout,
            self.stderr
        );
        for bad in ["panicked", "RUST_BACKTRACE"] {
            assert!(
                !self.stderr.contains(bad),
                "`lopper {}` crashed instead of reporting an error:\n{}",
                self.args.join(" "),
                self.stderr
            );
        }
        assert_eq!(
            self.code,
            Some(1),
            "`lopper {}` exit code; stderr:\n{}",
            self.args.join(" "),
            self.stderr
        );
        assert!(
            self.stderr.starts_with("error: "),
            "`lopper {}` stderr does not start with 'error: ':\n{}",
            self.args.join(" "),
            self.stderr
        );
        &self.stderr
    }
}

/// Runs the `lopper` binary built for these tests with `args`.
pub fn lopper<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_lopper"))
        .args(&args)
        // A user's backtrace setting must not change what the tests see.
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("the lopper binary starts");
    Run::from(
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        out,
    )
}
