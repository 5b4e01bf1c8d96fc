/**
 * Map and Set for the handful of entries a connection holds (its subscriptions, a subscription's streams),
 * backed by arrays. Every idle connection keeps one of each: V8's Map and Set start with hash tables of
 * ~120–150 bytes, these with an array of the entries (~16 bytes + 8 per slot). Lookups scan, which for the
 * few entries a connection has is as fast as hashing; insertion order is kept like Map and Set.
 */
export class SmallSet<T> implements ReadonlySet<T> {
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  has(value: T): boolean {
    return this.items.includes(value);
  }

  add(value: T): this {
    if (!this.items.includes(value)) this.items.push(value);
    return this;
  }

  delete(value: T): boolean {
    const at = this.items.indexOf(value);
    if (at === -1) return false;
    this.items.splice(at, 1);
    return true;
  }

  clear(): void {
    this.items.length = 0;
  }

  forEach(callback: (value: T, value2: T, set: ReadonlySet<T>) => void, thisArg?: unknown): void {
    for (const value of [...this.items]) callback.call(thisArg, value, value, this);
  }

  *entries(): IterableIterator<[T, T]> {
    for (const value of this.values()) yield [value, value];
  }

  keys(): IterableIterator<T> {
    return this.values();
  }

  values(): IterableIterator<T> {
    // A copy: deleting while iterating (as Set allows) must not skip entries.
    return [...this.items][Symbol.iterator]();
  }

  [Symbol.iterator](): IterableIterator<T> {
    return this.values();
  }
}

export class SmallMap<K, V> implements ReadonlyMap<K, V> {
  private readonly keyList: K[] = [];
  private readonly valueList: V[] = [];

  get size(): number {
    return this.keyList.length;
  }

  has(key: K): boolean {
    return this.keyList.includes(key);
  }

  get(key: K): V | undefined {
    const at = this.keyList.indexOf(key);
    return at === -1 ? undefined : this.valueList[at];
  }

  set(key: K, value: V): this {
    const at = this.keyList.indexOf(key);
    if (at === -1) {
      this.keyList.push(key);
      this.valueList.push(value);
    } else {
      this.valueList[at] = value;
    }
    return this;
  }

  delete(key: K): boolean {
    const at = this.keyList.indexOf(key);
    if (at === -1) return false;
    this.keyList.splice(at, 1);
    this.valueList.splice(at, 1);
    return true;
  }

  forEach(callback: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    for (const [key, value] of this.entries()) callback.call(thisArg, value, key, this);
  }

  entries(): IterableIterator<[K, V]> {
    // A snapshot: deleting while iterating (as Map allows) must not skip entries.
    return this.keyList.map((key, i) => [key, this.valueList[i] as V] as [K, V])[Symbol.iterator]();
  }

  keys(): IterableIterator<K> {
    return [...this.keyList][Symbol.iterator]();
  }

  values(): IterableIterator<V> {
    return [...this.valueList][Symbol.iterator]();
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }
}
