//! The IDX reader must return Ok or a typed error for any bytes, raw or gzip, never panic,
//! and never inflate past what the header promises.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.idx");
    if let Ok(bytes) = wgtrain::data::decode_idx(path, data.to_vec()) {
        let _ = wgtrain::data::parse_idx(path, &bytes);
    }
});
