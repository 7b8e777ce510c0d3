// The text-environment contract of AgentPRM (Choudhury 2502.10325, ALFWorld in the paper): `reset(seed)` gives
// the first observation, `step(action)` the next one with done / success. Built in: `GridNavEnv`, a
// deterministic grid walk whose observation is the goal's offset ("goal +2,-1") and whose actions are
// up/down/left/right; success = reaching the goal within the horizon. Not here: ALFWorld or any text game engine.

import { Rng } from "../nn/rng.js";

export class AgentError extends Error {
  override name = "AgentError";
}

export interface EnvStep {
  observation: string;
  done: boolean;
  success: boolean;
}

export interface TextEnv {
  /** The discrete action set (action texts). */
  readonly actions: readonly string[];
  /** Every character observations and actions use (for a char-level PRM tokenizer). */
  readonly charset: string;
  reset(seed: number): string;
  step(action: string): EnvStep;
}

export interface GridNavOptions {
  width?: number;
  height?: number;
  /** Moves per episode at most. */
  horizon?: number;
  /** Fixed start / goal cells; drawn from the reset seed otherwise (distinct cells). */
  start?: [number, number];
  goal?: [number, number];
}

export const GRID_ACTIONS = Object.freeze(["up", "down", "left", "right"]);
const MOVES: Record<string, [number, number]> = { up: [0, 1], down: [0, -1], left: [-1, 0], right: [1, 0] };

/** Grid navigation; moves into a border leave the agent in place. Deterministic given the reset seed. */
export class GridNavEnv implements TextEnv {
  readonly actions = GRID_ACTIONS;
  readonly charset = "goal +-,0123456789|updownleftright";
  readonly width: number;
  readonly height: number;
  readonly horizon: number;
  private pos: [number, number] = [0, 0];
  private goal: [number, number] = [0, 0];
  private t = 0;
  private over = true;

  constructor(readonly opts: GridNavOptions = {}) {
    this.width = opts.width ?? 5;
    this.height = opts.height ?? 5;
    this.horizon = opts.horizon ?? 8;
    if (this.width * this.height < 2) throw new AgentError(`[GridNavEnv] the grid needs 2 cells, got ${this.width}x${this.height}`);
  }

  private observe(): string {
    const sign = (v: number) => (v >= 0 ? `+${v}` : `${v}`);
    return `goal ${sign(this.goal[0] - this.pos[0])},${sign(this.goal[1] - this.pos[1])}`;
  }

  reset(seed: number): string {
    const rng = new Rng(seed);
    const cell = (): [number, number] => [rng.int(this.width), rng.int(this.height)];
    this.pos = this.opts.start ? [...this.opts.start] : cell();
    this.goal = this.opts.goal ? [...this.opts.goal] : cell();
    while (this.goal[0] === this.pos[0] && this.goal[1] === this.pos[1]) this.goal = cell();
    this.t = 0;
    this.over = false;
    return this.observe();
  }

  step(action: string): EnvStep {
    if (this.over) throw new AgentError("[GridNavEnv] step after the episode ended; call reset");
    const m = MOVES[action];
    if (m === undefined)
      throw new AgentError(`[GridNavEnv] unknown action ${JSON.stringify(action)}; expected one of ${this.actions.join(", ")}`);
    this.pos = [Math.min(this.width - 1, Math.max(0, this.pos[0] + m[0])), Math.min(this.height - 1, Math.max(0, this.pos[1] + m[1]))];
    this.t++;
    const success = this.pos[0] === this.goal[0] && this.pos[1] === this.goal[1];
    const done = success || this.t >= this.horizon;
    this.over = done;
    return { observation: this.observe(), done, success };
  }
}
