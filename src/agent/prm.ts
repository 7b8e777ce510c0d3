// AgentPRM's process reward model Q_φ(s, a) (Choudhury 2502.10325): scores an (observation, action) pair in
// [0, 1]. `TabularPrm` looks the Monte Carlo target up (unseen pairs get a prior); `ModelPrm` is a small decoder
// with a scalar head (SequenceClassifier) on "observation|action", trained by BCE against the soft MC targets
// (prmStepLoss takes soft labels). Differences: the paper fine-tunes Llama-3.2-3B; here a char-level tiny model.
// Not here: InversePRM, online DPO policy updates.

import { collate } from "../data/batch.js";
import { CharTokenizer } from "../io/char_tokenizer.js";
import { type ModelConfig, parseHfConfig } from "../io/hf_config.js";
import type { Tokenizer } from "../io/tokenizer.js";
import { prmStepLoss } from "../losses/prm.js";
import { SequenceClassifier } from "../models/heads.js";
import { AdamW } from "../nn/optim.js";
import { Rng } from "../nn/rng.js";
import { fromArray, noGrad, type Tensor } from "../tensor/index.js";
import { pairKey, type StepTarget } from "./mc_targets.js";

export interface ActionScorer {
  /** Q(s, a) in [0, 1] for each action. */
  scoreActions(observation: string, actions: readonly string[]): number[];
}

export class TabularPrm implements ActionScorer {
  private readonly table = new Map<string, number>();
  constructor(
    targets: readonly StepTarget[],
    readonly unseen = 0.5,
  ) {
    for (const t of targets) this.table.set(pairKey(t.observation, t.action), t.target);
  }
  scoreActions(observation: string, actions: readonly string[]): number[] {
    return actions.map((a) => this.table.get(pairKey(observation, a)) ?? this.unseen);
  }
}

export const pairText = (observation: string, action: string): string => `${observation}|${action}`;

export class ModelPrm implements ActionScorer {
  constructor(
    readonly model: SequenceClassifier,
    readonly tokenizer: Tokenizer,
  ) {}

  /** Logits [B] of "observation|action" rows. */
  logits(pairs: readonly { observation: string; action: string }[]): Tensor {
    const batch = collate(
      pairs.map((p) => ({ ids: this.tokenizer.encode(pairText(p.observation, p.action)), lossMask: [] })),
      this.tokenizer.padTokenId ?? 0,
    );
    return this.model.rewards({ inputIds: batch.inputIds, attentionMask: batch.attentionMask });
  }

  scoreActions(observation: string, actions: readonly string[]): number[] {
    const l = noGrad(() => this.logits(actions.map((action) => ({ observation, action }))));
    return Array.from(l.hostData() as ArrayLike<number>, (x) => 1 / (1 + Math.exp(-x)));
  }
}

export interface TrainModelPrmOptions {
  /** Characters of observations and actions (the env's charset). */
  charset: string;
  /** Backbone config; default a 1-layer, D 32 Llama. */
  config?: ModelConfig;
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  seed?: number;
}

export function tinyPrmConfig(vocabSize: number): ModelConfig {
  return parseHfConfig({
    model_type: "llama",
    vocab_size: vocabSize,
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 64,
    tie_word_embeddings: false,
    pad_token_id: 0,
  });
}

/** Fit Q_φ to the MC targets: BCE with soft labels, mean over pairs, AdamW, shuffled mini-batches. */
export function trainModelPrm(targets: readonly StepTarget[], opts: TrainModelPrmOptions): { prm: ModelPrm; losses: number[] } {
  const tok = new CharTokenizer(opts.charset);
  const rng = new Rng(opts.seed ?? 0);
  const model = new SequenceClassifier(opts.config ?? tinyPrmConfig(tok.vocabSize), { rng });
  const prm = new ModelPrm(model, tok);
  const opt = new AdamW(model.parameters(), { lr: opts.learningRate ?? 3e-3, weightDecay: 0 });
  const bs = opts.batchSize ?? 32;
  const losses: number[] = [];
  const order = targets.map((_, i) => i);
  for (let ep = 0; ep < (opts.epochs ?? 10); ep++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    let sum = 0;
    for (let b = 0; b < order.length; b += bs) {
      const part = order.slice(b, b + bs).map((i) => targets[i]);
      const logits = prm.logits(part); // (B)
      const labels = fromArray(Float32Array.from(part.map((p) => p.target)), [part.length]);
      const { loss } = prmStepLoss({ stepLogits: logits, labels });
      opt.zeroGrad();
      loss.backward();
      opt.step();
      sum += loss.item() * part.length;
    }
    losses.push(sum / Math.max(1, order.length));
  }
  return { prm, losses };
}
