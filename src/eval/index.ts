// The eval layer: ProcessBench F1, step-label quality, calibration (ECE, Brier, AUROC) and selection metrics
// (best-of-N, pass@k, maj@k), the AUROC of Titans surprise, paired bootstrap intervals with verdicts, and probes
// (logistic regression, AUROC within strata). Metrics over numbers and labels; no training.

export * from "./bootstrap.js";
export * from "./calibration.js";
export * from "./errors.js";
export * from "./label_quality.js";
export * from "./logistic.js";
export * from "./processbench.js";
export * from "./selection.js";
export * from "./surprise.js";
