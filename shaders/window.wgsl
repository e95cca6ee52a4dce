// A 2-D window over H×W planes (conv.wgsl's and pool.wgsl's), its geometry compiled in: one
// pipeline per layer shape, not per batch size. Every index divides by these, and a division by
// a constant compiles to a multiply and a shift where a division by a uniform is a long
// instruction sequence on GPUs and scalar code on CPU adapters (on lavapipe it cut MNIST's
// second conv from 3.39 to 2.31 s a step). `kernels::window_constants` sets them.
override HEIGHT: u32 = 1u;
override WIDTH: u32 = 1u;
override OUT_HEIGHT: u32 = 1u;
override OUT_WIDTH: u32 = 1u;
override KERNEL_H: u32 = 1u;
override KERNEL_W: u32 = 1u;
override STRIDE_H: u32 = 1u;
override STRIDE_W: u32 = 1u;
override PAD_H: u32 = 0u;
override PAD_W: u32 = 0u;
