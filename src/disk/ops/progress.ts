/** Progress callback of long disk operations: bytes done out of bytes total. */
export type Progress = (done: number, total: number) => void;

/**
 * A progress line on stderr (`\r<label> NN%`), only when stderr is a TTY and `enabled`; otherwise a no-op.
 * Returns the callback and a `finish` that ends the line.
 */
export function stderrProgress(label: string, enabled: boolean): { progress: Progress; finish: () => void } {
  if (!enabled || !process.stderr.isTTY) return { progress: () => undefined, finish: () => undefined };
  let last = -1;
  return {
    progress: (done, total) => {
      const pct = total > 0 ? Math.floor((done / total) * 100) : 100;
      if (pct === last) return;
      last = pct;
      process.stderr.write(`\r${label} ${pct}%`);
    },
    finish: () => {
      if (last >= 0) process.stderr.write('\n');
    },
  };
}
