/**
 * An informer: LIST once, then WATCH from the list's resourceVersion, keeping
 * a cache of the objects and calling the handler for every change.
 *
 * - Bookmarks (allowWatchBookmarks) advance the resourceVersion without objects,
 *   so a reconnect after a quiet period does not start from a compacted version.
 * - 410 Gone (as an HTTP status or an ERROR event) means the version is too old:
 *   relist, and report objects that vanished meanwhile as deleted.
 * - A stream that ends is resumed from the last version; failures reconnect
 *   with capped exponential backoff.
 * - Every `resyncMs` a full relist repairs anything a watch could have missed.
 */
import type { KubeList, KubeObject, WatchEvent } from './types.ts';

export type InformerEvent<T> = { type: 'added' | 'modified' | 'deleted'; object: T };

/** What an informer needs from the API; KubeClient provides it, unit tests script it. */
export interface ListWatcher<T extends KubeObject> {
  list(): Promise<KubeList<T>>;
  /** Resolve when the stream ends; reject on failure (err.status 410 for Gone). */
  watch(resourceVersion: string, onEvent: (ev: WatchEvent<T>) => void, signal: AbortSignal): Promise<void>;
}

export interface InformerOptions {
  /** Full relist period. @default 60000 */
  resyncMs?: number;
  /** @default 200 */
  backoffInitialMs?: number;
  /** @default 5000 */
  backoffMaxMs?: number;
  onError?: (err: Error) => void;
}

export interface InformerStatus {
  synced: boolean;
  resourceVersion: string;
  objects: number;
  lists: number;
  watches: number;
  gone: number;
  errors: number;
  lastError?: string;
}

/**
 * resourceVersions are opaque by contract; etcd's are integers, and only when both are
 * integers is the comparison used (to keep an upserted newer object).
 */
function isOlder(obj: KubeObject, cached: KubeObject | undefined): boolean {
  const a = obj.metadata.resourceVersion;
  const b = cached?.metadata.resourceVersion;
  if (!a || !b || !/^\d+$/.test(a) || !/^\d+$/.test(b)) return false;
  return BigInt(a) < BigInt(b);
}

export const objectKey = (o: KubeObject): string =>
  o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;

export class Informer<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  private readonly o: Required<Omit<InformerOptions, 'onError'>> & Pick<InformerOptions, 'onError'>;
  private rv = '';
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;
  private lastRelist = 0;
  private readonly st = {
    lists: 0,
    watches: 0,
    gone: 0,
    errors: 0,
    lastError: undefined as string | undefined,
  };
  private wake: (() => void) | undefined;

  private readonly lw: ListWatcher<T>;
  private readonly handler: (ev: InformerEvent<T>) => void;

  constructor(lw: ListWatcher<T>, handler: (ev: InformerEvent<T>) => void, opts: InformerOptions = {}) {
    this.lw = lw;
    this.handler = handler;
    this.o = { resyncMs: 60_000, backoffInitialMs: 200, backoffMaxMs: 5000, ...opts };
  }

  /** LIST (retrying until it works or `stop`), then keep watching in the background. */
  async start(): Promise<void> {
    if (this.loop) return;
    for (
      let delay = this.o.backoffInitialMs;
      !this.stopped;
      delay = Math.min(delay * 2, this.o.backoffMaxMs)
    ) {
      try {
        await this.relist();
        break;
      } catch (err) {
        this.failed(err as Error);
        await this.sleep(delay);
      }
    }
    this.loop = this.run();
  }

  get(key: string): T | undefined {
    return this.cache.get(key);
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  /**
   * Put an object the caller just wrote (the answer of an apply) into the cache, so reads
   * right after a write see it; the watch event that follows carries the same version.
   */
  upsert(obj: T): void {
    const key = objectKey(obj);
    if (isOlder(obj, this.cache.get(key))) return;
    this.cache.set(key, obj);
  }

  status(): InformerStatus {
    return {
      synced: this.st.lists > 0,
      resourceVersion: this.rv,
      objects: this.cache.size,
      lists: this.st.lists,
      watches: this.st.watches,
      gone: this.st.gone,
      errors: this.st.errors,
      ...(this.st.lastError ? { lastError: this.st.lastError } : {}),
    };
  }

  /** Relist now (for callers that know the cache is behind, e.g. right after a write). */
  async resync(): Promise<void> {
    await this.relist();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    let delay = this.o.backoffInitialMs;
    while (!this.stopped) {
      try {
        if (Date.now() - this.lastRelist >= this.o.resyncMs) await this.relist();
        this.abort = new AbortController();
        const signal = this.abort.signal;
        const timer = setTimeout(
          () => this.abort?.abort(),
          Math.max(0, this.lastRelist + this.o.resyncMs - Date.now()),
        );
        this.st.watches++;
        let healthy = false;
        try {
          await this.lw.watch(
            this.rv,
            (ev) => {
              healthy = true;
              this.apply(ev);
            },
            signal,
          );
        } finally {
          clearTimeout(timer);
        }
        if (healthy) delay = this.o.backoffInitialMs;
      } catch (err) {
        if (this.stopped) break;
        if ((err as { status?: number }).status === 410) {
          this.st.gone++;
          this.rv = ''; // forces the relist below
          try {
            await this.relist();
            continue;
          } catch (e) {
            this.failed(e as Error);
          }
        } else {
          this.failed(err as Error);
        }
        await this.sleep(delay);
        delay = Math.min(delay * 2, this.o.backoffMaxMs);
      }
    }
  }

  private apply(ev: WatchEvent<T>): void {
    if (ev.type === 'ERROR') {
      const code = ev.object.code;
      const err = new Error(
        `watch error ${code ?? ''} ${ev.object.reason ?? ''}: ${ev.object.message ?? ''}`,
      );
      (err as Error & { status?: number }).status = code;
      throw err; // ends the stream; run() relists on 410
    }
    const obj = ev.object;
    if (obj.metadata?.resourceVersion) this.rv = obj.metadata.resourceVersion;
    if (ev.type === 'BOOKMARK') return;
    const key = objectKey(obj);
    // An upsert may have put a newer version in the cache than this (older) event.
    if (ev.type !== 'DELETED' && isOlder(obj, this.cache.get(key))) return;
    if (ev.type === 'DELETED') {
      if (this.cache.delete(key)) this.handler({ type: 'deleted', object: obj });
      return;
    }
    const had = this.cache.has(key);
    this.cache.set(key, obj);
    this.handler({ type: had ? 'modified' : 'added', object: obj });
  }

  private async relist(): Promise<void> {
    const list = await this.lw.list();
    this.st.lists++;
    this.lastRelist = Date.now();
    this.rv = list.metadata.resourceVersion;
    const seen = new Set<string>();
    for (const obj of list.items) {
      const key = objectKey(obj);
      seen.add(key);
      const old = this.cache.get(key);
      this.cache.set(key, obj);
      if (!old) this.handler({ type: 'added', object: obj });
      else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion)
        this.handler({ type: 'modified', object: obj });
    }
    for (const [key, obj] of this.cache) {
      if (!seen.has(key)) {
        this.cache.delete(key);
        this.handler({ type: 'deleted', object: obj });
      }
    }
  }

  private failed(err: Error): void {
    this.st.errors++;
    this.st.lastError = err.message;
    this.o.onError?.(err);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}
