//! Compiled kernels and recorded dispatches. A kernel is one WGSL entry point with an explicit
//! binding list; it is compiled once per set of override constants and cached on the `Gpu`.
//! A [`Dispatch`] is a kernel with its bind group and grid, created once and recorded into as
//! many compute passes as needed.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};

/// One WGSL module: a family file, with the shared snippets it uses prepended.
pub(crate) struct Shader {
    pub name: &'static str,
    pub source: fn() -> String,
    /// Compiled without naga's bounds checks and loop bounds: only for families whose every
    /// index, into workgroup arrays and storage alike, is in range by construction for the
    /// shapes their launchers accept (they check every load against M, N and K and store only
    /// inside C), and whose every loop ends. Where a Vulkan driver has robust buffer access
    /// wgpu enables it, guarding storage besides. The clamps and loop counters cost the matmul
    /// tiles' inner loops on GPUs: on an H200 the f32 4096³ product went from 27.9 to 31.8
    /// TFLOP/s without them (`bench/results/h200-2026-11-27.md`).
    pub trusted: bool,
}

/// How a kernel sees one binding; binding `i` of the list is `@binding(i)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Access {
    /// Per-dispatch parameters, fixed when the dispatch is created.
    Uniform,
    /// Per-step parameters (learning rate, step count, RNG key) in a ring of 256-byte slots
    /// chosen by a dynamic offset, so several steps can share one submission.
    StepUniform,
    Read,
    ReadWrite,
}

/// A WGSL entry point and the bindings it declares.
pub(crate) struct KernelSpec {
    pub shader: &'static Shader,
    pub entry: &'static str,
    pub bindings: &'static [Access],
}

/// One entry point compiled twice: over vec4s, for buffers whose length is a multiple of 4,
/// and over f32s for the rest (the families whose source takes `alias Vec = ...`).
pub(crate) struct Widths {
    pub wide: KernelSpec,
    pub scalar: KernelSpec,
}

impl Widths {
    pub(crate) const fn new(
        (wide, scalar): (&'static Shader, &'static Shader),
        bindings: &'static [Access],
        entry: &'static str,
    ) -> Self {
        Widths {
            wide: KernelSpec {
                shader: wide,
                entry,
                bindings,
            },
            scalar: KernelSpec {
                shader: scalar,
                entry,
                bindings,
            },
        }
    }

    /// The kernel for `len` elements and the elements per `Vec` it handles.
    pub(crate) fn for_len(&self, len: usize) -> (&KernelSpec, usize) {
        if len.is_multiple_of(4) {
            (&self.wide, 4)
        } else {
            (&self.scalar, 1)
        }
    }
}

/// Byte stride of one slot in a step-uniform ring (the dynamic-offset alignment of every
/// adapter).
pub const STEP_SLOT_BYTES: u64 = 256;

#[derive(Debug)]
pub(crate) struct CompiledKernel {
    /// Set once created (or failed): at once, or by a worker thread inside
    /// [`Gpu::compiling_concurrently`], which another thread's cache hit may have to wait for.
    pipeline: OnceLock<std::result::Result<wgpu::ComputePipeline, String>>,
    layout: wgpu::BindGroupLayout,
    label: Arc<str>,
}

/// A pipeline a worker thread is creating, with the cache key to drop if it fails.
#[cfg(not(target_arch = "wasm32"))]
type PendingPipeline = (PipelineKey, std::thread::JoinHandle<Result<()>>);

#[cfg(not(target_arch = "wasm32"))]
thread_local! {
    /// The pipelines this thread's [`Gpu::compiling_concurrently`] is waiting for; `None`
    /// outside one, where pipelines are created on the spot.
    static PENDING: std::cell::RefCell<Option<Vec<PendingPipeline>>> =
        const { std::cell::RefCell::new(None) };
}

/// A pipeline to create for a compiled kernel.
struct PipelineJob {
    device: wgpu::Device,
    module: wgpu::ShaderModule,
    layout: wgpu::PipelineLayout,
    kernel: Arc<CompiledKernel>,
    constants: Vec<(&'static str, f64)>,
    label: String,
}

impl PipelineJob {
    /// Creates the pipeline; natively a validation error is caught here, named by its kernel
    /// (error scopes are per thread, so this works on a worker too).
    fn run(self) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&self.label),
                layout: Some(&self.layout),
                module: &self.module,
                entry_point: Some(&self.kernel.label),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &self.constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        #[cfg(not(target_arch = "wasm32"))]
        let created = match pollster::block_on(scope.pop()) {
            Some(error) => Err(format!("compiling {}: {error}", self.label)),
            None => Ok(pipeline),
        };
        #[cfg(target_arch = "wasm32")]
        let created = Ok(pipeline);
        // Only this job sets it.
        let _ = self.kernel.pipeline.set(created.clone());
        created.map(drop).map_err(Error::Gpu)
    }
}

/// Hands `job` to a worker thread when this thread is inside
/// [`Gpu::compiling_concurrently`]; otherwise gives it back to run now. At most one worker
/// per core creates a pipeline at a time (a plan may need fifty, each holding a compiler's
/// memory).
#[cfg(not(target_arch = "wasm32"))]
fn defer(key: &PipelineKey, job: PipelineJob) -> Option<PipelineJob> {
    PENDING.with_borrow_mut(|pending| match pending {
        Some(pending) => {
            pending.push((key.clone(), std::thread::spawn(|| job.run_in_turn())));
            None
        }
        None => Some(job),
    })
}

#[cfg(target_arch = "wasm32")]
fn defer(_: &PipelineKey, job: PipelineJob) -> Option<PipelineJob> {
    Some(job)
}

#[cfg(not(target_arch = "wasm32"))]
impl PipelineJob {
    /// [`PipelineJob::run`] once fewer workers than cores are running one.
    fn run_in_turn(self) -> Result<()> {
        static BUSY: (std::sync::Mutex<usize>, std::sync::Condvar) =
            (std::sync::Mutex::new(0), std::sync::Condvar::new());
        let poisoned = |_| Error::Gpu("pipeline workers' count poisoned".into());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (busy, freed) = &BUSY;
        let mut running = freed
            .wait_while(busy.lock().map_err(poisoned)?, |running| *running >= cores)
            .map_err(poisoned)?;
        *running += 1;
        drop(running);
        let created = self.run();
        *busy.lock().map_err(poisoned)? -= 1;
        freed.notify_one();
        created
    }
}

/// Module (a family's name, or a user op's full source), entry point, override constants.
type PipelineKey = (Arc<str>, Arc<str>, Vec<(&'static str, u64)>);

#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: HashMap<Arc<str>, wgpu::ShaderModule>,
    kernels: HashMap<PipelineKey, Arc<CompiledKernel>>,
}

/// WebGPU's rule, checked on every backend so that a native run catches what a browser would
/// refuse: within one dispatch, a buffer bound writable may not share bytes with another
/// writable binding, nor be bound read-only anywhere (native drivers accept both, and a
/// kernel that reads what another thread writes would race).
fn check_aliasing(label: &str, access: &[Access], binds: &[Bind<'_>]) -> Result<()> {
    let tensors: Vec<(usize, &Tensor, Access)> = binds
        .iter()
        .zip(access)
        .enumerate()
        .filter_map(|(i, (bind, &access))| match bind {
            Bind::Tensor(t) => Some((i, *t, access)),
            _ => None,
        })
        .collect();
    for (k, &(i, a, access_a)) in tensors.iter().enumerate() {
        for &(j, b, access_b) in &tensors[k + 1..] {
            let writes = [access_a, access_b].contains(&Access::ReadWrite);
            if !writes || a.buffer() != b.buffer() {
                continue;
            }
            let overlap = a.byte_offset() < b.byte_offset() + b.byte_len().max(4)
                && b.byte_offset() < a.byte_offset() + a.byte_len().max(4);
            if overlap || access_a != access_b {
                return Err(Error::Gpu(format!(
                    "{label}: bindings {i} and {j} share a buffer that one of them writes \
                     (WebGPU refuses this; give the unused one its own stand-in)"
                )));
            }
        }
    }
    Ok(())
}

/// A kernel whose WGSL arrives at run time (a user-defined op): the source is its own key.
pub(crate) struct RuntimeKernel<'a> {
    pub source: &'a Arc<str>,
    pub entry: &'a str,
    pub bindings: &'a [Access],
}

/// What a dispatch binds, in binding order.
pub(crate) enum Bind<'a> {
    Tensor(&'a Tensor),
    Uniform(&'a wgpu::Buffer),
    /// A step-uniform ring; the slot is chosen when the dispatch is recorded.
    Step(&'a wgpu::Buffer),
}

/// One recorded-ready kernel launch. It holds the tensors it binds, so their buffers cannot go
/// back to the pool (and be handed to someone else) while the dispatch exists.
#[derive(Debug)]
pub struct Dispatch {
    kernel: Arc<CompiledKernel>,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
    has_step_uniform: bool,
    _tensors: Vec<Tensor>,
}

impl Dispatch {
    /// Records this dispatch; `step_slot` picks the step-uniform slot when the kernel has one.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>, step_slot: u32) {
        // A pipeline another thread is still creating is waited for. One that failed is left
        // unset: its creator returned the error, and this dispatch fails validation at submit.
        if let Ok(pipeline) = self.kernel.pipeline.wait() {
            pass.set_pipeline(pipeline);
        }
        let offsets: &[u32] = if self.has_step_uniform {
            &[step_slot * STEP_SLOT_BYTES as u32]
        } else {
            &[]
        };
        pass.set_bind_group(0, &self.bind_group, offsets);
        let [x, y, z] = self.groups;
        pass.dispatch_workgroups(x, y, z);
    }

    /// The kernel's entry point name, for profiles and tests.
    pub fn label(&self) -> &str {
        &self.kernel.label
    }
}

/// Workgroups for `n` items, `per_group` per workgroup, spread over x and y because one grid
/// dimension stops at 65535 groups. Kernels rebuild the flat index from `num_workgroups`.
pub(crate) fn grid_1d(n: usize, per_group: u32) -> [u32; 3] {
    let groups = (n as u64).div_ceil(u64::from(per_group)).max(1);
    let x = groups.min(65535);
    let y = groups.div_ceil(x);
    [x as u32, y as u32, 1]
}

impl Gpu {
    fn compile(
        &self,
        spec: &KernelSpec,
        constants: &[(&'static str, f64)],
    ) -> Result<Arc<CompiledKernel>> {
        self.compile_module(
            (Arc::from(spec.shader.name), spec.shader.source),
            spec.shader.trusted,
            spec.entry,
            spec.bindings,
            constants,
        )
    }

    /// Compiles `entry` of the module `key` (whose WGSL `source` gives on first use).
    fn compile_module(
        &self,
        (key, source): (Arc<str>, impl FnOnce() -> String),
        trusted: bool,
        entry: &str,
        bindings: &[Access],
        constants: &[(&'static str, f64)],
    ) -> Result<Arc<CompiledKernel>> {
        let pipeline_key: PipelineKey = (
            Arc::clone(&key),
            Arc::from(entry),
            constants.iter().map(|&(n, v)| (n, v.to_bits())).collect(),
        );
        let mut cache = self
            .inner
            .pipelines
            .lock()
            .map_err(|_| Error::Gpu("pipeline cache poisoned".into()))?;
        if let Some(kernel) = cache.kernels.get(&pipeline_key) {
            return Ok(Arc::clone(kernel));
        }
        let device = &self.inner.device;
        // Natively a compile error is caught here, named by its kernel. A browser cannot block
        // on the scope's promise: there the error reaches the uncaptured-error handler and
        // surfaces at the next readback as `Error::Gpu`.
        #[cfg(not(target_arch = "wasm32"))]
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let label = if key.len() > 40 { "user op" } else { &key[..] };
        let module = cache
            .modules
            .entry(Arc::clone(&key))
            .or_insert_with(|| {
                let descriptor = wgpu::ShaderModuleDescriptor {
                    label: Some(label),
                    source: wgpu::ShaderSource::Wgsl(source().into()),
                };
                if !trusted {
                    return device.create_shader_module(descriptor);
                }
                let checks = wgpu::ShaderRuntimeChecks {
                    bounds_checks: false,
                    force_loop_bounding: false,
                    ..wgpu::ShaderRuntimeChecks::checked()
                };
                // SAFETY: only `Shader`s marked trusted come here, whose indices and loops
                // are bounded by construction (see `Shader::trusted`).
                unsafe { device.create_shader_module_trusted(descriptor, checks) }
            })
            .clone();
        let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, access)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match access {
                        Access::Uniform | Access::StepUniform => wgpu::BufferBindingType::Uniform,
                        Access::Read => wgpu::BufferBindingType::Storage { read_only: true },
                        Access::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                    },
                    has_dynamic_offset: *access == Access::StepUniform,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(entry),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(error) = pollster::block_on(scope.pop()) {
            cache.modules.remove(&key);
            return Err(Error::Gpu(format!("compiling {label}::{entry}: {error}")));
        }
        let kernel = Arc::new(CompiledKernel {
            pipeline: OnceLock::new(),
            layout,
            label: Arc::from(entry),
        });
        let job = PipelineJob {
            device: device.clone(),
            module,
            layout: pipeline_layout,
            kernel: Arc::clone(&kernel),
            constants: constants.to_vec(),
            label: format!("{label}::{entry}"),
        };
        if let Some(job) = defer(&pipeline_key, job)
            && let Err(error) = job.run()
        {
            cache.modules.remove(&key);
            return Err(error);
        }
        cache.kernels.insert(pipeline_key, Arc::clone(&kernel));
        Ok(kernel)
    }

    /// Runs `build`, creating the pipelines it compiles on worker threads (one each), and
    /// waits for them all before returning: a training step's plan needs a dozen, and a CPU
    /// driver (lavapipe) spends up to half a second on each, so they take every core instead
    /// of one. A pipeline that fails is dropped from the cache and its error returned.
    pub(crate) fn compiling_concurrently<T>(&self, build: impl FnOnce() -> Result<T>) -> Result<T> {
        #[cfg(target_arch = "wasm32")]
        return build();
        #[cfg(not(target_arch = "wasm32"))]
        {
            // A nested call leaves the waiting to the outermost one.
            let outermost = PENDING.with_borrow_mut(|pending| {
                let outermost = pending.is_none();
                pending.get_or_insert_with(Vec::new);
                outermost
            });
            let built = build();
            if !outermost {
                return built;
            }
            let pending = PENDING.with_borrow_mut(Option::take).unwrap_or_default();
            let mut failure = None;
            for (key, worker) in pending {
                let created = worker
                    .join()
                    .unwrap_or_else(|_| Err(Error::Gpu("a pipeline's creation panicked".into())));
                if let Err(error) = created {
                    if let Ok(mut cache) = self.inner.pipelines.lock()
                        && let Some(kernel) = cache.kernels.remove(&key)
                    {
                        // A worker that panicked set nothing: no other thread may wait forever.
                        let _ = kernel.pipeline.set(Err(error.to_string()));
                    }
                    failure.get_or_insert(error);
                }
            }
            failure.map_or(built, Err)
        }
    }

    /// Compiles (or fetches) `spec` and binds `binds` to it.
    pub(crate) fn dispatch(
        &self,
        spec: &KernelSpec,
        constants: &[(&'static str, f64)],
        binds: &[Bind<'_>],
        groups: [u32; 3],
    ) -> Result<Dispatch> {
        debug_assert_eq!(binds.len(), spec.bindings.len(), "{}", spec.entry);
        let kernel = self.compile(spec, constants)?;
        self.bind(kernel, spec.bindings, binds, groups)
    }

    /// Compiles (or fetches) a kernel given as WGSL at run time and binds `binds` to it.
    pub(crate) fn dispatch_runtime(
        &self,
        kernel: &RuntimeKernel<'_>,
        binds: &[Bind<'_>],
        groups: [u32; 3],
    ) -> Result<Dispatch> {
        let source = kernel.source;
        let compiled = self.compile_module(
            (Arc::clone(source), || source.to_string()),
            false,
            kernel.entry,
            kernel.bindings,
            &[],
        )?;
        self.bind(compiled, kernel.bindings, binds, groups)
    }

    fn bind(
        &self,
        kernel: Arc<CompiledKernel>,
        access: &[Access],
        binds: &[Bind<'_>],
        groups: [u32; 3],
    ) -> Result<Dispatch> {
        check_aliasing(&kernel.label, access, binds)?;
        // Refused here, when a plan compiles, with the kernel's name: past the limit, wgpu's
        // validation would fail the whole submission that recorded it.
        let most = self.limits().max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > most) {
            return Err(Error::InvalidArgument(format!(
                "{} needs a grid of {groups:?} workgroups; the adapter allows at most {most} \
                 along each axis (a smaller batch, or fewer features per layer)",
                kernel.label
            )));
        }
        let entries: Vec<wgpu::BindGroupEntry> = binds
            .iter()
            .enumerate()
            .map(|(i, bind)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: match bind {
                    Bind::Tensor(t) => t.binding(),
                    Bind::Uniform(b) => b.as_entire_binding(),
                    Bind::Step(b) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: b,
                        offset: 0,
                        size: wgpu::BufferSize::new(STEP_SLOT_BYTES),
                    }),
                },
            })
            .collect();
        let bind_group = self
            .inner
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&kernel.label),
                layout: &kernel.layout,
                entries: &entries,
            });
        let tensors = binds
            .iter()
            .filter_map(|b| match b {
                Bind::Tensor(t) => Some((*t).clone()),
                _ => None,
            })
            .collect();
        Ok(Dispatch {
            kernel,
            bind_group,
            groups,
            has_step_uniform: binds.iter().any(|b| matches!(b, Bind::Step(_))),
            _tensors: tensors,
        })
    }

    /// A uniform buffer holding `value`.
    pub(crate) fn uniform<T: bytemuck::Pod>(&self, value: &T) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        self.inner
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgtrain params"),
                contents: bytemuck::bytes_of(value),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// Records `dispatches` into one compute pass and submits it; does not wait.
    pub fn run(&self, dispatches: &[&Dispatch]) -> Result<()> {
        self.run_pass(|pass| {
            for dispatch in dispatches {
                dispatch.record(pass, 0);
            }
        })
    }

    /// Submits one compute pass filled by `record`; does not wait.
    pub fn run_pass(&self, record: impl FnOnce(&mut wgpu::ComputePass<'_>)) -> Result<()> {
        let mut encoder = self
            .inner
            .device
            .create_command_encoder(&Default::default());
        record(&mut encoder.begin_compute_pass(&Default::default()));
        self.inner.queue.submit([encoder.finish()]);
        self.take_fault()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SHADER: Shader = Shader {
        name: "concurrency_test",
        source: || {
            "override SCALE: f32 = 0.0;
             @group(0) @binding(0) var<storage, read_write> out: array<f32>;
             @compute @workgroup_size(1) fn fill() { out[0] = SCALE; }"
                .into()
        },
        trusted: false,
    };
    static FILL: KernelSpec = KernelSpec {
        shader: &SHADER,
        entry: "fill",
        bindings: &[Access::ReadWrite],
    };

    #[test]
    fn pipelines_created_concurrently_run_and_a_failed_one_is_an_error_not_a_cached_kernel() {
        let gpu = Gpu::new().expect("an adapter (lavapipe in CI)");
        let outs: Vec<Tensor> = (0..4).map(|_| gpu.zeros(&[1]).expect("a tensor")).collect();
        let dispatches = gpu
            .compiling_concurrently(|| {
                (0..4)
                    .map(|i| {
                        let scale = [("SCALE", i as f64 + 1.0)];
                        gpu.dispatch(&FILL, &scale, &[Bind::Tensor(&outs[i])], [1, 1, 1])
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .expect("four valid pipelines");
        gpu.run(&dispatches.iter().collect::<Vec<_>>())
            .expect("the dispatches run");
        for (i, out) in outs.iter().enumerate() {
            assert_eq!(gpu.read(out).expect("a readback"), [i as f32 + 1.0]);
        }

        // An override the shader does not declare fails when the pipeline is created: on a
        // worker inside the batch, and again (not served from the cache) outside it.
        let unknown = [("NOT_DECLARED", 1.0)];
        let binds = [Bind::Tensor(&outs[0])];
        let error = gpu
            .compiling_concurrently(|| gpu.dispatch(&FILL, &unknown, &binds, [1, 1, 1]))
            .expect_err("an unknown override");
        assert!(
            error.to_string().contains("concurrency_test::fill"),
            "{error}"
        );
        let error = gpu
            .dispatch(&FILL, &unknown, &binds, [1, 1, 1])
            .expect_err("still an unknown override");
        assert!(
            error.to_string().contains("concurrency_test::fill"),
            "{error}"
        );
    }
}
