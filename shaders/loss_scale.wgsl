// The loss scaler of mixed-precision training (PyTorch's GradScaler rule), one invocation
// recorded after every parameter's update: on a step whose gradients overflowed (their
// squared global norm is inf or NaN; the updates skipped it) the scale is multiplied by
// `backoff` and the clean count restarts; otherwise the count grows, and after
// `growth_interval` clean steps in a row the scale is multiplied by `growth` (kept as it
// is where that would overflow). Included after finite.wgsl.

struct Params {
    growth: f32,
    backoff: f32,
    growth_interval: u32,
    _pad: u32,
}

// The state the updates read (scale first) and the trainer reads back with the loss and
// keeps in checkpoints: four f32 (the counts exact to 2^24).
struct ScalerState {
    scale: f32,
    clean_steps: f32,    // clean steps since the scale last changed
    skipped_steps: f32,  // steps skipped so far
    last_skipped: f32,   // 1: the last step was skipped
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> state: ScalerState;
// norm_sq: [1], the squared global norm of the step's (scaled) gradients
@group(0) @binding(2) var<storage, read> norm_sq: array<f32>;

@compute @workgroup_size(1)
fn loss_scale_update() {
    if (!is_finite(norm_sq[0])) {
        // Never 0 (1 / 0 would poison every update): the trainer stops a run below 1.
        state.scale = max(state.scale * p.backoff, 1.17549435e-38);
        state.clean_steps = 0.0;
        state.skipped_steps += 1.0;
        state.last_skipped = 1.0;
        return;
    }
    state.last_skipped = 0.0;
    state.clean_steps += 1.0;
    if (state.clean_steps >= f32(p.growth_interval)) {
        let grown = state.scale * p.growth;
        state.scale = select(state.scale, grown, is_finite(grown));
        state.clean_steps = 0.0;
    }
}
