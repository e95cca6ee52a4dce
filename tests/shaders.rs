//! The cheapest test: every WGSL family parses and validates with naga, no GPU needed.

#[test]
fn every_shader_family_validates_with_naga() {
    for (name, source) in wgtrain::kernels::shader_sources() {
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{name}.wgsl: {}", e.emit_to_string(&source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}.wgsl does not validate: {e:?}"));
    }
}

/// WGSL forbids NaN and infinity in constant expressions. naga lets
/// `bitcast<f32>(0x7fc00000u)` through, but Tint (Chromium's WebGPU) folds it and refuses
/// the module, so no shader may bitcast a literal to f32.
#[test]
fn no_shader_folds_a_literal_into_a_float_bit_pattern() {
    for (name, source) in wgtrain::kernels::shader_sources() {
        for (line, text) in source.lines().enumerate() {
            let mut rest = text.split("//").next().unwrap_or_default();
            while let Some(at) = rest.find("bitcast<f32>(") {
                rest = &rest[at + "bitcast<f32>(".len()..];
                let argument = rest.trim_start();
                assert!(
                    !argument.starts_with(|c: char| c.is_ascii_digit()),
                    "{name}.wgsl line {}: bitcast of a literal: {text}",
                    line + 1
                );
            }
        }
    }
}
