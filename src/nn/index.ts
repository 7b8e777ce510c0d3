// The nn layer's public surface: Module tree, layers, seeded Rng, optimizers, schedules, gradient clipping.
// Not here: models (src/models/) or training loops (src/train/).

export * from "./clip.js";
export * from "./layers.js";
export * from "./module.js";
export * from "./optim.js";
export * from "./rng.js";
export * from "./schedule.js";
