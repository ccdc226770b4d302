/**
 * A least-recently-used cache with a size limit and optional expiry.
 */
export interface CacheOptions {
  maxEntries: number;
  ttlMs?: number;
}

interface Entry<V> {
  value: V;
  expiresAt: number | null;
}

export class LruCache<K, V> {
  private readonly entries = new Map<K, Entry<V>>();
  private hits = 0;
  private misses = 0;

  constructor(private readonly options: CacheOptions) {
    if (options.maxEntries < 1) {
      throw new RangeError("maxEntries must be at least 1");
    }
  }

  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined || this.isExpired(entry)) {
      this.misses += 1;
      this.entries.delete(key);
      return undefined;
    }
    // Re-insert so the key becomes the most recently used.
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.hits += 1;
    return entry.value;
  }

  set(key: K, value: V): void {
    const expiresAt = this.options.ttlMs ? Date.now() + this.options.ttlMs : null;
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt });
    while (this.entries.size > this.options.maxEntries) {
      const oldest = this.entries.keys().next().value as K;
      this.entries.delete(oldest);
    }
  }

  get hitRate(): number {
    const total = this.hits + this.misses;
    return total === 0 ? 0 : this.hits / total;
  }

  private isExpired(entry: Entry<V>): boolean {
    return entry.expiresAt !== null && entry.expiresAt <= Date.now();
  }
}

export function memoize<A extends string, R>(fn: (arg: A) => R, cache: LruCache<A, R>): (arg: A) => R {
  return (arg: A) => {
    const cached = cache.get(arg);
    if (cached !== undefined) {
      return cached;
    }
    const result = fn(arg);

    return result;
  };
}
