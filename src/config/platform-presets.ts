/**
 * anycable-go's platform presets: `fly` (detected from FLY_APP_NAME + FLY_REGION + FLY_ALLOC_ID) and
 * `heroku` (HEROKU_APP_ID + HEROKU_DYNO_ID) listen on 0.0.0.0; on Fly, ANYCABLE_FLY_RPC_APP_NAME points
 * gRPC at that app's instances in the same region. `none` turns detection off. Like every preset, they
 * only change defaults: values given by flag or env win.
 */
export function presetNames(given: string | undefined, env: NodeJS.ProcessEnv): string[] {
  if (given !== undefined) return given.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const detected: string[] = [];
  if (env.FLY_APP_NAME && env.FLY_REGION && env.FLY_ALLOC_ID) detected.push('fly');
  if (env.HEROKU_APP_ID && env.HEROKU_DYNO_ID) detected.push('heroku');
  return detected;
}

export function platformPresetDefaults(presets: readonly string[], given: ReadonlyMap<string, string>, env: NodeJS.ProcessEnv): Map<string, string> {
  const out = new Map<string, string>();
  if (presets.includes('none')) return out;
  if (presets.includes('fly') || presets.includes('heroku')) out.set('host', '0.0.0.0');
  const rpcApp = env.ANYCABLE_FLY_RPC_APP_NAME;
  if (presets.includes('fly') && rpcApp && env.FLY_REGION && !given.has('rpc_host')) {
    out.set('rpc_host', `dns:///${env.FLY_REGION}.${rpcApp}.internal:50051`);
  }
  return out;
}
