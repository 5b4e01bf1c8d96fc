import type { HttpRoute } from './http-server.js';

/**
 * 200 while serving, 503 once shutdown began so load balancers stop sending traffic. `unavailable`
 * names a dependency that is down (e.g. the broker), which also answers 503.
 */
export function healthRoute(path: string, isServing: () => boolean, unavailable: () => string | null = () => null): HttpRoute {
  return {
    method: 'get',
    pattern: path,
    handle: (reply) => {
      const problem = isServing() ? unavailable() : 'Shutting down';
      if (problem === null) reply.send('200 OK', 'Ok', { 'Content-Type': 'text/plain' });
      else reply.send('503 Service Unavailable', problem, { 'Content-Type': 'text/plain' });
    },
  };
}
