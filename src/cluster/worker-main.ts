// A worker thread of a node (--workers N): a uWS server sharing the port, linked to the primary thread.
import '../runtime/young-generation.js';
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../logging/logger.js';
import { CablecatError, errorMessage } from '../errors.js';
import { loadUws } from '../server/uws.js';
import { createCablecat, type Cablecat } from '../app/compose.js';
import type { WorkerBirth } from './messages.js';
import { WorkerPort, type ControlMessage } from './worker-port.js';

const birth = workerData as WorkerBirth;
const port = parentPort;
if (port === null) throw new Error('worker-main runs only as a worker thread');

const logger = createLogger({ level: birth.config.logLevel, format: birth.config.logFormat }).child({ worker: birth.index });
let server: Cablecat | null = null;
let exiting = false;

/**
 * A worker must close its uWS sockets before its thread ends: Node aborts the whole process when a
 * thread's loop still holds uWS handles. So every way out goes through here.
 */
function exit(code: number): void {
  if (exiting) return;
  exiting = true;
  try {
    server?.closeNow();
  } finally {
    // One turn of the loop lets uWS finish closing before the thread goes.
    setImmediate(() => process.exit(code));
  }
}

function crashed(err: unknown): void {
  const error = err instanceof Error ? err.stack ?? err.message : errorMessage(err);
  logger.fatal({ err: errorMessage(err) }, 'worker crashed');
  link.post({ t: 'crashed', error });
  exit(1);
}
process.on('uncaughtException', crashed);
process.on('unhandledRejection', crashed);

function control(message: ControlMessage): void {
  switch (message.t) {
    case 'shutdown':
      void (async () => {
        try {
          await server?.shutdown(message.deadline);
        } catch (err) {
          logger.error({ err: errorMessage(err) }, 'worker shutdown failed');
        }
        exit(0);
      })();
      return;
    case 'close_now':
      exit(0);
      return;
    case 'crash':
      setImmediate(() => {
        throw new Error('crash requested by the primary (test)');
      });
  }
}

const link = new WorkerPort(port, birth, control);

try {
  const uws = loadUws();
  server = await createCablecat(birth.config, logger, uws, link);
  link.reportMetricsOf(server.metrics);
  await server.start();
  link.post({ t: 'listening', port: server.port });
} catch (err) {
  link.post({ t: 'start_failed', error: errorMessage(err), code: err instanceof CablecatError ? err.code : null });
  exit(1);
}
