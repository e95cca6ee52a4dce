use wgtrain::kernels::optim::{UpdateBuffers, update};
use wgtrain::optim::Optimizer;
use wgtrain::reference::OptimizerReference;

use crate::common::*;

/// The seven optimizers (and the variants torch.optim offers on them), each with a weight
/// decay so the penalty path runs too.
fn optimizers() -> Vec<(&'static str, Optimizer, f32)> {
    vec![
        ("sgd", Optimizer::sgd(0.05).with_weight_decay(1e-3), 1e-4),
        (
            "momentum",
            Optimizer::Sgd {
                lr: 0.05,
                momentum: 0.9,
                dampening: 0.1,
                nesterov: false,
                weight_decay: 1e-3,
            },
            0.0,
        ),
        (
            "nesterov",
            Optimizer::nesterov(0.05, 0.9).with_weight_decay(1e-3),
            0.0,
        ),
        (
            "adagrad",
            Optimizer::Adagrad {
                lr: 0.05,
                lr_decay: 0.01,
                weight_decay: 1e-3,
                eps: 1e-10,
            },
            0.0,
        ),
        (
            "rmsprop",
            Optimizer::rmsprop(0.01).with_weight_decay(1e-3),
            0.0,
        ),
        (
            "rmsprop centered momentum",
            Optimizer::Rmsprop {
                lr: 0.01,
                alpha: 0.9,
                eps: 1e-8,
                weight_decay: 0.0,
                momentum: 0.5,
                centered: true,
            },
            0.0,
        ),
        ("adam", Optimizer::adam(0.01).with_weight_decay(1e-3), 1e-4),
        (
            "adam amsgrad",
            Optimizer::Adam {
                lr: 0.01,
                betas: (0.8, 0.99),
                eps: 1e-8,
                weight_decay: 0.0,
                amsgrad: true,
            },
            0.0,
        ),
        ("adamw", Optimizer::adamw(0.01), 0.0),
    ]
}

#[test]
fn every_optimizer_matches_the_torch_formula_for_100_steps() {
    let mut rng = rng("optimizers");
    // 1000 and 9000 run the vec4 kernels, 1001 and 9001 the f32 ones. A thread updates up to
    // 8 Vecs a grid apart: at 1000 and 1001 only its first, at 9000 and 9001 several, the
    // last of them past the end for some threads.
    for (n, (name, optimizer, l1)) in [1000, 1001, 9000, 9001]
        .into_iter()
        .flat_map(|n| optimizers().into_iter().map(move |o| (n, o)))
    {
        let p0 = rng.uniform(n, -1.0, 1.0);
        let param = upload(&p0, &[n]);
        let grad = poisoned(&[n]);
        let states: Vec<_> = (0..3).map(|_| gpu().zeros(&[n]).expect("alloc")).collect();
        let clip = upload(&[0.0, 0.7], &[2]);
        let ring = gpu().device().create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: wgtrain::gpu::STEP_SLOT_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let dispatch = update(
            gpu(),
            &optimizer,
            l1,
            &UpdateBuffers {
                step_ring: &ring,
                grad: &grad,
                clip: &clip,
                param: &param,
                states: [&states[0], &states[1], &states[2]],
            },
        )
        .expect("shapes");
        let mut reference = OptimizerReference::new(optimizer, f64::from(l1), n);
        let mut p = f64s(&p0);
        for t in 1..=100u64 {
            let g = rng.uniform(n, -1.0, 1.0);
            gpu().write(&grad, &g).expect("upload");
            let lr = f64::from(optimizer.lr());
            let step = optimizer.step_params(t, lr, 0);
            gpu()
                .queue()
                .write_buffer(&ring, 0, bytemuck::bytes_of(&step));
            run(&[&dispatch]);
            // The clip coefficient 0.7 is applied to the gradient before the rule.
            let clipped: Vec<f64> = g
                .iter()
                .map(|&v| f64::from(v) * f64::from(0.7f32))
                .collect();
            reference.step(lr, &mut p, &clipped);
        }
        // Each step rounds a handful of times (≈ 10 u relative on the update); over 100 steps
        // the parameters, of order 1, drift by at most 100 · 10 u · |p| ≈ 6e-5, and adaptive
        // rules divide by √v, which amplifies relative error in small v: 2e-4 absolute
        // covers that, while swapping β1/β2 or dropping a term moves p by > 1e-2.
        assert_close(
            &format!("{name} n={n} after 100 steps"),
            &read(&param),
            &p,
            2e-4,
            2e-4,
        );
    }
}

#[test]
fn swapped_betas_are_caught() {
    // The tester's own check: the same comparison fails on a subtly wrong optimizer.
    let mut right = OptimizerReference::new(Optimizer::adam(0.01), 0.0, 1);
    let mut wrong = OptimizerReference::new(
        Optimizer::Adam {
            lr: 0.01,
            betas: (0.999, 0.9),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
        },
        0.0,
        1,
    );
    let (mut a, mut b) = (vec![0.5], vec![0.5]);
    for t in 0..100 {
        let g = [((t * 7919) % 13) as f64 / 13.0 - 0.5];
        right.step(0.01, &mut a, &g);
        wrong.step(0.01, &mut b, &g);
    }
    assert!(
        (a[0] - b[0]).abs() > 2e-4 + 2e-4 * a[0].abs(),
        "{a:?} vs {b:?}"
    );
}

/// What torch.optim refuses (a negative eps, weight_decay, momentum, alpha or lr_decay) is
/// refused, and so is any non-finite hyper-parameter (every update would be NaN); the
/// optimizers the tests above step all pass.
#[test]
fn hyper_parameters_torch_refuses_or_that_are_not_finite_are_refused() {
    for (name, optimizer, _) in optimizers() {
        optimizer
            .validate()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let sgd = |momentum, dampening, weight_decay| Optimizer::Sgd {
        lr: 0.1,
        momentum,
        dampening,
        nesterov: false,
        weight_decay,
    };
    let rmsprop = |alpha, eps| Optimizer::Rmsprop {
        lr: 0.1,
        alpha,
        eps,
        weight_decay: 0.0,
        momentum: 0.0,
        centered: false,
    };
    let adagrad = |lr_decay| Optimizer::Adagrad {
        lr: 0.1,
        lr_decay,
        weight_decay: 0.0,
        eps: 1e-10,
    };
    let adam_eps = |eps| Optimizer::Adam {
        lr: 0.1,
        betas: (0.9, 0.999),
        eps,
        weight_decay: 0.0,
        amsgrad: false,
    };
    for (what, bad) in [
        ("negative momentum", sgd(-0.9, 0.0, 0.0)),
        ("infinite dampening", sgd(0.9, f32::INFINITY, 0.0)),
        ("negative weight decay", sgd(0.0, 0.0, -1e-4)),
        (
            "NaN weight decay",
            Optimizer::adamw(0.1).with_weight_decay(f32::NAN),
        ),
        ("negative alpha", rmsprop(-0.99, 1e-8)),
        ("infinite eps", rmsprop(0.99, f32::INFINITY)),
        ("negative lr_decay", adagrad(-0.1)),
        ("negative eps", adam_eps(-1e-8)),
        ("NaN eps", adam_eps(f32::NAN)),
    ] {
        let error = bad.validate().expect_err(what);
        assert!(
            error
                .to_string()
                .contains("must be finite and not negative"),
            "{what}: {error}"
        );
    }
    sgd(0.9, -0.5, 0.0)
        .validate()
        .expect("torch takes any dampening");
    adam_eps(0.0).validate().expect("torch takes eps 0");
}
