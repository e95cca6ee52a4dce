//! Every params struct a kernel binds is the Rust twin of a WGSL struct of the same name:
//! their sizes and member offsets are compared here, where the structs are visible.

use std::mem::{offset_of, size_of};

use super::attention::AttentionParams;
use super::conv::ConvParams;
use super::coop_matmul::CoopParams;
use super::data::GatherParams;
use super::elementwise::ElementwiseParams;
use super::half::HalfParams;
use super::layernorm::LayerNormParams;
use super::loss::LossParams;
use super::matmul::MatmulParams;
use super::norm::NormParams;
use super::optim::{OptimParams, StepParams};
use super::pool::PoolParams;
use super::random::RandomParams;
use super::reduce::ReduceParams;
use super::softmax::SoftmaxParams;
use super::tensor::TensorParams;
use super::text::BlockParams;

/// Every params struct exists once in Rust (`#[repr(C)]`, `Pod`) and once in WGSL; their sizes
/// and member offsets must agree or the kernels read the wrong fields.
#[test]
fn rust_params_structs_match_their_wgsl_layouts() {
    let expected: Vec<(&str, &str, usize, Vec<usize>)> = vec![
        (
            "coop_matmul",
            "CoopParams",
            size_of::<CoopParams>(),
            vec![
                offset_of!(CoopParams, m),
                offset_of!(CoopParams, n),
                offset_of!(CoopParams, k),
                offset_of!(CoopParams, _pad),
            ],
        ),
        (
            "half",
            "HalfParams",
            size_of::<HalfParams>(),
            vec![
                offset_of!(HalfParams, rows),
                offset_of!(HalfParams, cols),
                offset_of!(HalfParams, padded_rows),
                offset_of!(HalfParams, padded_cols),
            ],
        ),
        (
            "matmul",
            "MatmulParams",
            size_of::<MatmulParams>(),
            vec![
                offset_of!(MatmulParams, m),
                offset_of!(MatmulParams, n),
                offset_of!(MatmulParams, k),
                offset_of!(MatmulParams, slope),
                offset_of!(MatmulParams, stride_a),
                offset_of!(MatmulParams, stride_b),
                offset_of!(MatmulParams, stride_c),
                offset_of!(MatmulParams, k_chunk),
            ],
        ),
        (
            "tensor",
            "TensorParams",
            size_of::<TensorParams>(),
            vec![
                offset_of!(TensorParams, n),
                offset_of!(TensorParams, rank),
                offset_of!(TensorParams, x_base),
                offset_of!(TensorParams, out_base),
                offset_of!(TensorParams, alpha),
                offset_of!(TensorParams, ny),
                offset_of!(TensorParams, axis_len),
                offset_of!(TensorParams, inner),
                offset_of!(TensorParams, shape),
                offset_of!(TensorParams, x_strides),
                offset_of!(TensorParams, out_strides),
            ],
        ),
        (
            "softmax",
            "SoftmaxParams",
            size_of::<SoftmaxParams>(),
            vec![
                offset_of!(SoftmaxParams, rows),
                offset_of!(SoftmaxParams, cols),
                offset_of!(SoftmaxParams, causal_t),
                offset_of!(SoftmaxParams, _pad),
            ],
        ),
        (
            "conv",
            "ConvParams",
            size_of::<ConvParams>(),
            vec![
                offset_of!(ConvParams, m),
                offset_of!(ConvParams, n),
                offset_of!(ConvParams, k),
                offset_of!(ConvParams, k_chunk),
                offset_of!(ConvParams, slope),
                offset_of!(ConvParams, _pad0),
                offset_of!(ConvParams, _pad1),
                offset_of!(ConvParams, _pad2),
            ],
        ),
        (
            "pool",
            "PoolParams",
            size_of::<PoolParams>(),
            vec![
                offset_of!(PoolParams, planes),
                offset_of!(PoolParams, slope),
                offset_of!(PoolParams, _pad1),
                offset_of!(PoolParams, _pad2),
            ],
        ),
        (
            "layernorm",
            "LayerNormParams",
            size_of::<LayerNormParams>(),
            vec![
                offset_of!(LayerNormParams, rows),
                offset_of!(LayerNormParams, cols),
                offset_of!(LayerNormParams, eps),
                offset_of!(LayerNormParams, _pad),
            ],
        ),
        (
            "elementwise",
            "ElementwiseParams",
            size_of::<ElementwiseParams>(),
            vec![
                offset_of!(ElementwiseParams, n),
                offset_of!(ElementwiseParams, act),
                offset_of!(ElementwiseParams, slope),
                offset_of!(ElementwiseParams, alpha),
            ],
        ),
        (
            "reduce",
            "ReduceParams",
            size_of::<ReduceParams>(),
            vec![
                offset_of!(ReduceParams, rows),
                offset_of!(ReduceParams, cols),
                offset_of!(ReduceParams, scale),
                offset_of!(ReduceParams, _pad),
            ],
        ),
        (
            "loss",
            "LossParams",
            size_of::<LossParams>(),
            vec![
                offset_of!(LossParams, rows),
                offset_of!(LossParams, cols),
                offset_of!(LossParams, delta),
                offset_of!(LossParams, grad_scale),
            ],
        ),
        (
            "norm",
            "NormParams",
            size_of::<NormParams>(),
            vec![
                offset_of!(NormParams, rows),
                offset_of!(NormParams, cols),
                offset_of!(NormParams, inner),
                offset_of!(NormParams, eps),
                offset_of!(NormParams, momentum),
                offset_of!(NormParams, _pad0),
                offset_of!(NormParams, _pad1),
                offset_of!(NormParams, _pad2),
            ],
        ),
        (
            "data",
            "GatherParams",
            size_of::<GatherParams>(),
            vec![
                offset_of!(GatherParams, rows),
                offset_of!(GatherParams, cols),
                offset_of!(GatherParams, offset),
                offset_of!(GatherParams, scale),
            ],
        ),
        (
            "attention32",
            "AttentionParams",
            size_of::<AttentionParams>(),
            vec![
                offset_of!(AttentionParams, batch),
                offset_of!(AttentionParams, seq),
                offset_of!(AttentionParams, heads),
                offset_of!(AttentionParams, head_dim),
                offset_of!(AttentionParams, scale),
                offset_of!(AttentionParams, _pad0),
                offset_of!(AttentionParams, _pad1),
                offset_of!(AttentionParams, _pad2),
            ],
        ),
        (
            "text",
            "BlockParams",
            size_of::<BlockParams>(),
            vec![
                offset_of!(BlockParams, rows),
                offset_of!(BlockParams, block),
                offset_of!(BlockParams, starts),
                offset_of!(BlockParams, salt),
            ],
        ),
        (
            "random",
            "RandomParams",
            size_of::<RandomParams>(),
            vec![
                offset_of!(RandomParams, n),
                offset_of!(RandomParams, salt),
                offset_of!(RandomParams, drop_threshold),
                offset_of!(RandomParams, keep_scale),
                offset_of!(RandomParams, height),
                offset_of!(RandomParams, width),
                offset_of!(RandomParams, max_shift),
                offset_of!(RandomParams, max_degrees),
                offset_of!(RandomParams, max_scale),
                offset_of!(RandomParams, _pad0),
                offset_of!(RandomParams, _pad1),
                offset_of!(RandomParams, _pad2),
            ],
        ),
        (
            "optim",
            "OptimParams",
            size_of::<OptimParams>(),
            vec![
                offset_of!(OptimParams, n),
                offset_of!(OptimParams, flags),
                offset_of!(OptimParams, beta1),
                offset_of!(OptimParams, beta2),
                offset_of!(OptimParams, eps),
                offset_of!(OptimParams, weight_decay),
                offset_of!(OptimParams, l1),
                offset_of!(OptimParams, dampening),
                offset_of!(OptimParams, lr_scale),
                offset_of!(OptimParams, _pad),
                offset_of!(OptimParams, _pad) + 4,
                offset_of!(OptimParams, _pad) + 8,
            ],
        ),
        (
            "optim",
            "StepParams",
            size_of::<StepParams>(),
            vec![
                offset_of!(StepParams, step),
                offset_of!(StepParams, seed),
                offset_of!(StepParams, lr),
                offset_of!(StepParams, step_size),
                offset_of!(StepParams, bias_correction2_sqrt),
                offset_of!(StepParams, slot),
                offset_of!(StepParams, _pad),
                offset_of!(StepParams, _pad) + 4,
            ],
        ),
    ];
    let sources: std::collections::HashMap<_, _> = super::shader_sources().into_iter().collect();
    for (family, name, size, offsets) in expected {
        let module = naga::front::wgsl::parse_str(&sources[family]).expect("parses");
        let (members, span) = module
            .types
            .iter()
            .find_map(|(_, ty)| match &ty.inner {
                naga::TypeInner::Struct { members, span } if ty.name.as_deref() == Some(name) => {
                    Some((members.clone(), *span))
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{family}.wgsl has no struct {name}"));
        assert_eq!(
            span as usize, size,
            "{name}: WGSL size {span} vs Rust {size}"
        );
        let wgsl: Vec<usize> = members.iter().map(|m| m.offset as usize).collect();
        assert_eq!(wgsl, offsets, "{name}: WGSL member offsets vs Rust");
    }
}
