//! The matmul autotune's choices on disk, so that a second run starts at full speed: one JSON
//! file of tiles keyed by adapter (name, backend, driver, driver version), wgtrain version and
//! matmul WGSL, and shape class.
//! A missing, unreadable or foreign file is the same as an empty one, and a cache that cannot
//! be written costs a warning, never a run: the autotune just times again next time.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};

use crate::gpu::context::MatmulClass;
use crate::kernels::matmul::Tile;

static DISK_CACHE: AtomicBool = AtomicBool::new(true);

/// Turns the on-disk autotune cache off for every `Gpu` this process opens from now on (the
/// CLI's `--no-cache`): each shape class is timed again. One `Gpu` can be changed alone with
/// [`crate::gpu::Gpu::set_autotune_cache`].
pub fn disable_disk_cache() {
    DISK_CACHE.store(false, Ordering::Relaxed);
}

/// Where a new `Gpu` keeps its choices: `$WGTRAIN_CACHE_DIR`, else `$XDG_CACHE_HOME/wgtrain`,
/// else `~/.cache/wgtrain`, file `autotune.json`; none when the cache is off or there is no
/// home to put it in.
pub(crate) fn default_path() -> Option<PathBuf> {
    if !DISK_CACHE.load(Ordering::Relaxed) {
        return None;
    }
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let dir = var("WGTRAIN_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("wgtrain")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("wgtrain")))?;
    Some(dir.join("autotune.json"))
}

/// The adapter and kernels as the cache knows them: a new driver is a new adapter, and a
/// wgtrain whose version or whose matmul WGSL differs (the version stays the same from one
/// commit to the next, while the tiles' speeds change) times again.
pub(crate) fn adapter_key(info: &wgpu::AdapterInfo) -> String {
    key_with_kernels(info, kernels_fingerprint())
}

fn key_with_kernels(info: &wgpu::AdapterInfo, kernels: u64) -> String {
    format!(
        "{} | {:?} | {:04x}:{:04x} | {} {} | wgtrain {} kernels {kernels:016x}",
        info.name,
        info.backend,
        info.vendor,
        info.device,
        info.driver,
        info.driver_info,
        env!("CARGO_PKG_VERSION")
    )
}

/// A hash of the matmul module's WGSL, the tiles included; computed once per process.
fn kernels_fingerprint() -> u64 {
    static FINGERPRINT: OnceLock<u64> = OnceLock::new();
    *FINGERPRINT.get_or_init(|| {
        let mut hasher = std::hash::DefaultHasher::new();
        (crate::kernels::matmul::SHADER.source)().hash(&mut hasher);
        hasher.finish()
    })
}

fn class_key(&(m, n, k, (ta, tb)): &MatmulClass) -> String {
    format!("{m}x{n}x{k} ta={ta} tb={tb}")
}

fn tile_name(tile: Tile) -> &'static str {
    match tile {
        Tile::T32 => "T32",
        Tile::T64 => "T64",
        Tile::T128 => "T128",
        Tile::Direct => "Direct",
        Tile::Auto => "Auto",
    }
}

fn read(path: &Path) -> Map<String, Value> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|value| match value {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .unwrap_or_default()
}

/// The tile stored for this adapter and class, if any (and if it names a tile the timing could
/// have chosen).
pub(crate) fn lookup(path: &Path, adapter: &str, class: &MatmulClass) -> Option<Tile> {
    let file = read(path);
    let name = file.get(adapter)?.get(class_key(class))?.as_str()?;
    [Tile::T32, Tile::T64, Tile::T128]
        .into_iter()
        .find(|&tile| tile_name(tile) == name)
}

/// Adds one choice to the file (read, merge, write atomically: a crash never leaves half a
/// file, and a concurrent writer loses at most its own newest entry).
pub(crate) fn record(
    path: &Path,
    adapter: &str,
    class: &MatmulClass,
    tile: Tile,
) -> crate::Result<()> {
    let mut file = read(path);
    let entry = file
        .entry(adapter.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(classes) = entry {
        classes.insert(class_key(class), Value::from(tile_name(tile)));
    } else {
        *entry = serde_json::json!({ class_key(class): tile_name(tile) });
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| crate::Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let text = serde_json::to_string_pretty(&Value::Object(file)).unwrap_or_default();
    crate::files::write_atomically(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_round_trip_per_adapter_and_class_and_bad_files_read_as_empty() {
        let dir = std::env::temp_dir().join(format!("wgtrain-autotune-{}", std::process::id()));
        let path = dir.join("nested").join("autotune.json");
        let class = (64, 1024, 1024, (false, true));
        let other_class = (64, 1024, 1024, (true, false));
        assert_eq!(lookup(&path, "gpu a", &class), None, "no file yet");
        record(&path, "gpu a", &class, Tile::T32).expect("written");
        record(&path, "gpu a", &other_class, Tile::T128).expect("written");
        record(&path, "gpu b", &class, Tile::T64).expect("written");
        assert_eq!(lookup(&path, "gpu a", &class), Some(Tile::T32));
        assert_eq!(lookup(&path, "gpu a", &other_class), Some(Tile::T128));
        assert_eq!(lookup(&path, "gpu b", &class), Some(Tile::T64));
        assert_eq!(lookup(&path, "gpu c", &class), None, "another adapter");
        // A tile name the timing never picks (an edited file) is not trusted.
        std::fs::write(
            &path,
            r#"{"gpu a": {"64x1024x1024 ta=false tb=true": "Direct"}}"#,
        )
        .expect("write");
        assert_eq!(lookup(&path, "gpu a", &class), None);
        for garbage in ["", "not json", "[1, 2]", r#"{"gpu a": 3}"#] {
            std::fs::write(&path, garbage).expect("write");
            assert_eq!(lookup(&path, "gpu a", &class), None, "{garbage:?}");
            record(&path, "gpu a", &class, Tile::T64).expect("a bad file is replaced");
            assert_eq!(
                lookup(&path, "gpu a", &class),
                Some(Tile::T64),
                "{garbage:?}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn choices_made_with_other_kernels_are_timed_again() {
        let dir = std::env::temp_dir().join(format!("wgtrain-kernels-{}", std::process::id()));
        let path = dir.join("autotune.json");
        let info = wgpu::AdapterInfo {
            name: "gpu".into(),
            vendor: 0x10de,
            device: 0x2335,
            device_type: wgpu::DeviceType::DiscreteGpu,
            device_pci_bus_id: String::new(),
            driver: "driver".into(),
            driver_info: "1.0".into(),
            backend: wgpu::Backend::Vulkan,
            subgroup_min_size: 32,
            subgroup_max_size: 32,
            transient_saves_memory: None,
            limit_bucket: None,
        };
        let class = (64, 1024, 1024, (false, true));
        let older = key_with_kernels(&info, kernels_fingerprint() ^ 1);
        record(&path, &older, &class, Tile::T128).expect("written");
        assert_eq!(lookup(&path, &older, &class), Some(Tile::T128));
        assert_eq!(lookup(&path, &adapter_key(&info), &class), None);
        assert_eq!(
            adapter_key(&info),
            adapter_key(&info),
            "one fingerprint per process"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
