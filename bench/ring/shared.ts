/** Doorbell words shared by bench/ring's two threads. */
export const BELL = { go: 0, reader: 1, writer: 2 } as const;
