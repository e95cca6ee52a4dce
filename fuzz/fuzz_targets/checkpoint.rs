//! The checkpoint loader must return Ok or a typed error for any bytes, never panic; what it
//! accepts must survive the shape checks `--init` applies.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(checkpoint) = wgtrain::train::checkpoint::parse(std::path::Path::new("fuzz.safetensors"), data) {
        let _ = checkpoint.expect("0.weight", &[2, 3]);
    }
});
