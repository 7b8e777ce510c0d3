// Stop strings (vLLM `stop` semantics): a request ends when one of them appears in its decoded completion.

/**
 * The text to report when a stop string occurs in a completion's decoded text, else null. The whole text is
 * searched (a request stops at its first match, so any match is new; byte-level decoders may also rewrite a
 * trailing partial character once the next token arrives). The earliest match wins.
 */
export function matchStop(text: string, stop: readonly string[], include: boolean): string | null {
  let best = -1;
  let bestLen = 0;
  for (const s of stop) {
    const at = text.indexOf(s);
    if (at >= 0 && (best < 0 || at < best)) {
      best = at;
      bestLen = s.length;
    }
  }
  if (best < 0) return null;
  return text.slice(0, include ? best + bestLen : best);
}
