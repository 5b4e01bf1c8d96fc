/**
 * Map and Set for the handful of entries a connection holds (its subscriptions, a subscription's streams),
 * backed by arrays. Every idle connection keeps one of each: V8's Map and Set start with hash tables of
 * ~120–150 bytes, these with an array of exactly the entries (~16 bytes + 8 per slot). Changes build a new
 * array with concat/slice, which allocate exactly what they hold: push (and spread into a literal) grow an
 * array's capacity to 17 slots, ~150 bytes again.
 * Lookups scan, which for the few entries a connection has is as fast as hashing; insertion order is kept
 * like Map and Set.
 */
const NONE: readonly never[] = Object.freeze([]);

export class SmallSet<T> implements ReadonlySet<T> {
  private items: readonly T[] = NONE;

  get size(): number {
    return this.items.length;
  }

  has(value: T): boolean {
    return this.items.includes(value);
  }

  add(value: T): this {
    // The first entry as a literal (exactly one slot, no temporary array); later ones by concat.
    if (this.items.length === 0) this.items = [value];
    else if (!this.items.includes(value)) this.items = this.items.concat([value]);
    return this;
  }

  delete(value: T): boolean {
    const at = this.items.indexOf(value);
    if (at === -1) return false;
    this.items = this.items.length === 1 ? NONE : this.items.slice(0, at).concat(this.items.slice(at + 1));
    return true;
  }

  clear(): void {
    this.items = NONE;
  }

  /** The values: a snapshot (add and delete replace the array, never change it), for loops without iterators. */
  get snapshot(): readonly T[] {
    return this.items;
  }

  forEach(callback: (value: T, value2: T, set: ReadonlySet<T>) => void, thisArg?: unknown): void {
    // An index loop over the snapshot: no iterator objects (every close runs this).
    const items = this.items;
    for (let i = 0; i < items.length; i++) callback.call(thisArg, items[i]!, items[i]!, this);
  }

  *entries(): IterableIterator<[T, T]> {
    for (const value of this.values()) yield [value, value];
  }

  keys(): IterableIterator<T> {
    return this.values();
  }

  values(): IterableIterator<T> {
    // The array is replaced, never changed, by add and delete: iterating it is iterating a snapshot.
    return this.items[Symbol.iterator]();
  }

  [Symbol.iterator](): IterableIterator<T> {
    return this.values();
  }
}

export class SmallMap<K, V> implements ReadonlyMap<K, V> {
  /** key, value, key, value, …: one array of exactly the entries. */
  private flat: ReadonlyArray<K | V> = NONE;

  get size(): number {
    return this.flat.length / 2;
  }

  private indexOf(key: K): number {
    for (let i = 0; i < this.flat.length; i += 2) if (this.flat[i] === key) return i;
    return -1;
  }

  has(key: K): boolean {
    return this.indexOf(key) !== -1;
  }

  get(key: K): V | undefined {
    const at = this.indexOf(key);
    return at === -1 ? undefined : (this.flat[at + 1] as V);
  }

  set(key: K, value: V): this {
    const at = this.indexOf(key);
    if (at === -1) {
      this.flat = this.flat.length === 0 ? [key, value] : this.flat.concat([key, value]);
    } else {
      const copy = this.flat.slice();
      copy[at + 1] = value;
      this.flat = copy;
    }
    return this;
  }

  delete(key: K): boolean {
    const at = this.indexOf(key);
    if (at === -1) return false;
    this.flat = this.flat.length === 2 ? NONE : this.flat.slice(0, at).concat(this.flat.slice(at + 2));
    return true;
  }

  /** key, value, key, value, …: a snapshot (set and delete replace the array, never change it), for loops without iterators. */
  get flatSnapshot(): ReadonlyArray<K | V> {
    return this.flat;
  }

  forEach(callback: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    // An index loop over the snapshot: a generator allocates its state, an array and a result per entry.
    const flat = this.flat;
    for (let i = 0; i < flat.length; i += 2) callback.call(thisArg, flat[i + 1] as V, flat[i] as K, this);
  }

  *entries(): IterableIterator<[K, V]> {
    // The array is replaced, never changed, by set and delete: iterating it is iterating a snapshot.
    const flat = this.flat;
    for (let i = 0; i < flat.length; i += 2) yield [flat[i] as K, flat[i + 1] as V];
  }

  *keys(): IterableIterator<K> {
    for (const [key] of this.entries()) yield key;
  }

  *values(): IterableIterator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }
}
