import type { HttpRoute } from './http-server.js';

/** 200 while serving, 503 once shutdown began so load balancers stop sending traffic. */
export function healthRoute(path: string, isServing: () => boolean): HttpRoute {
  return {
    method: 'get',
    pattern: path,
    handle: (reply) => {
      if (isServing()) reply.send('200 OK', 'Ok', { 'Content-Type': 'text/plain' });
      else reply.send('503 Service Unavailable', 'Shutting down', { 'Content-Type': 'text/plain' });
    },
  };
}
