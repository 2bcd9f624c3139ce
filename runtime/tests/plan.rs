//! Memory planning on real graphs: a Reshape of a tensor nothing else reads shares its
//! memory and runs no copy; one whose input is still needed, or is the caller's, copies.

use lopper_runtime::format::ModelWriter;
use lopper_runtime::graph::{Activation, BinaryKind, Op};
use lopper_runtime::plan::plan;
use lopper_runtime::{Model, Session};

/// x [1, 2, 2, 2] -> Relu -> a -> Reshape [1, 8] -> b -> Reshape [8] -> c -> Neg -> y;
/// with `keep_a`, y is also added to a flattened copy of `a` read by a second node.
fn model(keep_a: bool) -> Model<'static> {
    let mut w = ModelWriter::new("plan");
    let x = w.input("x", &[1, 2, 2, 2]);
    let a = w.tensor("a", &[1, 2, 2, 2]);
    w.node("relu", Op::Unary, &[x], &[a], Activation::Relu);
    let b = w.tensor("b", &[1, 8]);
    w.node("flatten", Op::Reshape, &[a], &[b], Activation::None);
    let c = w.tensor("c", &[8]);
    w.node("squeeze", Op::Reshape, &[b], &[c], Activation::None);
    let y = w.tensor("y", &[8]);
    w.node("neg", Op::Unary, &[c], &[y], Activation::Neg);
    if keep_a {
        let d = w.tensor("d", &[8]);
        w.node("again", Op::Reshape, &[a], &[d], Activation::None);
        let z = w.tensor("z", &[8]);
        w.node(
            "sum",
            Op::Binary(BinaryKind::Add),
            &[y, d],
            &[z],
            Activation::None,
        );
        w.output(z);
    } else {
        w.output(y);
    }
    Model::from_vec(w.finish().unwrap()).unwrap()
}

fn run(model: &Model) -> Vec<f32> {
    let mut session = Session::new(model).unwrap();
    session
        .set_input(0, &[1.0, -2.0, 3.0, -4.0, 0.5, -0.5, 2.0, -1.0])
        .unwrap();
    session.run();
    session.output(0).unwrap().to_vec()
}

#[test]
fn a_reshape_chain_of_private_tensors_shares_memory_and_skips() {
    let model = model(false);
    let p = plan(model.graph()).unwrap();
    assert_eq!(p.skip, [false, true, true, false]);
    let range = |t: usize| p.tensors[t].clone().unwrap();
    assert_eq!(range(1), range(2), "a and b");
    assert_eq!(range(2), range(3), "b and c");
    assert_eq!(run(&model), [-1.0, 0.0, -3.0, 0.0, -0.5, 0.0, -2.0, 0.0]);
}

#[test]
fn a_reshape_of_a_tensor_read_twice_or_of_an_input_copies() {
    let model = model(true);
    let p = plan(model.graph()).unwrap();
    assert_eq!(p.skip, [false, false, true, false, false, false]);
    let range = |t: usize| p.tensors[t].clone().unwrap();
    assert_ne!(range(1), range(2), "a is read again after the flatten");
    // y + flattened relu(x) = 0 everywhere.
    assert_eq!(run(&model), [0.0; 8]);

    let mut w = ModelWriter::new("input");
    let x = w.input("x", &[2, 2]);
    let y = w.tensor("y", &[4]);
    w.node("flatten", Op::Reshape, &[x], &[y], Activation::None);
    w.output(y);
    let model = Model::from_vec(w.finish().unwrap()).unwrap();
    assert_eq!(plan(model.graph()).unwrap().skip, [false]);
    let mut session = Session::new(&model).unwrap();
    session.set_input(0, &[1.0, 2.0, 3.0, 4.0]).unwrap();
    session.run();
    assert_eq!(session.output(0).unwrap(), [1.0, 2.0, 3.0, 4.0]);
}
