// Per-step values shared by the optimizer and random kernels, one 256-byte slot per step in a
// ring chosen by a dynamic offset, so several steps can go into one submission.
struct StepParams {
    // 1-based optimizer step t.
    step: u32,
    // Seed of the run's counter-based random numbers.
    seed: u32,
    // Learning rate at this step (after schedule and warm-up; AdaGrad's lr decay included).
    lr: f32,
    // Adam: lr / (1 − β1^t); computed on the host in f64.
    step_size: f32,
    // Adam: sqrt(1 − β2^t); computed on the host in f64.
    bias_correction2_sqrt: f32,
    // This step's index within its submission: its slot in this ring and the loss ring.
    slot: u32,
    _pad1: u32,
    _pad2: u32,

}
