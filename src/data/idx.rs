//! MNIST's IDX format (raw or gzip): a magic of two zero bytes, a type byte (0x08 = u8), a
//! dimension count, big-endian u32 dimensions, then the row-major payload.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::data::{Dataset, Features};
use crate::error::{Error, Result};

/// An IDX array of bytes with its dimensions.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    /// The sizes of each dimension, as the header gives them.
    pub dims: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<u8>,
}

/// Deflate cannot expand data more than about 1032 : 1, so a gzip file of n bytes holds at
/// most this many times n bytes: a header promising more is a lie, refused before inflating.
const MAX_GZIP_RATIO: usize = 1032;

/// Reads an IDX file, inflating it when it starts with gzip's magic. A gzip stream is
/// inflated only as far as its header promises (plus one byte, so that extra data is still
/// reported): a small file that inflates to gigabytes costs no memory.
pub(crate) fn read_idx_bytes(path: &Path) -> Result<Vec<u8>> {
    decode_idx(path, crate::files::read_regular(path)?)
}

/// A file's bytes as IDX bytes: inflated (as far as the header promises) when gzip, as they
/// are otherwise; `path` only names the source in errors.
pub fn decode_idx(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let corrupt = |e: std::io::Error| {
        Error::invalid_data(path, "gzip stream", format!("corrupt gzip data: {e}"))
    };
    let mut stream = flate2::read::MultiGzDecoder::new(&raw[..]);
    let mut out = vec![];
    // The magic and dimension count, then the dimensions: what parse_idx checks.
    (&mut stream)
        .take(4)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    let ndim = out.get(3).map_or(0, |&n| usize::from(n));
    (&mut stream)
        .take(4 * ndim as u64)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    let promised = out
        .get(4..)
        .unwrap_or_default()
        .chunks_exact(4)
        .try_fold(1usize, |acc, d| {
            acc.checked_mul(u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
        });
    let limit = raw.len().saturating_mul(MAX_GZIP_RATIO);
    match promised {
        Some(p) if p <= limit => {
            (&mut stream)
                .take(p as u64 + 1)
                .read_to_end(&mut out)
                .map_err(corrupt)?;
            Ok(out)
        }
        _ if out.len() < 4 + 4 * ndim => Ok(out), // truncated: parse_idx says so
        _ => Err(Error::invalid_data(
            path,
            "header",
            format!(
                "the header promises {} bytes, more than a {}-byte gzip file can hold",
                promised.map_or("overflowing".into(), |p| p.to_string()),
                raw.len()
            ),
        )),
    }
}

/// Parses an IDX file of unsigned bytes.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    parse_idx(path, &read_idx_bytes(path)?)
}

/// Parses IDX bytes; `path` only names the source in errors.
pub fn parse_idx(path: &Path, bytes: &[u8]) -> Result<IdxArray> {
    if bytes.is_empty() {
        return Err(Error::invalid_data(path, "byte 0", "empty file"));
    }
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(Error::invalid_data(
            path,
            "byte 0",
            "bad magic: not an IDX file (expected 00 00 08 <ndim>)",
        ));
    }
    if bytes[2] != 0x08 {
        return Err(Error::invalid_data(
            path,
            "byte 2",
            format!(
                "unsupported IDX element type 0x{:02x} (only unsigned bytes, 0x08)",
                bytes[2]
            ),
        ));
    }
    let ndim = usize::from(bytes[3]);
    if ndim == 0 {
        return Err(Error::invalid_data(
            path,
            "byte 3",
            "an IDX array needs at least one dimension",
        ));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(Error::invalid_data(
            path,
            format!("byte {}", bytes.len()),
            format!("truncated header: {ndim} dimensions need {header} bytes"),
        ));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let at = 4 + 4 * i;
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
        })
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            Error::invalid_data(path, "byte 4", format!("dimensions {dims:?} overflow"))
        })?;
    let payload = bytes.len() - header;
    if payload < expected {
        return Err(Error::invalid_data(
            path,
            format!("byte {}", bytes.len()),
            format!(
                "truncated payload: header promises {dims:?} = {expected} bytes, file holds {payload}"
            ),
        ));
    }
    if payload > expected {
        return Err(Error::invalid_data(
            path,
            format!("byte {}", header + expected),
            format!(
                "{} bytes after the {expected}-byte payload",
                payload - expected
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Which half of an MNIST-style directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// `train-images-idx3-ubyte` and its labels.
    Train,
    /// `t10k-images-idx3-ubyte` and its labels.
    Test,
}

/// The image and label files of `split` in `dir`, under MNIST's own names (`.gz` or not).
pub fn mnist_files(dir: &Path, split: Split) -> (PathBuf, PathBuf) {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let pick = |name: String| {
        let gz = dir.join(format!("{name}.gz"));
        if gz.exists() { gz } else { dir.join(name) }
    };
    (
        pick(format!("{prefix}-images-idx3-ubyte")),
        pick(format!("{prefix}-labels-idx1-ubyte")),
    )
}

/// Loads MNIST-style images (scaled to [0, 1] on the device) and labels 0-9.
pub fn load_mnist(dir: &Path, split: Split) -> Result<Dataset> {
    let (images_path, labels_path) = mnist_files(dir, split);
    load_idx_pair(&images_path, &labels_path, 10)
}

/// An image file (`[n, h, w]`) and a label file (`[n]`, each < `classes`).
pub fn load_idx_pair(images_path: &Path, labels_path: &Path, classes: usize) -> Result<Dataset> {
    parse_idx_pair(
        (images_path, crate::files::read_regular(images_path)?),
        (labels_path, crate::files::read_regular(labels_path)?),
        classes,
    )
}

/// [`load_idx_pair`] from bytes (gzip or plain IDX), each with the name its errors give:
/// for data that arrives without a file system (a browser's fetch, an embedded asset).
pub fn parse_idx_pair(
    (images_path, images): (&Path, Vec<u8>),
    (labels_path, labels): (&Path, Vec<u8>),
    classes: usize,
) -> Result<Dataset> {
    let images = parse_idx(images_path, &decode_idx(images_path, images)?)?;
    let labels = parse_idx(labels_path, &decode_idx(labels_path, labels)?)?;
    let &[n, h, w] = &images.dims[..] else {
        return Err(Error::invalid_data(
            images_path,
            "header",
            format!("expected [images, height, width], found {:?}", images.dims),
        ));
    };
    if n == 0 || h * w == 0 {
        return Err(Error::invalid_data(
            images_path,
            "header",
            format!("no data: dimensions {:?}", images.dims),
        ));
    }
    if labels.dims != [n] {
        return Err(Error::invalid_data(
            labels_path,
            "header",
            format!(
                "expected [{n}] labels to match {images_path:?}, found {:?}",
                labels.dims
            ),
        ));
    }
    if let Some(i) = labels.data.iter().position(|&l| usize::from(l) >= classes) {
        return Err(Error::invalid_data(
            labels_path,
            format!("byte {} (label {i})", 8 + i),
            format!("label {} out of range 0..{classes}", labels.data[i]),
        ));
    }
    let targets = labels.data.iter().map(|&l| f32::from(l)).collect();
    let mut data = Dataset::new(
        Features::U8 {
            bytes: images.data,
            scale: 1.0 / 255.0,
        },
        h * w,
        targets,
        0,
    )?;
    data.image = Some((h, w));
    Ok(data)
}
