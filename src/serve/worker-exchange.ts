import cluster from 'node:cluster';
import { randomUUID } from 'node:crypto';

/**
 * Questions the primary asks its workers over the cluster channel (metrics, readiness), and the
 * workers' answers. Each worker has its own cache, registry and change listener.
 */
export type Question = 'metrics' | 'status';

interface Ask {
  type: 'atdirectory:ask';
  id: string;
  question: Question;
}

interface Answer {
  type: 'atdirectory:answer';
  id: string;
  value: unknown;
}

/** Primary: asks every live worker and waits up to `timeoutMs`; silent workers are left out. */
export async function askWorkers<T>(question: Question, timeoutMs = 2000): Promise<T[]> {
  const workers = Object.values(cluster.workers ?? {}).filter((worker) => worker?.isConnected());
  return (
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<T | undefined>((resolve) => {
            const id = randomUUID();
            const timer = setTimeout(() => finish(undefined), timeoutMs);
            const onMessage = (message: Answer) => {
              if (message?.type === 'atdirectory:answer' && message.id === id) finish(message.value as T);
            };
            const finish = (value: T | undefined) => {
              clearTimeout(timer);
              worker!.off('message', onMessage);
              resolve(value);
            };
            worker!.on('message', onMessage);
            // A worker can die between the liveness check and the send; with a callback the failed
            // send is an answer left out, not an 'error' event that would end the primary.
            worker!.send({ type: 'atdirectory:ask', id, question } satisfies Ask, undefined, (error) => error && finish(undefined));
          }),
      ),
    )
  ).filter((value): value is Awaited<T> => value !== undefined);
}

/** Worker: answers the primary's questions. */
export function answerPrimary(answers: Record<Question, () => Promise<unknown>>): void {
  process.on('message', (message: Ask) => {
    if (message?.type !== 'atdirectory:ask') return;
    // The primary may be gone by the time the answer is ready; the worker then exits on its own.
    void answers[message.question]().then((value) => process.send?.({ type: 'atdirectory:answer', id: message.id, value } satisfies Answer, undefined, {}, () => undefined));
  });
}
