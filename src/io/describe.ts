// `describeValue`: a short, safe rendering of an untrusted JSON value for an error message. A value from a
// hostile file can be nested 100000 deep (JSON.stringify would overflow the stack) or megabytes long (the
// message would be too); this never throws and never returns more than `max` characters.

export function describeValue(v: unknown, max = 80): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = Array.isArray(v) ? "[...] (nested too deep to print)" : `${typeof v} (nested too deep to print)`;
  }
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}
