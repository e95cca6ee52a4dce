//! Adapter and device selection. Owns the `wgpu::Device`, the buffer pool and the pipeline
//! cache; everything above this module receives a `Gpu` handle instead of opening a device,
//! so tests share one device per binary and applications can hand in their own.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::kernel::PipelineCache;
use crate::gpu::pool::BufferPool;

/// A handle to one GPU device. Cheap to clone; every clone shares the device, the buffer pool
/// and the compiled pipelines.
///
/// ```
/// let gpu = wgtrain::Gpu::new()?;
/// println!("{} ({:?})", gpu.adapter_info().name, gpu.adapter_info().backend);
/// let x = gpu.tensor(&[1.0, 2.0, 3.0], &[3])?;
/// assert_eq!(gpu.read(&x)?, [1.0, 2.0, 3.0]);
/// # Ok::<(), wgtrain::Error>(())
/// ```
#[derive(Clone)]
pub struct Gpu {
    pub(crate) inner: Arc<GpuInner>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let info = &self.inner.info;
        f.debug_struct("Gpu")
            .field("adapter", &info.name)
            .field("backend", &info.backend)
            .finish_non_exhaustive()
    }
}

/// A product's shape rounded up to powers of two, and its transposes.
pub(crate) type MatmulClass = (usize, usize, usize, (bool, bool));

pub(crate) struct GpuInner {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    /// The subgroup size the cooperative-matrix matmul runs at, where the adapter multiplies
    /// 16×16×16 f16 tiles into f32 ones and its subgroups have one fixed size.
    pub cooperative_subgroup: Option<u32>,
    pub pool: Arc<Mutex<BufferPool>>,
    pub pipelines: Mutex<PipelineCache>,
    /// Matmul tile chosen per shape class by a short timing at first use.
    pub tiles: Mutex<std::collections::HashMap<MatmulClass, crate::kernels::matmul::Tile>>,
    /// Where the autotune keeps its choices across runs (none: time every run).
    pub autotune_cache: Mutex<Option<std::path::PathBuf>>,
    /// Set by the device-lost callback and the uncaptured-error handler; checked after waits,
    /// because wgpu reports both out of band.
    pub fault: Arc<Mutex<Option<Error>>>,
    /// Small tensors of their own for bindings a dispatch declares but does not use.
    pub stand_ins: Mutex<Vec<crate::gpu::Tensor>>,
    /// Idle staging buffers and the cost of reading so far.
    pub readbacks: crate::gpu::readback::Readbacks,
}

impl Gpu {
    /// Opens the best adapter: the one named by `WGPU_ADAPTER_NAME` if set, else under
    /// `mpirun` on a host with several GPUs the one of this rank's local rank, else by
    /// `WGPU_POWER_PREF` (default high-performance), on the backends in `WGPU_BACKEND`
    /// (default Vulkan/Metal/DX12: GL is left out because lavapipe shows up there twice).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new() -> Result<Self> {
        pollster::block_on(Self::new_async())
    }

    /// [`Gpu::new`] without blocking: the form a browser (wasm32, WebGPU) must await.
    pub async fn new_async() -> Result<Self> {
        explain_mesa_runtime_dir_errors();
        let descriptor = wgpu::InstanceDescriptor {
            backends: wgpu::Backends::PRIMARY,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        }
        .with_env();
        let backends = descriptor.backends;
        let instance = wgpu::Instance::new(descriptor);
        // wgpu::util::initialize_adapter_from_env panics when nothing matches; a user's typo
        // deserves an error listing what is there instead.
        let adapter = if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
            let wanted = wanted.to_lowercase();
            let adapters = instance.enumerate_adapters(backends).await;
            let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
            adapters
                .into_iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&wanted))
                .ok_or_else(|| Error::NoAdapter {
                    detail: format!(" whose name contains WGPU_ADAPTER_NAME={wanted:?} (adapters present: {names:?})"),
                })?
        } else if let Some(adapter) = Self::local_rank_gpu(&instance, backends).await {
            adapter
        } else {
            let power_preference =
                wgpu::PowerPreference::from_env().unwrap_or(wgpu::PowerPreference::HighPerformance);
            instance
                .request_adapter(&wgpu::RequestAdapterOptions {
                    power_preference,
                    force_fallback_adapter: false,
                    compatible_surface: None,
                    apply_limit_buckets: false,
                })
                .await
                .map_err(|e| Error::NoAdapter {
                    detail: format!(" ({e})"),
                })?
        };
        Self::from_adapter(&adapter).await
    }

    /// On a host with several GPUs, under a launcher of several ranks (`mpirun`), the GPU of
    /// this rank's local rank (round robin, in the order Vulkan lists them), so the ranks of
    /// a host spread over its GPUs; `None` elsewhere.
    async fn local_rank_gpu(
        instance: &wgpu::Instance,
        backends: wgpu::Backends,
    ) -> Option<wgpu::Adapter> {
        crate::dist::launched_ranks().filter(|&ranks| ranks > 1)?;
        let mut gpus: Vec<wgpu::Adapter> = instance
            .enumerate_adapters(backends)
            .await
            .into_iter()
            .filter(|a| {
                matches!(
                    a.get_info().device_type,
                    wgpu::DeviceType::DiscreteGpu | wgpu::DeviceType::IntegratedGpu
                )
            })
            .collect();
        // One physical GPU can appear once per backend: keep the first of each.
        let mut seen = std::collections::HashSet::new();
        gpus.retain(|a| {
            let info = a.get_info();
            seen.insert((info.vendor, info.device, info.device_pci_bus_id.clone()))
        });
        if gpus.len() < 2 {
            return None;
        }
        let pick = crate::dist::local_rank() % gpus.len();
        Some(gpus.swap_remove(pick))
    }

    /// Opens a device on `adapter` with the adapter's own limits (WebGPU's defaults cap storage
    /// bindings at 128 MiB) and every optional feature wgtrain can use.
    pub async fn from_adapter(adapter: &wgpu::Adapter) -> Result<Self> {
        let wanted = wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
            | wgpu::Features::SUBGROUP;
        let mut features = adapter.features() & wanted;
        let cooperative_subgroup = cooperative_f16_subgroup(adapter);
        if cooperative_subgroup.is_some() {
            features |= COOPERATIVE_F16;
        }
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgtrain"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: if cooperative_subgroup.is_some() {
                    // SAFETY: the one experimental feature requested is the cooperative
                    // matrix, used only by `kernels::coop_matmul`, whose results its tests
                    // and the benchmark check against f64 before trusting them.
                    unsafe { wgpu::ExperimentalFeatures::enabled() }
                } else {
                    wgpu::ExperimentalFeatures::disabled()
                },
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::DeviceRequest(e.to_string()))?;

        let fault: Arc<Mutex<Option<Error>>> = Arc::default();
        let on_lost = Arc::clone(&fault);
        device.set_device_lost_callback(move |reason, message| {
            record_fault(
                &on_lost,
                Error::DeviceLost(format!("{reason:?}: {message}")),
            );
        });
        let on_error = Arc::clone(&fault);
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            record_fault(&on_error, Error::Gpu(error.to_string()));
        }));

        Ok(Self {
            inner: Arc::new(GpuInner {
                device,
                queue,
                info: adapter.get_info(),
                limits,
                features,
                cooperative_subgroup,
                pool: Arc::default(),
                pipelines: Mutex::default(),
                tiles: Mutex::default(),
                #[cfg(not(target_arch = "wasm32"))]
                autotune_cache: Mutex::new(crate::gpu::autotune::default_path()),
                #[cfg(target_arch = "wasm32")]
                autotune_cache: Mutex::default(),
                fault,
                stand_ins: Mutex::default(),
                readbacks: Default::default(),
            }),
        })
    }

    /// `N` stand-ins: small zeroed tensors bound where a kernel declares bindings this
    /// dispatch does not use. Each is its own buffer, so unused writable slots never alias
    /// each other or a real operand (WebGPU refuses both); kernels never touch them.
    pub(crate) fn stand_ins<const N: usize>(&self) -> Result<[crate::gpu::Tensor; N]> {
        let mut stand_ins = self
            .inner
            .stand_ins
            .lock()
            .map_err(|_| Error::Gpu("stand-in cache poisoned".into()))?;
        while stand_ins.len() < N {
            stand_ins.push(self.zeros(&[64])?);
        }
        Ok(std::array::from_fn(|i| stand_ins[i].clone()))
    }

    /// The wgpu device, for callers that create their own buffers or pipelines.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The wgpu queue every submission of this `Gpu` goes through.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// Whether the adapter is a CPU driver (lavapipe, SwiftShader, WARP): kernels pick the
    /// shapes that suit a few wide cores rather than thousands of threads.
    pub(crate) fn is_cpu(&self) -> bool {
        self.inner.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Where the matmul autotune keeps its choices across runs, keyed by adapter, driver,
    /// kernel source and shape (see `gpu::autotune` for the default place); `None` times every
    /// shape again in every run.
    pub fn set_autotune_cache(&self, path: Option<std::path::PathBuf>) {
        if let Ok(mut cache) = self.inner.autotune_cache.lock() {
            *cache = path;
        }
    }

    /// The subgroup size of a CPU adapter with subgroups of one fixed size, a multiple of 8:
    /// there a subgroup is a run of consecutive threads in the SIMD lanes of one core, which
    /// the `direct` matmul relies on to pass values between threads. GPUs promise no such
    /// layout, so they get `None`, as do adapters without subgroups.
    pub(crate) fn cpu_subgroup_size(&self) -> Option<u32> {
        let info = &self.inner.info;
        let size = info.subgroup_max_size;
        (self.is_cpu()
            && self.inner.features.contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == size
            && size.is_multiple_of(8))
        .then_some(size)
    }

    /// The subgroup size of [`kernels::coop_matmul`](crate::kernels::coop_matmul)'s
    /// workgroups, where the adapter can run it: `None` means it cannot.
    pub fn cooperative_matrix_subgroup(&self) -> Option<u32> {
        self.inner.cooperative_subgroup
    }

    /// Which adapter this is: name, backend, driver.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// The limits the device was opened with (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// Whether compute passes can carry timestamp queries (the benchmarks' preferred clock).
    pub fn has_timestamps(&self) -> bool {
        self.inner.features.contains(
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES,
        )
    }

    /// The largest storage buffer a kernel can bind, in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.inner
            .limits
            .max_storage_buffer_binding_size
            .min(self.inner.limits.max_buffer_size)
    }

    /// Fails with `OverLimit` when `bytes` cannot live in one bindable buffer on this adapter.
    pub fn check_size(&self, what: &str, bytes: u64) -> Result<()> {
        let allowed = self.max_binding_bytes();
        if bytes > allowed {
            return Err(Error::OverLimit {
                what: what.to_string(),
                requested: bytes,
                allowed,
            });
        }
        Ok(())
    }

    /// Returns (and clears) an error that wgpu reported out of band since the last check.
    pub(crate) fn take_fault(&self) -> Result<()> {
        // A poll runs pending callbacks, the device-lost one among them.
        let _ = self.inner.device.poll(wgpu::PollType::Poll);
        let fault = self
            .inner
            .fault
            .lock()
            .expect("fault mutex is never poisoned: its holders do not panic")
            .take();
        match fault {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Blocks until all submitted work has finished, with a finite timeout: lavapipe has been
    /// seen to hang, and a hang must become an error, not a stuck process. This drains the
    /// queue: reads wait for their own submission instead.
    pub fn wait(&self) -> Result<()> {
        self.inner.readbacks.count_full_wait();
        self.poll_until(None)
    }

    /// Blocks until `submission` (and what was submitted before it) has finished; work
    /// submitted after it keeps running.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn wait_for(&self, submission: wgpu::SubmissionIndex) -> Result<()> {
        self.poll_until(Some(submission))
    }

    fn poll_until(&self, submission_index: Option<wgpu::SubmissionIndex>) -> Result<()> {
        let polled = self.inner.device.poll(wgpu::PollType::Wait {
            submission_index,
            timeout: Some(std::time::Duration::from_secs(600)),
        });
        self.take_fault()?;
        polled.map(|_| ()).map_err(|e| match e {
            wgpu::PollError::Timeout => Error::DeviceLost("timed out waiting for the GPU".into()),
            other => Error::DeviceLost(other.to_string()),
        })
    }
}

/// Mesa's Vulkan drivers (lavapipe included) print "error: XDG_RUNTIME_DIR is invalid or not
/// set in the environment." twice when the variable is missing, as on a server without a
/// desktop login, though compute never uses it. A library cannot safely set the variable
/// (another thread may read the environment), so it says once, first, what those lines are.
/// The `wgtrain` binary sets the variable before any thread exists, and no note appears.
fn explain_mesa_runtime_dir_errors() {
    #[cfg(target_os = "linux")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        let missing = std::env::var_os("XDG_RUNTIME_DIR")
            .is_none_or(|dir| !std::path::Path::new(&dir).is_dir());
        if missing {
            ONCE.call_once(|| {
                eprintln!(
                    "note: XDG_RUNTIME_DIR is not set; Mesa's Vulkan driver may print two harmless \
                     \"error: XDG_RUNTIME_DIR\" lines next (export XDG_RUNTIME_DIR=/tmp hides them)"
                );
            });
        }
    }
}

/// Keeps the first error, except that a lost device outranks anything: errors that follow a
/// loss (invalid buffers, failed maps) are symptoms, the loss is the cause.
fn record_fault(slot: &Mutex<Option<Error>>, error: Error) {
    if let Ok(mut slot) = slot.lock() {
        let lost = matches!(error, Error::DeviceLost(_));
        if lost || slot.is_none() {
            *slot = Some(error);
        }
    }
}

impl fmt::Display for Gpu {
    /// What `wgtrain info` prints: the adapter, its backend and driver, and the limits that
    /// decide what fits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = &self.inner.info;
        let limits = &self.inner.limits;
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        writeln!(f, "adapter:   {} ({:?})", info.name, info.device_type)?;
        writeln!(f, "backend:   {:?}", info.backend)?;
        writeln!(f, "driver:    {} {}", info.driver, info.driver_info)?;
        writeln!(f, "features:  {:?}", self.inner.features)?;
        writeln!(f, "limits:")?;
        writeln!(
            f,
            "  max_buffer_size                     {:.0} MiB",
            mib(limits.max_buffer_size)
        )?;
        writeln!(
            f,
            "  max_storage_buffer_binding_size     {:.0} MiB",
            mib(limits.max_storage_buffer_binding_size)
        )?;
        writeln!(
            f,
            "  max_storage_buffers_per_shader_stage {}",
            limits.max_storage_buffers_per_shader_stage
        )?;
        writeln!(
            f,
            "  max_compute_workgroup_storage_size  {} KiB",
            limits.max_compute_workgroup_storage_size / 1024
        )?;
        writeln!(
            f,
            "  max_compute_invocations_per_workgroup {}",
            limits.max_compute_invocations_per_workgroup
        )?;
        write!(
            f,
            "  max_compute_workgroups_per_dimension {}",
            limits.max_compute_workgroups_per_dimension
        )
    }
}

/// What the cooperative-matrix matmul needs from the device, beyond the wanted features.
const COOPERATIVE_F16: wgpu::Features = wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
    .union(wgpu::Features::SHADER_F16)
    .union(wgpu::Features::SUBGROUP);

/// The subgroup size at which `adapter` can run the cooperative-matrix matmul: it must offer
/// the features, 16×16×16 tiles of f16 multiplied into f32, and subgroups of one fixed size
/// (the kernels size their workgroups in subgroups).
fn cooperative_f16_subgroup(adapter: &wgpu::Adapter) -> Option<u32> {
    use wgpu::CooperativeScalarType::{F16, F32};
    let info = adapter.get_info();
    let tile_16 = adapter
        .cooperative_matrix_properties()
        .iter()
        .any(|p| (p.m_size, p.n_size, p.k_size, p.ab_type, p.cr_type) == (16, 16, 16, F16, F32));
    (adapter.features().contains(COOPERATIVE_F16)
        && tile_16
        && info.subgroup_min_size == info.subgroup_max_size
        && info.subgroup_max_size > 0)
        .then_some(info.subgroup_max_size)
}
