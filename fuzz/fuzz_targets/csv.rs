//! The CSV reader must return Ok or a typed error for any bytes and either task, never panic.
#![no_main]

use wgtrain::data::{Task, parse_csv};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.csv");
    for task in [Task::Classify, Task::Regress] {
        let _ = parse_csv(path, data, None, task);
        let _ = parse_csv(path, data, Some("y"), task);
    }
});
