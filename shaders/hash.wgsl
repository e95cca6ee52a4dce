// Shared by the kernels that draw counter-based random numbers.

// pcg3d (Jarzynski & Olano, "Hash Functions for GPU Rendering", 2020): a 3-in, 3-out
// integer hash that passes BigCrush on its output.
fn pcg3d(key: vec3<u32>) -> vec3<u32> {
    var v = key * 1664525u + 1013904223u;
    v.x += v.y * v.z;
    v.y += v.z * v.x;
    v.z += v.x * v.y;
    v ^= v >> vec3<u32>(16u);
    v.x += v.y * v.z;
    v.y += v.z * v.x;
    v.z += v.x * v.y;
    return v;
}
