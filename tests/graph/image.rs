//! Image ops in graphs: Conv2d, pooling, BatchNorm2d and global average pooling alone, and a
//! small CNN whose Conv2d + ReLU pairs the fusion pass fuses, each against the f64 graph
//! interpreter and finite differences (see `dag.rs` for the method and its bounds).

use wgtrain::graph::{Graph, Mode, Weights};
use wgtrain::kernels::conv::Conv2dConfig;
use wgtrain::kernels::loss::Loss;
use wgtrain::kernels::norm::BatchNormConfig;
use wgtrain::train::{TrainConfig, Trainer};

use crate::common::gpu;
use crate::dag::{check, unary};

#[test]
fn conv2d_gradients_at_awkward_geometries() {
    // (input [C, H, W], out channels, kernel, stride, padding, dilation)
    for (dims, out, kernel, stride, padding, dilation) in [
        ([1, 5, 4], 2, [1, 1], [1, 1], [0, 0], [1, 1]),
        ([3, 5, 7], 2, [5, 5], [1, 1], [2, 2], [1, 1]),
        ([2, 7, 5], 3, [3, 3], [2, 2], [1, 1], [1, 1]),
        ([1, 7, 6], 2, [3, 2], [2, 1], [0, 1], [2, 1]),
        // CPU adapters run this one over a stored im2col matrix (C·T, Ho·Wo and O multiples of 4).
        ([4, 6, 5], 4, [3, 2], [1, 1], [0, 0], [1, 1]),
    ] {
        let config = Conv2dConfig {
            stride,
            padding,
            dilation,
        };
        let g = unary(&dims, Loss::Mse, |g, x| {
            g.conv2d("conv", x, out, kernel, config).expect("conv2d")
        });
        check(&format!("conv2d {dims:?} k{kernel:?} {config:?}"), &g, 0);
    }
}

/// Two convs that CPU adapters run over stored im2col matrices: a conv + ReLU, then a conv.
fn two_stored_convs() -> Graph {
    unary(&[2, 7, 6], Loss::Mse, |g, x| {
        let h = g
            .conv2d("0", x, 4, [3, 3], Conv2dConfig::default())
            .expect("conv");
        let h = g.relu(h).expect("relu");
        g.conv2d("2", h, 4, [2, 3], Conv2dConfig::default())
            .expect("conv")
    })
}

/// A conv whose input is a fused conv + ReLU, at a geometry CPU adapters run over a stored
/// im2col matrix: its input gradient applies the ReLU's derivative after gathering the columns.
#[test]
fn a_conv_over_stored_columns_masks_its_input_gradient_by_a_fused_relu() {
    check("conv over a fused conv + relu", &two_stored_convs(), 0);
}

/// The weight gradient reads the im2col matrix its forward stored (the layer's saved value)
/// instead of building it again: one im2col pass per layer in a training step, none more.
#[test]
fn a_training_step_builds_each_stored_im2col_matrix_once() {
    let graph = two_stored_convs();
    let weights = Weights::init(gpu(), &graph, 0).expect("weights");
    let mut trainer = Trainer::new(gpu(), graph, weights, TrainConfig::default()).expect("trainer");
    let plan = trainer.plan(3, Mode::Train).expect("plan");
    let builds = plan
        .labels()
        .iter()
        .filter(|l| l.contains("im2col"))
        .count();
    let cpu = gpu().adapter_info().device_type == wgpu::DeviceType::Cpu;
    assert_eq!(builds, if cpu { 2 } else { 0 }, "{:?}", plan.labels());
}

#[test]
fn pooling_gradients_max_and_average() {
    for (kernel, stride, padding) in [([2, 2], [2, 2], [0, 0]), ([3, 3], [2, 1], [1, 1])] {
        let g = unary(&[2, 5, 7], Loss::Mse, |g, x| {
            g.max_pool2d(x, kernel, stride, padding).expect("pool")
        });
        check(&format!("max pool k{kernel:?}"), &g, 0);
        let g = unary(&[2, 5, 7], Loss::Mse, |g, x| {
            g.avg_pool2d(x, kernel, stride, padding).expect("pool")
        });
        check(&format!("avg pool k{kernel:?}"), &g, 0);
    }
}

#[test]
fn batch_norm_2d_and_global_average_pooling() {
    let g = unary(&[3, 4, 5], Loss::Mse, |g, x| {
        let y = g
            .batch_norm("bn", x, BatchNormConfig::default())
            .expect("bn");
        g.global_avg_pool(y).expect("pool")
    });
    check("batch_norm 2d + global avg pool", &g, 0);
}

/// PyTorch's MNIST network at a small size: conv, ReLU, conv, ReLU, max pool, dropout,
/// flatten, linear, ReLU, dropout, linear. The first ReLU fuses into its conv, whose
/// consumer (the second conv) applies the ReLU's derivative in its input-gradient product.
pub(crate) fn small_cnn(channels: usize, side: usize) -> Graph {
    let mut g = Graph::new();
    let x = g.input("x", &[channels, side, side]).expect("input");
    let same = Conv2dConfig::default();
    let h = g.conv2d("0", x, 3, [3, 3], same).expect("conv");
    let h = g.relu(h).expect("relu");
    let h = g.conv2d("2", h, 4, [3, 3], same).expect("conv");
    let h = g.relu(h).expect("relu");
    let h = g.max_pool2d(h, [2, 2], [2, 2], [0, 0]).expect("pool");
    let h = g.dropout(h, 0.25).expect("dropout");
    let h = g.flatten(h).expect("flatten");
    let h = g.linear("7", h, 6).expect("linear");
    let h = g.relu(h).expect("relu");
    let h = g.dropout(h, 0.5).expect("dropout");
    let y = g.linear("10", h, 3).expect("linear");
    g.set_output(y, Loss::CrossEntropy).expect("output");
    g
}

#[test]
fn a_small_cnn_with_fused_conv_relu_matches_finite_differences() {
    check("small cnn", &small_cnn(2, 9), 0);
}

/// The fusion pass takes a ReLU into the product before it wherever every consumer can apply
/// its derivative, a max pool included: of the small CNN's three ReLUs only the one before a
/// dropout still runs on its own, forward and backward.
#[test]
fn relus_before_convs_and_max_pools_ride_in_the_products() {
    let graph = small_cnn(2, 9);
    let weights = Weights::init(gpu(), &graph, 0).expect("weights");
    let mut trainer = Trainer::new(gpu(), graph, weights, TrainConfig::default()).expect("trainer");
    let labels = trainer.plan(4, Mode::Train).expect("plan").labels();
    for pass in ["activation_forward", "activation_backward"] {
        let count = labels.iter().filter(|&&l| l == pass).count();
        assert_eq!(count, 1, "{pass} in {labels:?}");
    }
}

#[test]
fn conv2d_and_pooling_refuse_shapes_pytorch_refuses() {
    let mut g = Graph::new();
    let flat = g.input("flat", &[784]).expect("input");
    let image = g.input("image", &[1, 4, 4]).expect("input");
    let same = Conv2dConfig::default();
    assert!(
        g.conv2d("a", flat, 2, [3, 3], same).is_err(),
        "rank 1 input"
    );
    assert!(
        g.conv2d("b", image, 2, [5, 5], same).is_err(),
        "kernel over the image"
    );
    let zero_stride = Conv2dConfig {
        stride: [0, 1],
        ..same
    };
    assert!(
        g.conv2d("c", image, 2, [3, 3], zero_stride).is_err(),
        "stride 0"
    );
    assert!(
        g.max_pool2d(image, [2, 2], [2, 2], [2, 0]).is_err(),
        "padding over half"
    );
    assert!(
        g.max_pool2d(flat, [2, 2], [2, 2], [0, 0]).is_err(),
        "rank 1 input"
    );
    assert!(
        g.params().is_empty(),
        "a refused layer leaves no parameters behind"
    );
}

#[test]
fn idx_images_are_one_channel_images_and_only_fit_inputs_of_their_size() {
    use wgtrain::data::{DeviceDataset, Split, load_mnist};
    use wgtrain::train::{TrainConfig, Trainer};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist-10k");
    let mut data = load_mnist(&dir, Split::Test).expect("bundled MNIST");
    data.split_off(16).expect("split");
    assert_eq!(data.sample_dims(), [1, 28, 28]);
    assert!(data.fits_input(&[1, 28, 28]) && data.fits_input(&[784]));
    assert!(!data.fits_input(&[1, 14, 56]), "784 pixels, but not 28×28");

    let device = DeviceDataset::upload(crate::common::gpu(), &data).expect("upload");
    let config = TrainConfig {
        batch_size: 8,
        ..TrainConfig::default()
    };
    for (dims, fits) in [([1, 28, 28], true), ([1, 14, 56], false)] {
        let mut g = Graph::new();
        let x = g.input("x", &dims).expect("input");
        let h = g.flatten(x).expect("flatten");
        let y = g.linear("0", h, 10).expect("linear");
        g.set_output(y, Loss::CrossEntropy).expect("output");
        let mut trainer =
            Trainer::for_graph(crate::common::gpu(), g, config.clone()).expect("trainer");
        let result = trainer.fit_epoch(&device, 0, &mut |_| {});
        assert_eq!(result.is_ok(), fits, "{dims:?}: {result:?}");
    }
}
