/**
 * Guest RAM: one or more SharedArrayBuffers ("chunks", 1 GiB each by default, the last one possibly smaller)
 * addressed by guest physical address. Hyper-V pages are 4096 bytes and PFN = GPA >> 12 (vmbus-core-ics.md §0).
 * Chunks exist because a typed array stops at 2^32 elements; no view ever crosses a chunk boundary.
 *
 * The host touches guest memory only through what the guest handed it (GPADLs, GPA ranges), so every
 * address from the peer is bounds-checked here and a bad one raises a ProtocolError (structure `gpa_range`).
 * The same SABs can be sent to a worker ({@link GuestMemory.buffers}) and wrapped there with
 * {@link GuestMemory.fromBuffers}; the page allocator is local to the instance that uses it (the guest).
 */
import { HvError, ProtocolError } from '../protocol/errors.ts';
import { type GpaRange, HV_HYP_PAGE_SHIFT, HV_HYP_PAGE_SIZE } from '../protocol/vmbus/packet.ts';

/** Default chunk size: 1 GiB (262144 pages). */
export const GUEST_MEMORY_CHUNK_BYTES = 1 << 30;

const PAGE = HV_HYP_PAGE_SIZE;

export class GuestMemory {
  /** The chunks, in GPA order; transfer these to another thread and call {@link GuestMemory.fromBuffers}. */
  readonly buffers: readonly SharedArrayBuffer[];
  /** Total bytes of guest RAM (GPA 0 .. byteLength - 1). */
  readonly byteLength: number;
  /** Total 4 KiB pages. */
  readonly pageCount: number;
  readonly #chunks: Uint8Array[];
  readonly #pagesPerChunk: number;
  /** Free extents for allocPages, sorted by start PFN, never crossing a chunk: [start, count, start, count...]. */
  #free: number[] | null = null;

  /**
   * Allocates `size` bytes of zeroed guest RAM (a positive multiple of 4096) in chunks of `chunkBytes`
   * (a power of two from 4096 to 2^32, default 1 GiB), or wraps the chunks of another GuestMemory
   * (e.g. received in a worker): every chunk but the last the same power-of-two size, the last no larger,
   * all page multiples.
   * @throws HvError `HV_ERR_INVALID_ARGUMENT` when the size or the chunks break these rules.
   */
  constructor(size: number | readonly SharedArrayBuffer[], chunkBytes = GUEST_MEMORY_CHUNK_BYTES) {
    let buffers: SharedArrayBuffer[];
    if (typeof size === 'number') {
      checkChunkBytes(chunkBytes);
      if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE !== 0) {
        throw new HvError(
          'HV_ERR_INVALID_ARGUMENT',
          `guest memory size ${size} must be a positive multiple of 4096 bytes`,
        );
      }
      buffers = [];
      for (let left = size; left > 0; left -= chunkBytes)
        buffers.push(new SharedArrayBuffer(Math.min(left, chunkBytes)));
    } else {
      buffers = [...size];
      const first = buffers[0];
      if (!first)
        throw new HvError('HV_ERR_INVALID_ARGUMENT', 'guest memory needs at least one SharedArrayBuffer');
      chunkBytes =
        buffers.length === 1 ? 2 ** Math.ceil(Math.log2(Math.max(first.byteLength, PAGE))) : first.byteLength;
      checkChunkBytes(chunkBytes);
      buffers.forEach((b, i) => {
        const last = i === buffers.length - 1;
        if (
          (!last && b.byteLength !== chunkBytes) ||
          b.byteLength > chunkBytes ||
          b.byteLength % PAGE !== 0 ||
          b.byteLength === 0
        ) {
          throw new HvError(
            'HV_ERR_INVALID_ARGUMENT',
            `guest memory chunk ${i} has ${b.byteLength} bytes; expected ${chunkBytes}`,
          );
        }
      });
    }
    this.buffers = buffers;
    this.byteLength = buffers.reduce((n, b) => n + b.byteLength, 0);
    this.pageCount = this.byteLength / PAGE;
    this.#chunks = buffers.map((b) => new Uint8Array(b));
    this.#pagesPerChunk = chunkBytes / PAGE;
  }

  /** Same as `new GuestMemory(buffers)`: a second view of RAM shared with another thread. */
  static fromBuffers(buffers: readonly SharedArrayBuffer[]): GuestMemory {
    return new GuestMemory(buffers);
  }

  /**
   * A view of `count` PFN-contiguous pages starting at `pfn`, or null if any page is outside guest RAM or
   * the run crosses a chunk boundary (1 GiB by default). `count` 0 gives null.
   */
  pageView(pfn: number, count: number): Uint8Array | null {
    if (
      !Number.isInteger(pfn) ||
      !Number.isInteger(count) ||
      pfn < 0 ||
      count <= 0 ||
      pfn + count > this.pageCount
    )
      return null;
    const c = Math.floor(pfn / this.#pagesPerChunk);
    const first = pfn - c * this.#pagesPerChunk;
    if (first + count > this.#pagesPerChunk) return null;
    return this.#chunks[c]!.subarray(first * PAGE, (first + count) * PAGE);
  }

  /**
   * One contiguous view over the pages of `pfns` if they are consecutive PFNs (pfns[i] = pfns[0] + i), all in
   * guest RAM and inside one chunk; otherwise null. The host maps each ring this way and refuses a ring
   * whose pages are not contiguous (hvis rings are flat arrays, not the double mapping Linux uses).
   */
  viewOfPfns(pfns: ArrayLike<number>): Uint8Array | null {
    const n = pfns.length;
    const first = pfns[0];
    if (n === 0 || first === undefined) return null;
    for (let i = 1; i < n; i++) if (pfns[i] !== first + i) return null;
    return this.pageView(first, n);
  }

  /**
   * Copies `dst.length` bytes out of guest memory, starting `rangeOffset` bytes into the byte stream the
   * ranges describe (ranges concatenated; each starts `byteOffset % 4096` into its first PFN).
   * @throws ProtocolError (`gpa_range`) if the ranges are shorter than rangeOffset + dst.length, or name a
   *   page outside guest RAM.
   */
  copyFromGpaRanges(ranges: readonly GpaRange[], dst: Uint8Array, rangeOffset = 0): void {
    this.#copyRanges(ranges, dst, rangeOffset, false);
  }

  /**
   * Copies all of `src` into guest memory at `rangeOffset` bytes into the ranges' byte stream.
   * @throws ProtocolError (`gpa_range`) as {@link copyFromGpaRanges}; bytes before the failing page are written.
   */
  copyToGpaRanges(src: Uint8Array, ranges: readonly GpaRange[], rangeOffset = 0): void {
    this.#copyRanges(ranges, src, rangeOffset, true);
  }

  /** Reads `dst.length` bytes at guest physical address `gpa` (may cross pages and chunks). @throws ProtocolError */
  read(gpa: number, dst: Uint8Array): void {
    this.#copyLinear(gpa, dst, false);
  }

  /** Writes `src` at guest physical address `gpa`. @throws ProtocolError when out of guest RAM. */
  write(gpa: number, src: Uint8Array): void {
    this.#copyLinear(gpa, src, true);
  }

  /**
   * Allocates `count` PFN-contiguous zeroed pages inside one chunk (first fit) and returns the first PFN.
   * For the guest side (rings, GPADL buffers); the host never allocates guest memory.
   * @throws HvError `HV_ERR_INVALID_ARGUMENT` for count < 1 or larger than a chunk; `HV_ERR_INVALID_STATE`
   *   when no free run of that length exists.
   */
  allocPages(count: number): number {
    if (!Number.isInteger(count) || count < 1 || count > this.#pagesPerChunk) {
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `cannot allocate ${count} pages (1..${this.#pagesPerChunk} per run)`,
      );
    }
    const free = this.#freeList();
    for (let i = 0; i < free.length; i += 2) {
      const start = free[i]!;
      const n = free[i + 1]!;
      if (n < count) continue;
      if (n === count) free.splice(i, 2);
      else {
        free[i] = start + count;
        free[i + 1] = n - count;
      }
      this.pageView(start, count)!.fill(0);
      return start;
    }
    throw new HvError('HV_ERR_INVALID_STATE', `guest memory has no free run of ${count} contiguous pages`);
  }

  /**
   * Returns pages from {@link allocPages} to the allocator.
   * @throws HvError `HV_ERR_INVALID_ARGUMENT` if any of them is out of range or already free.
   */
  freePages(pfn: number, count: number): void {
    if (
      !Number.isInteger(pfn) ||
      !Number.isInteger(count) ||
      pfn < 0 ||
      count < 1 ||
      pfn + count > this.pageCount
    ) {
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `cannot free ${count} pages at PFN ${pfn}: outside guest memory`,
      );
    }
    const free = this.#freeList();
    let i = 0;
    while (i < free.length && free[i]! < pfn) i += 2;
    const prevEnd = i > 0 ? free[i - 2]! + free[i - 1]! : 0;
    if ((i > 0 && prevEnd > pfn) || (i < free.length && free[i]! < pfn + count)) {
      throw new HvError(
        'HV_ERR_INVALID_ARGUMENT',
        `pages ${pfn}..${pfn + count - 1} are already (partly) free`,
      );
    }
    free.splice(i, 0, pfn, count);
    // Merge with neighbours, never across a chunk boundary (runs must stay viewable).
    const sameChunk = (a: number, b: number) =>
      Math.floor(a / this.#pagesPerChunk) === Math.floor(b / this.#pagesPerChunk);
    const nextStart = free[i + 2];
    if (nextStart === pfn + count && sameChunk(pfn, nextStart)) {
      free[i + 1] = count + free[i + 3]!;
      free.splice(i + 2, 2);
    }
    if (i > 0 && prevEnd === pfn && sameChunk(pfn - 1, pfn)) {
      free[i - 1] = free[i - 1]! + free[i + 1]!;
      free.splice(i, 2);
    }
  }

  #freeList(): number[] {
    if (this.#free === null) {
      const free: number[] = [];
      for (let p = 0; p < this.pageCount; p += this.#pagesPerChunk)
        free.push(p, Math.min(this.#pagesPerChunk, this.pageCount - p));
      this.#free = free;
    }
    return this.#free;
  }

  #copyRanges(ranges: readonly GpaRange[], buf: Uint8Array, rangeOffset: number, toGuest: boolean): void {
    let skip = rangeOffset;
    let done = 0;
    const want = buf.length;
    for (let r = 0; r < ranges.length && done < want; r++) {
      const range = ranges[r]!;
      let inPage = range.byteOffset % PAGE;
      let left = range.byteCount;
      for (let p = 0; p < range.pfns.length && left > 0 && done < want; p++) {
        const n = Math.min(PAGE - inPage, left);
        left -= n;
        if (skip >= n) {
          skip -= n;
          inPage = 0;
          continue;
        }
        const start = inPage + skip;
        const len = Math.min(n - skip, want - done);
        skip = 0;
        inPage = 0;
        const page = this.pageView(range.pfns[p]!, 1);
        if (page === null) gpaError(`PFN ${range.pfns[p]} of range ${r} is outside guest memory`);
        if (toGuest) page.set(buf.subarray(done, done + len), start);
        else buf.set(page.subarray(start, start + len), done);
        done += len;
      }
    }
    if (done < want) gpaError(`GPA ranges describe fewer than ${rangeOffset + want} bytes`);
  }

  #copyLinear(gpa: number, buf: Uint8Array, toGuest: boolean): void {
    if (!Number.isSafeInteger(gpa) || gpa < 0 || gpa + buf.length > this.byteLength) {
      gpaError(`GPA 0x${gpa.toString(16)} + ${buf.length} bytes is outside guest memory`);
    }
    let done = 0;
    while (done < buf.length) {
      const a = gpa + done;
      const chunkBytes = this.#pagesPerChunk * PAGE;
      const c = Math.floor(a / chunkBytes);
      const off = a - c * chunkBytes;
      const chunk = this.#chunks[c]!;
      const len = Math.min(chunk.length - off, buf.length - done);
      if (toGuest) chunk.set(buf.subarray(done, done + len), off);
      else buf.set(chunk.subarray(off, off + len), done);
      done += len;
    }
  }
}

function gpaError(message: string): never {
  throw new ProtocolError(message, { structure: 'gpa_range' });
}

function checkChunkBytes(chunkBytes: number): void {
  const log = Math.log2(chunkBytes);
  if (!Number.isInteger(log) || log < HV_HYP_PAGE_SHIFT || log > 32) {
    throw new HvError(
      'HV_ERR_INVALID_ARGUMENT',
      `guest memory chunk size ${chunkBytes} must be a power of two from 4096 to 2^32`,
    );
  }
}
