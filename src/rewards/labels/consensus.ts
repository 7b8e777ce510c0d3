// Consensus filtering (Qwen, "The Lessons of Developing PRMs", 2501.07301 §3.2): keep a labelled solution only
// when Monte Carlo estimation and an LLM judge agree on where the first error is (both "no error", or the same
// step). A judge that gave no parseable answer (null) never agrees. Not here: producing either label.

export interface ConsensusStats {
  total: number;
  kept: number;
  /** Rows dropped because the judge label was null (unparseable). */
  judgeMissing: number;
  /** Rows dropped because MC and judge named different first errors. */
  disagreed: number;
  /** kept / total (0 for no rows). */
  keepRate: number;
}

/** Whether MC and the judge agree on the first-error index (-1 = no error). */
export function firstErrorsAgree(mc: number, judge: number | null): boolean {
  return judge !== null && mc === judge;
}

/** Keep the rows whose two first-error labels agree; each kept row is returned with its agreed index. */
export function consensusFilter<T>(
  rows: readonly T[],
  mcOf: (row: T) => number,
  judgeOf: (row: T) => number | null,
): { kept: { row: T; firstError: number }[]; stats: ConsensusStats } {
  const kept: { row: T; firstError: number }[] = [];
  let judgeMissing = 0;
  let disagreed = 0;
  for (const row of rows) {
    const m = mcOf(row);
    const j = judgeOf(row);
    if (j === null) judgeMissing++;
    else if (firstErrorsAgree(m, j)) kept.push({ row, firstError: m });
    else disagreed++;
  }
  const total = rows.length;
  return { kept, stats: { total, kept: kept.length, judgeMissing, disagreed, keepRate: total === 0 ? 0 : kept.length / total } };
}
