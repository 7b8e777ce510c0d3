// How well Titans surprise (src/rewards/surprise.ts) separates wrong steps from correct ones: the calibrator fit
// on labelled validation rows together with the raw surprise's AUROC for "step is wrong". Evaluation sits above
// the rewards layer, so the reward module itself never imports a metric. Not here: reading or calibrating surprise.

import {
  type CalibrationMethod,
  collectStepSurprise,
  fitSurpriseCalibrator,
  type LabelledSolution,
  type SurpriseReader,
} from "../rewards/surprise.js";
import { auroc } from "./calibration.js";

/** Fit a calibrator on validation rows; also reports the raw surprise's AUROC for "step is wrong". */
export function calibrateSurprise(reader: SurpriseReader, rows: readonly LabelledSolution[], method: CalibrationMethod = "platt") {
  const { calibrator, scores, wrong } = fitSurpriseCalibrator(reader, rows, method);
  return { calibrator, auroc: auroc(scores, wrong), steps: scores.length };
}

/** AUROC of step surprise against gold labels (positive class: wrong step). */
export function surpriseAuroc(reader: SurpriseReader, rows: readonly LabelledSolution[]): number {
  const { scores, wrong } = collectStepSurprise(reader, rows);
  return auroc(scores, wrong);
}
