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

/// Every family also compiles to SPIR-V, the way wgpu's Vulkan backend takes it, with the
/// override constants at their defaults: the cooperative-matrix family meets no adapter in CI,
/// so this is where a construct naga's backend cannot write shows up.
#[test]
fn every_shader_family_compiles_to_spirv() {
    for (name, source) in wgtrain::kernels::shader_sources() {
        let module = naga::front::wgsl::parse_str(&source).expect("parses (tested above)");
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .validate(&module)
        .expect("validates (tested above)");
        let (module, info) = naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            None,
            &Default::default(),
        )
        .unwrap_or_else(|e| panic!("{name}.wgsl overrides: {e:?}"));
        let options = naga::back::spv::Options {
            lang_version: (1, 3),
            ..Default::default()
        };
        naga::back::spv::write_vec(&module, &info, &options, None)
            .unwrap_or_else(|e| panic!("{name}.wgsl to SPIR-V: {e:?}"));
    }
}
