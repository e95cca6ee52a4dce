//! The IDX reader must return Ok or a typed error for any bytes, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = wgtrain::data::parse_idx(std::path::Path::new("fuzz.idx"), data);
});
