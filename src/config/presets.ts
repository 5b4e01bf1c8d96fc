/**
 * Presets set defaults for a deployment style (anycable-go's `--presets`); flags and env still win.
 * `broker`: reliable streams with what is at hand: Redis when its URL is set (history and sessions in
 * Redis, redisx broadcasts, Redis pub/sub), else NATS when its servers are set, else the memory broker.
 */
export function presetDefaults(presets: readonly string[], given: ReadonlyMap<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  if (presets.includes('broker')) {
    if (given.has('redis_url')) {
      out.set('broker', 'redis').set('broadcast_adapter', 'http,redisx').set('pubsub', 'redis');
    } else if (given.has('nats_servers')) {
      out.set('broker', 'nats').set('broadcast_adapter', 'http').set('pubsub', 'nats');
    } else {
      out.set('broker', 'memory').set('broadcast_adapter', 'http');
    }
  }
  return out;
}
