// The policy a trainer optimizes and the frozen reference it is compared with, for every trainer (DPO family,
// online RL, distillation): a CausalLM trains all its parameters, a LoraModel its adapters (the base runs the
// forward); the reference is an explicit model, else the LoRA base with adapters disabled (no copy), else a
// frozen copy of the policy taken when the trainer starts. A copied reference can be refreshed (TR-DPO's mixup,
// SPIN's per-iteration copy) and is then part of the run's checkpoint.
// Not here: how log-probs are computed (preference_data.ts for whole sequences, rollout.ts per completion token).

import { CausalLM } from "../models/causal_lm.js";
import { LoraModel, withAdaptersDisabled } from "../models/lora.js";
import type { Module } from "../nn/module.js";
import { add, mul, noGrad, type Tensor } from "../tensor/index.js";
import { TrainingError } from "./loop.js";

/** The model a trainer runs forward passes on, and the module whose trainable parameters it optimizes. */
export interface Policy {
  policy: CausalLM;
  trainable: Module;
  lora: LoraModel<CausalLM> | null;
}

/** A CausalLM trains all its parameters; a LoraModel trains its adapters, and its base runs the forward. */
export function resolvePolicy(model: CausalLM | LoraModel<CausalLM>): Policy {
  if (model instanceof LoraModel) return { policy: model.base, trainable: model, lora: model };
  return { policy: model, trainable: model, lora: null };
}

/** A frozen deep copy of a model (same config, same values, requiresGrad off). */
export function frozenCopy(model: CausalLM): CausalLM {
  const copy = new CausalLM(model.config); // zero-initialised, then filled
  copy.loadStateDict(model.stateDict());
  copy.requiresGrad(false);
  copy.eval();
  return copy;
}

/** A frozen reference: run `fn` with the reference model's weights in place (no gradient). */
export interface ReferencePolicy {
  /** Calls fn with the model that plays the reference (the frozen copy, or the policy with adapters off). */
  run<T>(fn: (model: CausalLM) => T): T;
  /** ref = alpha * policy + (1 - alpha) * ref (alpha 1: a plain copy); an error for the LoRA base. */
  sync(alpha: number): void;
  /** The frozen copy, when there is one (its tensors are then part of checkpoints once synced). */
  readonly model: CausalLM | null;
}

export interface ReferenceOptions {
  /** An explicit reference model (used frozen; sync mixes into it). */
  refModel?: CausalLM;
  /** Runs fn with the policy's LoRA adapters disabled: the reference is then the base model, no copy. */
  withAdaptersDisabled?: <T>(fn: () => T) => T;
}

/**
 * The reference: refModel, else the policy with LoRA adapters disabled (a LoraModel, or the
 * `withAdaptersDisabled` hook), else a frozen copy of the policy as it is now.
 */
export function createReferencePolicy(model: CausalLM | LoraModel<CausalLM>, opts: ReferenceOptions = {}): ReferencePolicy {
  const { policy, lora } = resolvePolicy(model);
  const disable = opts.withAdaptersDisabled ?? (lora !== null ? <T>(fn: () => T) => withAdaptersDisabled(lora, fn) : undefined);
  if (opts.refModel === undefined && disable !== undefined) {
    return {
      run: (fn) => noGrad(() => disable(() => fn(policy))),
      sync: () => {
        throw new TrainingError("[reference] the reference is the LoRA base; it cannot follow the policy (pass a refModel)");
      },
      model: null,
    };
  }
  const ref = opts.refModel ?? frozenCopy(policy);
  return {
    run: (fn) => noGrad(() => fn(ref)),
    sync: (alpha) => {
      const own = policy.stateDict();
      for (const [name, p] of ref.namedParameters()) {
        const src = own.get(name);
        if (src === undefined) throw new TrainingError(`[reference] reference parameter ${name} is missing from the policy`);
        noGrad(() => p.assign(alpha === 1 ? src : add(mul(src, alpha), mul(p, 1 - alpha))));
      }
    },
    model: ref,
  };
}

/** The reference's tensors by name (what a checkpoint stores once the reference has moved). */
export function referenceTensors(ref: ReferencePolicy): [string, Tensor][] {
  return ref.model === null ? [] : [...ref.model.namedParameters()].map(([n, t]) => [`reference.${n}`, t]);
}
