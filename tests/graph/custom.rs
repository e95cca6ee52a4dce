//! User-defined ops: WGSL forward and VJP checked against a graph of built-in ops computing
//! the same function, validated by naga when built, refused where they cannot differentiate.

use wgtrain::graph::{CustomOp, CustomShape, Graph, Mode, Weights};
use wgtrain::kernels::loss::Loss;
use wgtrain::train::{TrainConfig, Trainer};

use crate::common::*;
use crate::dag::{check_against, trainable};

/// swish(x) = x · σ(x), with its derivative σ(x)(1 + x(1 − σ(x))).
fn swish() -> CustomOp {
    CustomOp {
        name: "swish".into(),
        wgsl: r#"
fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = thread_index(gid, groups);
    if i >= params.n { return; }
    out[i] = in0[i] * sigmoid(in0[i]);
}

@compute @workgroup_size(64)
fn backward_0(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = thread_index(gid, groups);
    if i >= params.n { return; }
    let s = sigmoid(in0[i]);
    dinp[i] = dout[i] * s * (1.0 + in0[i] * (1.0 - s));
}
"#
        .into(),
        output: CustomShape::SameAsInput(0),
    }
}

/// a ⊙ b + a over two inputs; `with_backward_1` false leaves b without a VJP.
fn fma(with_backward_1: bool) -> CustomOp {
    let mut wgsl = String::from(
        r#"
@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = thread_index(gid, groups);
    if i >= params.n { return; }
    out[i] = in0[i] * in1[i] + in0[i];
}

@compute @workgroup_size(64)
fn backward_0(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = thread_index(gid, groups);
    if i >= params.n { return; }
    dinp[i] = dout[i] * (in1[i] + 1.0);
}
"#,
    );
    if with_backward_1 {
        wgsl += r#"
@compute @workgroup_size(64)
fn backward_1(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = thread_index(gid, groups);
    if i >= params.n { return; }
    dinp[i] = dout[i] * in0[i];
}
"#;
    }
    CustomOp {
        name: "fma".into(),
        wgsl,
        output: CustomShape::SameAsInput(0),
    }
}

/// x → trainable → body → Linear head, trained with MSE.
fn model(body: impl FnOnce(&mut Graph, wgtrain::graph::NodeId) -> wgtrain::graph::NodeId) -> Graph {
    let mut g = Graph::new();
    let x = g.input("x", &[2, 5]).expect("input");
    let x = trainable(&mut g, "x_bias", x);
    let h = body(&mut g, x);
    let y = g.linear("head", h, 3).expect("head");
    g.set_output(y, Loss::Mse).expect("output");
    g
}

#[test]
fn a_custom_activation_matches_the_same_function_built_from_ops() {
    let custom = model(|g, x| g.custom(swish(), &[x]).expect("valid custom op"));
    let builtin = model(|g, x| {
        let s = g.sigmoid(x).expect("op");
        g.mul(x, s).expect("op")
    });
    check_against("swish", &custom, &builtin, 0);
}

#[test]
fn a_custom_op_with_two_inputs_and_its_json_round_trip() {
    let build = |custom: bool| {
        model(|g, x| {
            let p = g.param("scale", &[2, 5], wgtrain::graph::Init::Constant(0.0));
            let p = g.value(p).expect("value");
            let b = g.add(x, p).expect("op"); // a second operand needing a gradient
            if custom {
                g.custom(fma(true), &[x, b]).expect("valid custom op")
            } else {
                let ab = g.mul(x, b).expect("op");
                g.add(ab, x).expect("op")
            }
        })
    };
    let custom = build(true);
    check_against("fma", &custom, &build(false), 0);
    let json = custom.to_json().expect("json");
    let back = Graph::from_json(&json, std::path::Path::new("custom.json")).expect("loads");
    assert_eq!(back, custom);
}

#[test]
fn custom_ops_are_checked_when_built_and_refused_where_they_cannot_differentiate() {
    let mut g = Graph::new();
    let x = g.input("x", &[4]).expect("input");
    let broken = |wgsl: &str| CustomOp {
        name: "broken".into(),
        wgsl: wgsl.into(),
        output: CustomShape::SameAsInput(0),
    };
    for (wgsl, expected) in [
        ("fn forward( {", "broken"),
        ("fn helper() {}", "no `forward`"),
        (
            "@compute @workgroup_size(8) fn forward() {}",
            "workgroup_size(64)",
        ),
        (
            "@compute @workgroup_size(64) fn forward() { out[0] = undefined_name; }",
            "undefined_name",
        ),
    ] {
        let error = g.custom(broken(wgsl), &[x]).expect_err("invalid WGSL");
        assert!(error.to_string().contains(expected), "{error}");
    }

    // No backward_1 while input 1 depends on a parameter: refused when the plan compiles.
    let graph = model(|g, x| {
        let p = g.param("b", &[2, 5], wgtrain::graph::Init::Constant(0.5));
        let p = g.value(p).expect("value");
        g.custom(fma(false), &[x, p]).expect("valid custom op")
    });
    let weights = Weights::init(gpu(), &graph, 0).expect("weights");
    let mut trainer = Trainer::new(gpu(), graph, weights, TrainConfig::default()).expect("trainer");
    let error = trainer
        .plan(4, Mode::Train)
        .expect_err("not differentiable");
    assert!(error.to_string().contains("backward_1"), "{error}");
    // Evaluation needs no backward.
    trainer.plan(4, Mode::Eval).expect("an eval plan");
}
